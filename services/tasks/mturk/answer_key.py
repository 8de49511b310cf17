"""A qualification test given as MTurk XML (QuestionForm + AnswerKey) as a native scored test.

CreateQualificationType's `Test` (a QuestionForm), `AnswerKey` and `TestDurationInSeconds`
become the workers service's native `test` and `answer_key` (services/workers/
qualification_types/schemas.py), which the attempts API serves and scores: a native worker
takes the test through `POST /v1/qualification-types/{id}/attempts` and holds the mapped score
as the qualification's value.

The conversion, question by question:

| QuestionForm | native question |
|---|---|
| SelectionAnswer, MaxSelectionCount 1 (the default) | `single_choice`, options = the Selections |
| SelectionAnswer, MaxSelectionCount > 1 | `multiple_choice` |
| FreeTextAnswer with IsNumeric | `number` |
| FreeTextAnswer | `text` |

and the AnswerKey: each Question's AnswerOptions become scored `options` (the worker's
selection must be exactly the option's SelectionIdentifiers, as on MTurk), DefaultScore the
`default_score`; QualificationValueMapping: none = `sum`, PercentageMapping = `percentage` with
`maximum_score` (MaximumSummedScore), ScaleMapping = `scale` with `multiplier`
(SummedScoreMultiplier), RangeMapping = `range` with `ranges` and `out_of_range_value`.

What the native test cannot express is refused with a RequestError naming it (FileUploadAnswer
and OtherSelection in a test, identifiers outside `[A-Za-z0-9_-]{1,64}`, a selection question
with fewer than 2 selections, more than 100 questions, a duration above 86,400 seconds).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from xml.etree.ElementTree import Element

from services.tasks.mturk.errors import MTurkRequestError
from services.tasks.mturk.questions import (
    MTURK_SCHEMAS,
    FileUploadAnswer,
    FreeTextAnswer,
    ParsedQuestion,
    SelectionAnswer,
    XmlReader,
    load_xml,
    parse_question_form,
)

ANSWER_KEY_NS = f"{MTURK_SCHEMAS}/2005-10-01/AnswerKey.xsd"
INVALID_VALUE = "AWS.MechanicalTurk.InvalidParameterValue"
NATIVE_IDENTIFIER_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
)
MAX_TEST_QUESTIONS = 100
MAX_TEST_DURATION_SECONDS = 86_400
MAX_PROMPT = 5_000
MAX_OPTION_TEXT = 1_000
MAX_SCORE = 1_000
INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)


def invalid(message: str) -> MTurkRequestError:
    return MTurkRequestError(message, INVALID_VALUE)


@dataclass(frozen=True, slots=True)
class NativeTest:
    test: dict[str, Any]
    answer_key: dict[str, Any] | None


def native_test(
    test_xml: str, *, duration_seconds: int | None, answer_key_xml: str | None
) -> NativeTest:
    """The native test (and answer key) for CreateQualificationType's Test and AnswerKey."""
    form = parse_question_form(test_xml, parameter="Test")
    if duration_seconds is None:
        raise invalid("TestDurationInSeconds is required when a Test is given.")
    if not 1 <= duration_seconds <= MAX_TEST_DURATION_SECONDS:
        raise invalid(
            f"TestDurationInSeconds must be between 1 and {MAX_TEST_DURATION_SECONDS} here "
            f"(got {duration_seconds})."
        )
    questions = _questions(form)
    test = {"questions": questions, "duration_seconds": duration_seconds}
    key = _answer_key(answer_key_xml, form, questions) if answer_key_xml is not None else None
    return NativeTest(test=test, answer_key=key)


def _identifier(value: str, what: str) -> str:
    if not 1 <= len(value) <= 64 or not set(value) <= NATIVE_IDENTIFIER_CHARS:
        raise invalid(
            f"The {what} '{value}' cannot be used in a qualification test here: identifiers "
            "of test questions and selections are 1-64 letters, digits, '_' or '-'."
        )
    return value


