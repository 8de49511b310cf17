"""Question XML: the three MTurk documents parsed with namespaces, and what MTurk refuses."""

from __future__ import annotations

import pytest

from services.tasks.mturk.errors import MTurkRequestError
from services.tasks.mturk.questions import (
    MAX_QUESTION_BYTES,
    FileUploadAnswer,
    FreeTextAnswer,
    SelectionAnswer,
    parse_question,
    parse_question_form,
)
from tests.services.tasks.mturk.question_samples import (
    EXTERNAL_QUESTION,
    HTML_QUESTION,
    QUESTION_FORM,
    SCHEMAS,
    question_form,
)

PARSE_ERROR_START = (
    "There was an error parsing the XML question or answer data in your request. Please make "
    "sure the data is well-formed and validates against the appropriate schema. Details: "
)


def refused(xml: str) -> MTurkRequestError:
    with pytest.raises(MTurkRequestError) as caught:
        parse_question(xml)
    return caught.value


def test_html_question() -> None:
    parsed = parse_question(HTML_QUESTION)
    assert (parsed.kind, parsed.version, parsed.frame_height) == ("HTMLQuestion", "2011-11-11", 450)
    assert parsed.namespace == f"{SCHEMAS}/2011-11-11/HTMLQuestion.xsd"
    assert parsed.html_content is not None
    assert parsed.html_content.lstrip().startswith("<!DOCTYPE html><html>")
    assert 'name="mturk_form"' in parsed.html_content
    assert parsed.xml == HTML_QUESTION and parsed.questions == ()


def test_external_question_with_declaration_and_escaped_url() -> None:
    parsed = parse_question(EXTERNAL_QUESTION)
    assert parsed.kind == "ExternalQuestion" and parsed.version == "2006-07-14"
    assert parsed.external_url == "https://tasks.example.org/hit?item=7&lang=en"
    assert parsed.frame_height == 0


@pytest.mark.parametrize("version", ["2005-10-01", "2017-11-06"])
def test_question_form_both_versions(version: str) -> None:
    parsed = parse_question(question_form(version))
    assert parsed.kind == "QuestionForm" and parsed.version == version
    assert parsed.question_ids == ("colour", "shapes", "count", "comment", "photo")
    assert parsed.overview_text == "Colours Answer about the picture."
    colour = parsed.question("colour")
    assert colour is not None and colour.is_required and colour.display_name == "Main colour"
    assert colour.content_text == "Which colour dominates?"
    assert isinstance(colour.answer, SelectionAnswer)
    assert colour.answer.selection_ids == ("red", "blue", "green")
    assert (colour.answer.min_selection_count, colour.answer.max_selection_count) == (1, 1)
    assert colour.answer.style == "radiobutton" and colour.answer.other_selection is None
    shapes = parsed.question("shapes")
    assert shapes is not None and not shapes.is_required
    assert isinstance(shapes.answer, SelectionAnswer)
    assert shapes.answer.max_selection_count == 2
    assert shapes.answer.other_selection is not None
    assert shapes.answer.other_selection.max_length == 20
    count = parsed.question("count")
    assert count is not None and isinstance(count.answer, FreeTextAnswer)
    assert count.answer.is_numeric and (count.answer.min_value, count.answer.max_value) == (0, 50)
    assert count.answer.regexes[0].error_text == "Digits only, please."
    assert count.answer.default_text == "0"
    comment = parsed.question("comment")
    assert comment is not None and comment.content_text == "Anything else ?"
    assert isinstance(comment.answer, FreeTextAnswer) and comment.answer.number_of_lines == 3
    photo = parsed.question("photo")
    assert photo is not None and isinstance(photo.answer, FileUploadAnswer)
    assert (photo.answer.min_file_size, photo.answer.max_file_size) == (10, 1_000_000)


def test_parsing_is_namespace_aware() -> None:
    """The element names alone are not enough: MTurk validates against the namespace's XSD."""
    no_namespace = (
        "<HTMLQuestion><HTMLContent>x</HTMLContent><FrameHeight>1</FrameHeight></HTMLQuestion>"
    )
    assert "Cannot find the declaration of element 'HTMLQuestion'" in refused(no_namespace).message
    swapped = HTML_QUESTION.replace("2011-11-11/HTMLQuestion", "2006-07-14/ExternalQuestion")
    assert "Cannot find the declaration" in refused(swapped).message
    prefixed = (
        f'<q:HTMLQuestion xmlns:q="{SCHEMAS}/2011-11-11/HTMLQuestion.xsd">'
        "<q:HTMLContent>hi</q:HTMLContent><q:FrameHeight>5</q:FrameHeight></q:HTMLQuestion>"
    )
    assert parse_question(prefixed).html_content == "hi"
    foreign_child = HTML_QUESTION.replace(
        "<FrameHeight>450</FrameHeight>", '<FrameHeight xmlns="urn:other">450</FrameHeight>'
    )
    assert "Invalid content was found starting with element 'FrameHeight'" in (
        refused(foreign_child).message
    )


