"""Qualification operations through boto3 against the running services: a type with a
QuestionForm test and an AnswerKey taken by a native worker through the attempts API,
associate / disassociate, scores (system ones too), the paginators, and the errors clients
match on (services/tasks/mturk/operations/qualifications.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import botocore.exceptions
import httpx
import pytest

from tests.conftest import LiveServices
from tests.services.tasks.mturk.conftest import MTurkRequester, NativeWorker
from tests.services.tasks.mturk.question_samples import ANSWER_KEY, HTML_QUESTION, TEST_FORM

pytestmark = pytest.mark.usefixtures("live_services")


def error_of(excinfo: pytest.ExceptionInfo[Any]) -> tuple[str, str, str]:
    err = excinfo.value.response["Error"]
    return err["Code"], err["Message"], excinfo.value.response.get("TurkErrorCode", "")


def unique_name(prefix: str = "Birds") -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def take_test(
    http: httpx.Client, workers_url: str, worker: NativeWorker, type_id: str, answers: dict
) -> dict[str, Any]:
    resp = http.post(
        f"{workers_url}/v1/qualification-types/{type_id}/attempts", headers=worker.headers
    )
    assert resp.status_code == 201, resp.text
    started = resp.json()
    resp = http.post(
        f"{workers_url}/v1/qualification-attempts/{started['attempt_id']}/submit",
        json={"answers": answers},
        headers=worker.headers,
    )
    assert resp.status_code == 200, resp.text
    return {"started": started, "result": resp.json()}


def test_question_form_test_taken_by_a_native_worker(
    mturk: Any,
    live_services: LiveServices,
    live_http: httpx.Client,
    new_native_worker: Callable[..., NativeWorker],
    new_mturk_requester: Callable[..., MTurkRequester],
    mturk_requester: MTurkRequester,
) -> None:
    name = unique_name()
    created = mturk.create_qualification_type(
        Name=name,
        Keywords="birds, Ornithology, birds",
        Description="Knows birds.",
        QualificationTypeStatus="Active",
        Test=TEST_FORM,
        AnswerKey=ANSWER_KEY,
        TestDurationInSeconds=600,
        RetryDelayInSeconds=3600,
    )["QualificationType"]
    type_id = created["QualificationTypeId"]
    assert created["Name"] == name and created["Keywords"] == "birds, ornithology"
    assert created["Test"] == TEST_FORM and created["AnswerKey"] == ANSWER_KEY
    assert created["TestDurationInSeconds"] == 600 and created["RetryDelayInSeconds"] == 3600
    assert created["IsRequestable"] is True and created["AutoGranted"] is False
    assert created["QualificationTypeStatus"] == "Active"
    assert mturk.get_qualification_type(QualificationTypeId=type_id)["QualificationType"] == created

    # The native worker sees the converted questions and takes the test natively.
    workers_url = live_services.urls["workers"]
    good, partial, wrong = (new_native_worker() for _ in range(3))
    taken = take_test(
        live_http,
        workers_url,
        good,
        type_id,
        {"q1": "robin", "q2": ["bee", "crow"], "why": "I like birds"},
    )
    questions = taken["started"]["questions"]
    assert [(q["id"], q["kind"]) for q in questions] == [
        ("q1", "single_choice"),
        ("q2", "multiple_choice"),
        ("why", "text"),
    ]
    assert questions[0]["prompt"] == "Which of these is a bird?"
    assert [o["id"] for o in questions[1]["options"]] == ["crow", "bee", "cow"]
    assert taken["result"]["value"] == 100  # (10 + 10) / 20
    # crow alone: its own AnswerOption (5); a wrong q1 earns the default 0: 5/20 = 25%
    assert (
        take_test(live_http, workers_url, partial, type_id, {"q1": "bat", "q2": ["crow"]})[
            "result"
        ]["value"]
        == 25
    )
    # no option matches: q2's DefaultScore 1 (q1 unanswered: 0): 1/20 rounds to 5
    assert (
        take_test(live_http, workers_url, wrong, type_id, {"q2": ["cow"]})["result"]["value"] == 5
    )

    score = mturk.get_qualification_score(
        QualificationTypeId=type_id, WorkerId=good.mturk_worker_id
    )
    qualification = score["Qualification"]
    assert qualification["IntegerValue"] == 100 and qualification["Status"] == "Granted"
    assert qualification["WorkerId"] == good.mturk_worker_id and "GrantTime" in qualification

    listed = mturk.list_workers_with_qualification_type(QualificationTypeId=type_id, MaxResults=100)
    assert listed["NumResults"] == 3 and "NextToken" not in listed
    assert {q["WorkerId"]: q["IntegerValue"] for q in listed["Qualifications"]} == {
        good.mturk_worker_id: 100,
        partial.mturk_worker_id: 25,
        wrong.mturk_worker_id: 5,
    }

    # Another requester sees the (active) type without its answer key, and no scores of it.
    other = new_mturk_requester(funds="0").client
    seen = other.get_qualification_type(QualificationTypeId=type_id)["QualificationType"]
    assert seen["Test"] == TEST_FORM and "AnswerKey" not in seen
    with pytest.raises(other.exceptions.RequestError) as caught:
        other.get_qualification_score(QualificationTypeId=type_id, WorkerId=good.mturk_worker_id)
    assert error_of(caught)[2] == "AWS.MechanicalTurk.QualificationTypeDoesNotExist"

    # A native change of the key leaves no stale XML behind (the Test still describes the test).
    resp = live_http.patch(
        f"{workers_url}/v1/qualification-types/{type_id}",
        json={"answer_key": None},
        headers=mturk_requester.headers,
    )
    assert resp.status_code == 200, resp.text
    after = mturk.get_qualification_type(QualificationTypeId=type_id)["QualificationType"]
    assert "AnswerKey" not in after and after["Test"] == TEST_FORM


def test_associate_disassociate_and_paginators(
    mturk_requester: MTurkRequester,
    new_mturk_requester: Callable[..., MTurkRequester],
    new_native_worker: Callable[..., NativeWorker],
) -> None:
    mturk = mturk_requester.client
    prefix = unique_name("Pages")
    type_ids = [
        mturk.create_qualification_type(
            Name=f"{prefix} {i}",
            Description="d",
            QualificationTypeStatus="Active",
            Keywords=prefix.split()[1],
        )["QualificationType"]["QualificationTypeId"]
        for i in range(5)
    ]
    paginator = mturk.get_paginator("list_qualification_types")
    pages = list(
        paginator.paginate(
            MustBeRequestable=False, MustBeOwnedByCaller=True, PaginationConfig={"PageSize": 2}
        )
    )
    assert [p["NumResults"] for p in pages] == [2, 2, 1]
    assert "NextToken" not in pages[-1]
    seen = [t["QualificationTypeId"] for p in pages for t in p["QualificationTypes"]]
    assert seen == list(reversed(type_ids))  # newest first
    # Query by keyword, across owners (active types are public), requestable filter
    other = new_mturk_requester(funds="0").client
    found = other.list_qualification_types(MustBeRequestable=False, Query=prefix.split()[1])
    assert found["NumResults"] == 5
    assert all("AnswerKey" not in t for t in found["QualificationTypes"])
    assert (
        other.list_qualification_types(MustBeRequestable=True, Query=prefix.split()[1])[
            "NumResults"
        ]
        == 0
    )

    type_id = type_ids[0]
    workers = [new_native_worker() for _ in range(5)]
    for i, worker in enumerate(workers):
        assert (
            mturk.associate_qualification_with_worker(
                QualificationTypeId=type_id,
                WorkerId=worker.mturk_worker_id,
                IntegerValue=10 + i,
                SendNotification=False,
            )["ResponseMetadata"]["HTTPStatusCode"]
            == 200
        )
    pages = list(
        mturk.get_paginator("list_workers_with_qualification_type").paginate(
            QualificationTypeId=type_id, PaginationConfig={"PageSize": 2}
        )
    )
    assert [p["NumResults"] for p in pages] == [2, 2, 1]
    values = sorted(q["IntegerValue"] for p in pages for q in p["Qualifications"])
    assert values == [10, 11, 12, 13, 14]

    # associate again changes the value; disassociate revokes it
    mturk.associate_qualification_with_worker(
        QualificationTypeId=type_id, WorkerId=workers[0].mturk_worker_id, IntegerValue=99
    )
    score = mturk.get_qualification_score(
        QualificationTypeId=type_id, WorkerId=workers[0].mturk_worker_id
    )
    assert score["Qualification"]["IntegerValue"] == 99
    mturk.disassociate_qualification_from_worker(
        QualificationTypeId=type_id, WorkerId=workers[0].mturk_worker_id, Reason="Left the team"
    )
    revoked = mturk.get_qualification_score(
        QualificationTypeId=type_id, WorkerId=workers[0].mturk_worker_id
    )
    assert revoked["Qualification"]["Status"] == "Revoked"
    listed = mturk.list_workers_with_qualification_type(
        QualificationTypeId=type_id, Status="Revoked"
    )
    assert [q["WorkerId"] for q in listed["Qualifications"]] == [workers[0].mturk_worker_id]
    assert (
        mturk.list_workers_with_qualification_type(QualificationTypeId=type_id)["NumResults"] == 4
    )
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        mturk.disassociate_qualification_from_worker(
            QualificationTypeId=type_id, WorkerId=workers[0].mturk_worker_id
        )
    assert error_of(caught)[2] == "AWS.MechanicalTurk.QualificationDoesNotExist"

    # someone else's type: does not exist for them
    with pytest.raises(other.exceptions.RequestError) as caught:
        other.associate_qualification_with_worker(
            QualificationTypeId=type_id, WorkerId=workers[1].mturk_worker_id
        )
    assert error_of(caught)[2] == "AWS.MechanicalTurk.QualificationTypeDoesNotExist"


def test_system_qualification_scores(
    mturk: Any, new_native_worker: Callable[..., NativeWorker]
) -> None:
    system = mturk.get_qualification_type(QualificationTypeId="00000000000000000071")
    assert system["QualificationType"]["Name"] == "system.country"
    worker = new_native_worker(country="DE")
    locale = mturk.get_qualification_score(
        QualificationTypeId="00000000000000000071", WorkerId=worker.mturk_worker_id
    )["Qualification"]
    assert locale["LocaleValue"] == {"Country": "DE"} and "IntegerValue" not in locale
    approval = mturk.get_qualification_score(
        QualificationTypeId="000000000000000000L0", WorkerId=worker.mturk_worker_id
    )["Qualification"]
    assert approval["IntegerValue"] == 100 and approval["Status"] == "Granted"
    approved = mturk.get_qualification_score(
        QualificationTypeId="00000000000000000040", WorkerId=worker.mturk_worker_id
    )["Qualification"]
    assert approved["IntegerValue"] == 0
    with pytest.raises(mturk.exceptions.RequestError) as caught:
        mturk.associate_qualification_with_worker(
            QualificationTypeId="00000000000000000040", WorkerId=worker.mturk_worker_id
        )
    assert error_of(caught)[2] == "AWS.NotAuthorized"


@pytest.mark.parametrize(
    ("overrides", "turk_code", "fragment"),
    [
        (
            {"AnswerKey": ANSWER_KEY},
            "AWS.MechanicalTurk.InvalidParameterValue",
            "only be given with a Test",
        ),
        (
            {"Test": TEST_FORM},
            "AWS.MechanicalTurk.InvalidParameterValue",
            "TestDurationInSeconds is required",
        ),
        (
            {"Test": TEST_FORM, "TestDurationInSeconds": 60, "AutoGranted": True},
            "AWS.MechanicalTurk.InvalidParameterValue",
            "both a Test and AutoGranted",
        ),
        (
            {"Test": HTML_QUESTION, "TestDurationInSeconds": 60},
            "AWS.MechanicalTurk.XMLParseError",
            "must be a QuestionForm",
        ),
        (
            {"Test": TEST_FORM.replace("</QuestionForm>", ""), "TestDurationInSeconds": 60},
            "AWS.MechanicalTurk.XMLParseError",
            "There was an error parsing the XML",
        ),
        (
            {
                "Test": TEST_FORM,
                "TestDurationInSeconds": 60,
                "AnswerKey": ANSWER_KEY.replace(">robin<", ">eagle<"),
            },
            "AWS.MechanicalTurk.InvalidParameterValue",
            "SelectionIdentifier 'eagle'",
        ),
        (
            {
                "Test": TEST_FORM,
                "TestDurationInSeconds": 60,
                "AnswerKey": ANSWER_KEY.replace(">q1<", ">why<"),
            },
            "AWS.MechanicalTurk.InvalidParameterValue",
            "not a SelectionAnswer",
        ),
    ],
)
def test_create_refusals(mturk: Any, overrides: dict, turk_code: str, fragment: str) -> None:
    with pytest.raises(mturk.exceptions.RequestError) as caught:
        mturk.create_qualification_type(
            Name=unique_name(), Description="d", QualificationTypeStatus="Active", **overrides
        )
    code, message, turk = error_of(caught)
    assert turk == turk_code and fragment in message, (code, message, turk)


def test_name_taken_and_unknown_ids(mturk: Any, native_worker: NativeWorker) -> None:
    name = unique_name()
    created = mturk.create_qualification_type(
        Name=name,
        Description="d",
        QualificationTypeStatus="Inactive",
        AutoGranted=True,
        AutoGrantedValue=7,
    )["QualificationType"]
    assert created["AutoGrantedValue"] == 7 and created["IsRequestable"] is True
    assert created["QualificationTypeStatus"] == "Inactive"
    with pytest.raises(mturk.exceptions.RequestError) as caught:
        mturk.create_qualification_type(
            Name=name.upper(), Description="d", QualificationTypeStatus="Active"
        )
    assert error_of(caught)[2] == "AWS.MechanicalTurk.QualificationTypeAlreadyExists"
    assert "must be unique" in error_of(caught)[1]
    with pytest.raises(mturk.exceptions.RequestError) as caught:
        mturk.get_qualification_type(QualificationTypeId="0" * 26)
    assert error_of(caught)[2] == "AWS.MechanicalTurk.QualificationTypeDoesNotExist"
    with pytest.raises(mturk.exceptions.RequestError) as caught:
        mturk.get_qualification_score(
            QualificationTypeId=created["QualificationTypeId"],
            WorkerId=native_worker.mturk_worker_id,
        )
    assert error_of(caught)[1] == "You requested a Qualification that does not exist."