def _questions(form: ParsedQuestion) -> list[dict[str, Any]]:
    if len(form.questions) > MAX_TEST_QUESTIONS:
        raise invalid(f"A qualification test has at most {MAX_TEST_QUESTIONS} questions here.")
    out: list[dict[str, Any]] = []
    for question in form.questions:
        identifier = _identifier(question.identifier, "QuestionIdentifier")
        prompt = question.content_text or question.display_name or identifier
        if len(prompt) > MAX_PROMPT:
            raise invalid(f"The text of question '{identifier}' is over {MAX_PROMPT} characters.")
        spec = question.answer
        native: dict[str, Any] = {"id": identifier, "prompt": prompt}
        if isinstance(spec, SelectionAnswer):
            if spec.other_selection is not None:
                raise invalid(
                    f"Question '{identifier}': OtherSelection is not supported in qualification "
                    "tests here."
                )
            if len(spec.selections) < 2:
                raise invalid(f"Question '{identifier}' needs at least 2 selections in a test.")
            native["kind"] = "single_choice" if spec.max_selection_count == 1 else "multiple_choice"
            native["options"] = [
                {
                    "id": _identifier(s.identifier, "SelectionIdentifier"),
                    "text": (s.text or s.identifier)[:MAX_OPTION_TEXT],
                }
                for s in spec.selections
            ]
        elif isinstance(spec, FreeTextAnswer):
            native["kind"] = "number" if spec.is_numeric else "text"
        elif isinstance(spec, FileUploadAnswer):
            raise invalid(
                f"Question '{identifier}': FileUploadAnswer is not supported in qualification "
                "tests."
            )
        out.append(native)
    return out


# --- the AnswerKey document --------------------------------------------------------------------


def _answer_key(xml: str, form: ParsedQuestion, questions: list[dict[str, Any]]) -> dict[str, Any]:
    root, namespace, local = load_xml(xml, parameter="AnswerKey")
    reader = XmlReader(namespace, "AnswerKey")
    if local != "AnswerKey" or namespace != ANSWER_KEY_NS:
        shown = f"{{{namespace}}}{local}" if namespace else local
        raise reader.fail(
            f"cvc-elt.1: Cannot find the declaration of element '{shown}'. The AnswerKey must "
            "be an AnswerKey (2005-10-01) in its namespace."
        )
    reader.no_attributes(root)
    children = reader.children(root, ("Question", "QualificationValueMapping"))
    by_id = {q["id"]: q for q in questions}
    answers: dict[str, Any] = {}
    for local_name, child in children:
        if local_name != "Question":
            continue
        identifier, entry = _key_question(reader, child)
        question = by_id.get(identifier)
        if question is None:
            raise invalid(f"The AnswerKey names question '{identifier}', which is not in the Test.")
        if question["kind"] not in ("single_choice", "multiple_choice"):
            raise invalid(
                f"The AnswerKey scores question '{identifier}', which is not a SelectionAnswer: "
                "an answer key scores selections only."
            )
        option_ids = {o["id"] for o in question["options"]}
        for option in entry["options"]:
            unknown = [s for s in option["selections"] if s not in option_ids]
            if unknown:
                raise invalid(
                    f"The AnswerKey's AnswerOption for question '{identifier}' names "
                    f"SelectionIdentifier '{unknown[0]}', which the question does not have."
                )
        if identifier in answers:
            raise invalid(f"The AnswerKey scores question '{identifier}' twice.")
        answers[identifier] = entry
    if not answers:
        raise reader.fail(
            "cvc-complex-type.2.4.b: The content of element 'AnswerKey' is not complete. "
            "One of '{Question}' is expected."
        )
    key: dict[str, Any] = {"answers": answers, "mapping": "sum"}
    mapping = reader.one(root, children, "QualificationValueMapping")
    if mapping is not None:
        key |= _mapping(reader, mapping)
    if key["mapping"] == "percentage" or key["mapping"] == "sum":
        total = sum(
            max([e.get("default_score", 0), *(o["score"] for o in e["options"])])
            for e in answers.values()
        )
        if total == 0:
            raise invalid("The AnswerKey can give no points: its highest summed score is 0.")
    return key


