"""Answers to MTurk questions: checked against the question, rendered as MTurk's
QuestionFormAnswers, byte for byte, and read back by the parsers requesters use."""

from __future__ import annotations

from typing import Any
from xml.dom import minidom

import pytest
import xmltodict

from services.tasks.mturk.answers import answer_problems, escape, render_answer
from services.tasks.mturk.questions import parse_question
from tests.services.tasks.mturk.question_samples import HTML_QUESTION, QUESTION_FORM

NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/QuestionFormAnswers.xsd"
FORM = parse_question(QUESTION_FORM)
HTML = parse_question(HTML_QUESTION)

GOOD_FORM_ANSWER: dict[str, Any] = {
    "answers": {
        "colour": {"selection_identifiers": ["blue"]},
        "shapes": {"selection_identifiers": ["circle"], "other_selection_text": "star"},
        "count": {"free_text": "12"},
        "comment": {"free_text": "All OK <really> & fine"},
        "photo": {"uploaded_file_key": "uploads/photo-1.jpg", "uploaded_file_size_in_bytes": 2048},
    }
}


def test_mturk_layout_byte_for_byte() -> None:
    """The layout MTurk returns (declaration, no whitespace, the 2005-10-01 namespace)."""
    assert render_answer({"fields": {"plausibility": "4"}}, HTML) == (
        '<?xml version="1.0" encoding="ASCII"?>'
        f'<QuestionFormAnswers xmlns="{NS}">'
        "<Answer><QuestionIdentifier>plausibility</QuestionIdentifier>"
        "<FreeText>4</FreeText></Answer></QuestionFormAnswers>"
    )


def test_question_form_answer_elements_in_form_order() -> None:
    shuffled = {"answers": dict(reversed(list(GOOD_FORM_ANSWER["answers"].items())))}
    xml = render_answer(shuffled, FORM)
    assert xml == (
        '<?xml version="1.0" encoding="ASCII"?>'
        f'<QuestionFormAnswers xmlns="{NS}">'
        "<Answer><QuestionIdentifier>colour</QuestionIdentifier>"
        "<SelectionIdentifier>blue</SelectionIdentifier></Answer>"
        "<Answer><QuestionIdentifier>shapes</QuestionIdentifier>"
        "<SelectionIdentifier>circle</SelectionIdentifier>"
        "<OtherSelectionText>star</OtherSelectionText></Answer>"
        "<Answer><QuestionIdentifier>count</QuestionIdentifier><FreeText>12</FreeText></Answer>"
        "<Answer><QuestionIdentifier>comment</QuestionIdentifier>"
        "<FreeText>All OK &lt;really&gt; &amp; fine</FreeText></Answer>"
        "<Answer><QuestionIdentifier>photo</QuestionIdentifier>"
        "<UploadedFileSizeInBytes>2048</UploadedFileSizeInBytes>"
        "<UploadedFileKey>uploads/photo-1.jpg</UploadedFileKey></Answer>"
        "</QuestionFormAnswers>"
    )


def test_parsed_back_with_xmltodict_and_minidom() -> None:
    fields = {
        "text": 'Ça "coûte" 5€ <b> & \U0001f600\r\nline 2',
        "tags": ["a", "b|c"],
        "empty": "",
    }
    xml = render_answer({"fields": fields}, HTML)
    assert xml.isascii()
    parsed = xmltodict.parse(xml)["QuestionFormAnswers"]
    assert parsed["@xmlns"] == NS
    got = {a["QuestionIdentifier"]: a["FreeText"] for a in parsed["Answer"]}
    assert got == {"text": fields["text"], "tags": "a|b|c", "empty": None}
    document = minidom.parseString(xml.encode("ascii"))
    answers = document.documentElement.getElementsByTagName("Answer")
    by_id = {
        a.getElementsByTagName("QuestionIdentifier")[0].firstChild.data: (
            a.getElementsByTagName("FreeText")[0].firstChild
        )
        for a in answers
    }
    assert by_id["text"].data == fields["text"]
    assert by_id["empty"] is None
    assert document.documentElement.namespaceURI == NS