@pytest.mark.parametrize(
    ("xml", "details"),
    [
        ("<HTMLQuestion", "not well-formed"),
        ("", "Premature end of file"),
        (
            HTML_QUESTION.replace("<FrameHeight>450</FrameHeight>", ""),
            "'{FrameHeight}' is expected",
        ),
        (HTML_QUESTION.replace(">450<", ">tall<"), "'tall' is not a valid value for 'integer'"),
        (HTML_QUESTION.replace(">450<", ">-1<"), "not within [0, 2000000000]"),
        (QUESTION_FORM.replace("<Text>Red</Text>", "<Bold>Red</Bold>"), "element 'Bold'"),
        (QUESTION_FORM.replace(">radiobutton<", ">slider<"), "'slider' is not facet-valid"),
        (QUESTION_FORM.replace(">shapes<", ">colour<"), "used by more than one Question"),
        (QUESTION_FORM.replace(">2</MaxSelectionCount>", ">4</MaxSelectionCount>"), "not within"),
        (QUESTION_FORM.replace('minValue="0"', 'minValue="60"'), "above its maxValue"),
        (QUESTION_FORM.replace('flags="i"', 'flags="g"'), "only 'i' is"),
        (QUESTION_FORM.replace('regex="ok"', 'regex="(a)\\1"'), "is not supported"),
        (QUESTION_FORM.replace("<IsRequired>true", "<IsRequired>yes"), "'boolean'"),
        (
            QUESTION_FORM.replace(">red</SelectionIdentifier>", ">blue</SelectionIdentifier>"),
            "must be unique",
        ),
        (
            f'<QuestionForm xmlns="{SCHEMAS}/2017-11-06/QuestionForm.xsd"><Overview>'
            "<Text>x</Text></Overview></QuestionForm>",
            "a QuestionForm needs a Question",
        ),
        (
            QUESTION_FORM.replace("<MinFileSizeInBytes>10</MinFileSizeInBytes>", ""),
            "'{MinFileSizeInBytes}' is expected",
        ),
    ],
)
def test_invalid_documents_get_mturks_parse_error(xml: str, details: str) -> None:
    error = refused(xml)
    assert error.turk_error_code == "AWS.MechanicalTurk.XMLParseError"
    assert error.message.startswith(PARSE_ERROR_START)
    assert details in error.message


def test_entities_and_dtds_are_refused_before_any_expansion() -> None:
    billion_laughs = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        f'<HTMLQuestion xmlns="{SCHEMAS}/2011-11-11/HTMLQuestion.xsd">'
        "<HTMLContent>&lol2;</HTMLContent><FrameHeight>1</FrameHeight></HTMLQuestion>"
    )
    assert "DOCTYPE and entity declarations are not allowed" in refused(billion_laughs).message
    xxe = (
        '<!DOCTYPE q [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        f'<HTMLQuestion xmlns="{SCHEMAS}/2011-11-11/HTMLQuestion.xsd">'
        "<HTMLContent>&x;</HTMLContent><FrameHeight>1</FrameHeight></HTMLQuestion>"
    )
    assert "not allowed" in refused(xxe).message


def test_64_kb_limit_counts_utf8_bytes() -> None:
    shell = HTML_QUESTION.replace("<FrameHeight>", "<!--PAD--><FrameHeight>")
    room = MAX_QUESTION_BYTES - len(shell.encode()) + len("<!--PAD-->")
    fits = shell.replace("<!--PAD-->", f"<!--{'x' * (room - 7)}-->")
    assert len(fits.encode()) == MAX_QUESTION_BYTES
    assert parse_question(fits).kind == "HTMLQuestion"
    # one character more, as a two-byte one: refused on bytes, not characters
    too_big = fits.replace("<!--x", "<!--\u00e9", 1)
    error = refused(too_big)
    assert error.turk_error_code == "AWS.MechanicalTurk.InvalidParameterValue"
    assert "65536 bytes" in error.message and "at most 65535" in error.message


def test_external_url_must_be_https() -> None:
    error = refused(EXTERNAL_QUESTION.replace("https://", "http://"))
    assert "must be an absolute https URL" in error.message
    assert (
        "must be an absolute https URL"
        in refused(
            EXTERNAL_QUESTION.replace(
                "https://tasks.example.org/hit?item=7&amp;lang=en", "https:///x"
            )
        ).message
    )


def test_test_parameter_takes_question_forms_only() -> None:
    assert parse_question_form(QUESTION_FORM).kind == "QuestionForm"
    with pytest.raises(MTurkRequestError) as caught:
        parse_question_form(HTML_QUESTION)
    assert "The Test parameter must be a QuestionForm" in caught.value.message