def _key_question(reader: XmlReader, element: Element) -> tuple[str, dict[str, Any]]:
    children = reader.children(element, ("QuestionIdentifier", "AnswerOption", "DefaultScore"))
    identifier = reader.text(reader.required(element, children, "QuestionIdentifier")).strip()
    options: list[dict[str, Any]] = []
    for local, child in children:
        if local != "AnswerOption":
            continue
        items = reader.children(child, ("SelectionIdentifier", "AnswerScore"))
        selections = [reader.text(c).strip() for name, c in items if name == "SelectionIdentifier"]
        if not selections:
            raise reader.fail(
                "cvc-complex-type.2.4.b: The content of element 'AnswerOption' is not complete. "
                "One of '{SelectionIdentifier}' is expected."
            )
        if len(set(selections)) != len(selections):
            raise invalid(f"An AnswerOption of question '{identifier}' repeats a selection.")
        score = reader.integer(
            reader.required(child, items, "AnswerScore"), minimum=0, maximum=MAX_SCORE
        )
        options.append({"selections": selections, "score": score})
    if not options:
        raise reader.fail(
            "cvc-complex-type.2.4.b: The content of element 'Question' is not complete. "
            "One of '{AnswerOption}' is expected."
        )
    entry: dict[str, Any] = {"options": options}
    default = reader.one(element, children, "DefaultScore")
    if default is not None:
        value = reader.integer(default, minimum=0, maximum=MAX_SCORE)
        if value:
            entry["default_score"] = value
    return identifier, entry


def _mapping(reader: XmlReader, element: Element) -> dict[str, Any]:
    children = reader.children(element, ("PercentageMapping", "ScaleMapping", "RangeMapping"))
    if len(children) != 1:
        raise reader.fail(
            "cvc-complex-type.2.4.b: QualificationValueMapping holds exactly one of "
            "'{PercentageMapping, ScaleMapping, RangeMapping}'."
        )
    local, child = children[0]
    if local == "PercentageMapping":
        items = reader.children(child, ("MaximumSummedScore",))
        maximum = reader.integer(
            reader.required(child, items, "MaximumSummedScore"), minimum=1, maximum=INT32_MAX
        )
        return {"mapping": "percentage", "maximum_score": maximum}
    if local == "ScaleMapping":
        items = reader.children(child, ("SummedScoreMultiplier",))
        raw = reader.text(reader.required(child, items, "SummedScoreMultiplier")).strip()
        try:
            multiplier = Decimal(raw)
        except InvalidOperation:
            multiplier = Decimal("NaN")
        if not multiplier.is_finite() or not 0 <= multiplier <= 1_000_000:
            raise reader.fail(
                f"cvc-datatype-valid.1.2.1: '{raw}' is not a valid value for "
                "'SummedScoreMultiplier' (a number from 0 to 1000000)."
            )
        return {"mapping": "scale", "multiplier": float(multiplier)}
    items = reader.children(child, ("SummedScoreRange", "OutOfRangeQualificationValue"))
    ranges: list[dict[str, int]] = []
    for name, item in items:
        if name != "SummedScoreRange":
            continue
        parts = reader.children(
            item, ("InclusiveLowerBound", "InclusiveUpperBound", "QualificationValue")
        )
        low = reader.integer(
            reader.required(item, parts, "InclusiveLowerBound"), minimum=0, maximum=INT32_MAX
        )
        high = reader.integer(
            reader.required(item, parts, "InclusiveUpperBound"), minimum=0, maximum=INT32_MAX
        )
        value = reader.integer(
            reader.required(item, parts, "QualificationValue"), minimum=INT32_MIN, maximum=INT32_MAX
        )
        if low > high:
            raise invalid(
                f"A SummedScoreRange's lower bound {low} is above its upper bound {high}."
            )
        ranges.append({"low": low, "high": high, "value": value})
    if not ranges:
        raise reader.fail(
            "cvc-complex-type.2.4.b: The content of element 'RangeMapping' is not complete. "
            "One of '{SummedScoreRange}' is expected."
        )
    ordered = sorted(ranges, key=lambda r: r["low"])
    for before, after in itertools.pairwise(ordered):
        if after["low"] <= before["high"]:
            raise invalid("The SummedScoreRanges of the RangeMapping overlap.")
    out_of_range = reader.integer(
        reader.required(child, items, "OutOfRangeQualificationValue"),
        minimum=INT32_MIN,
        maximum=INT32_MAX,
    )
    return {"mapping": "range", "ranges": ranges, "out_of_range_value": out_of_range}