def test_escape_uses_references_for_everything_beyond_ascii() -> None:
    assert escape("a&b<c>d\"e'f") == "a&amp;b&lt;c&gt;d\"e'f"
    assert escape("é€\U0001f600") == "&#233;&#8364;&#128512;"
    assert escape("x\ry\nz\t") == "x&#13;y\nz\t"
    assert escape("\x01") == "&#65533;"


def test_a_native_answer_renders_as_its_json() -> None:
    xml = render_answer({"label": "cat"})
    parsed = xmltodict.parse(xml)["QuestionFormAnswers"]["Answer"]
    assert parsed == {"QuestionIdentifier": "answer", "FreeText": '{"label":"cat"}'}


def test_a_good_form_answer_fits() -> None:
    assert answer_problems(FORM, GOOD_FORM_ANSWER) == []
    only_required = {
        "answers": {"colour": {"selection_identifiers": ["red"]}, "count": {"free_text": "0"}}
    }
    assert answer_problems(FORM, only_required) == []


def _msgs(question: Any, answer: Any) -> list[tuple[tuple[Any, ...], str]]:
    return [(tuple(p["loc"]), p["msg"]) for p in answer_problems(question, answer)]


def _with(identifier: str, value: Any) -> dict[str, Any]:
    return {"answers": {**GOOD_FORM_ANSWER["answers"], identifier: value}}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"answers": {"count": {"free_text": "3"}}}, ("colour", "this question is required")),
        (
            _with("colour", {"selection_identifiers": ["purple"]}),
            ("colour", "not a SelectionIdentifier"),
        ),
        (_with("colour", {"selection_identifiers": ["red", "blue"]}), ("colour", "at most 1")),
        (_with("colour", {"selection_identifiers": []}), ("colour", "at least 1")),
        (
            _with("colour", {"selection_identifiers": ["red"], "other_selection_text": "x"}),
            ("colour", "no OtherSelection"),
        ),
        (
            _with(
                "shapes",
                {"selection_identifiers": ["circle", "square"], "other_selection_text": "star"},
            ),
            ("shapes", "at most 2"),
        ),
        (
            _with("shapes", {"selection_identifiers": [], "other_selection_text": "s"}),
            ("shapes", "at least 2 characters"),
        ),
        (_with("count", {"free_text": "many"}), ("count", "must be a number")),
        (_with("count", {"free_text": "51"}), ("count", "at most 50")),
        (_with("count", {"free_text": "1.5"}), ("count", "Digits only, please.")),
        (_with("count", {"free_text": 3}), ("count", "free_text is a string")),
        (_with("comment", {"free_text": "nope"}), ("comment", "the answer must match ok")),
        (_with("comment", {"free_text": "OK" + "x" * 200}), ("comment", "at most 200 characters")),
        (
            _with("photo", {"uploaded_file_key": "k", "uploaded_file_size_in_bytes": 5}),
            ("photo", "10-1000000 bytes"),
        ),
        (_with("nosuch", {"free_text": "x"}), ("nosuch", "no Question of the form has this id")),
        (_with("comment", {"free_text": "ok\x00"}), ("comment", "control character")),
    ],
)
def test_form_answers_checked_against_the_form(answer: Any, expected: tuple[str, str]) -> None:
    identifier, fragment = expected
    problems = _msgs(FORM, answer)
    assert any(loc == ("answers", identifier) and fragment in msg for loc, msg in problems), (
        problems
    )


def test_case_insensitive_flag_applies() -> None:
    assert answer_problems(FORM, _with("comment", {"free_text": "it is Ok"})) == []


def test_fields_answers() -> None:
    assert answer_problems(HTML, {"fields": {"label": "x", "tags": ["a", "b"]}}) == []
    assert _msgs(HTML, {"fields": {"label": 3}}) == [
        (("fields", "label"), "a field's value is a string or a list of strings")
    ]
    assert _msgs(HTML, {"answers": {}})[0][1].startswith("an HTMLQuestion answer is")
    assert _msgs(FORM, {"fields": {}})[0][1].startswith("a QuestionForm answer is")
    assert _msgs(HTML, {"fields": {"": "x"}})[0][0] == ("fields", "")
