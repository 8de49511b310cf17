"""A QuestionForm HIT through boto3, answered by a native worker per question, read back as
QuestionFormAnswers by xmltodict and minidom (the Answer a requester's script parses)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any
from xml.dom import minidom

import pytest
import xmltodict

from tests.services.tasks.mturk.conftest import NativeWorker
from tests.services.tasks.mturk.question_samples import QUESTION_FORM

pytestmark = pytest.mark.usefixtures("live_services")

ANSWER = {
    "answers": {
        "photo": {"uploaded_file_key": "u/1.jpg", "uploaded_file_size_in_bytes": 77},
        "count": {"free_text": "12"},
        "colour": {"selection_identifiers": ["blue"]},
        "shapes": {"selection_identifiers": ["circle"], "other_selection_text": "étoile"},
        "comment": {"free_text": 'OK: "5 < 6" & 😀\r\nbye'},
    }
}


def test_question_form_hit_answered_natively_and_read_as_mturk_xml(
    mturk: Any, new_native_worker: Callable[..., NativeWorker]
) -> None:
    hit = mturk.create_hit(
        Title=f"Describe a picture {uuid.uuid4().hex[:6]}",
        Description="A few questions about one picture.",
        Reward="0.20",
        MaxAssignments=1,
        LifetimeInSeconds=3600,
        AssignmentDurationInSeconds=600,
        Question=QUESTION_FORM,
    )["HIT"]
    assert hit["Question"] == QUESTION_FORM
    worker = new_native_worker()
    claim = worker.accept(hit["HITTypeId"])
    assert claim["input"] == {"question": QUESTION_FORM, "question_type": "QuestionForm"}
    bad = worker.http.post(
        f"{worker.tasks_url}/v1/assignments/{claim['assignment_id']}/submit",
        json={"answer": {"answers": {"count": {"free_text": "99"}}}},
        headers=worker.headers,
    )
    assert bad.status_code == 422
    assert {tuple(e["loc"][-2:]) for e in bad.json()["errors"]} == {
        ("answers", "colour"),
        ("answers", "count"),
    }
    worker.submit(claim["assignment_id"], ANSWER)

    (assignment,) = mturk.list_assignments_for_hit(HITId=hit["HITId"])["Assignments"]
    xml = assignment["Answer"]
    assert xml.startswith('<?xml version="1.0" encoding="ASCII"?><QuestionFormAnswers xmlns=')
    assert xml.isascii() and "&#233;toile" in xml and "&#128512;" in xml
    answers = xmltodict.parse(xml)["QuestionFormAnswers"]["Answer"]
    # the form's order, whatever order the worker gave
    assert [a["QuestionIdentifier"] for a in answers] == [
        "colour",
        "shapes",
        "count",
        "comment",
        "photo",
    ]
    by_id = {a["QuestionIdentifier"]: a for a in answers}
    assert by_id["colour"]["SelectionIdentifier"] == "blue"
    assert by_id["shapes"]["OtherSelectionText"] == "étoile"
    assert by_id["count"]["FreeText"] == "12"
    assert by_id["comment"]["FreeText"] == ANSWER["answers"]["comment"]["free_text"]
    assert by_id["photo"] == {
        "QuestionIdentifier": "photo",
        "UploadedFileSizeInBytes": "77",
        "UploadedFileKey": "u/1.jpg",
    }
    document = minidom.parseString(xml.encode("ascii"))
    texts = [
        node.firstChild.data
        for node in document.getElementsByTagName("FreeText")
        if node.firstChild
    ]
    assert texts == ["12", ANSWER["answers"]["comment"]["free_text"]]
    got = mturk.get_assignment(AssignmentId=assignment["AssignmentId"])["Assignment"]
    assert got["Answer"] == xml
