"""Answers to MTurk questions: checked against the question, rendered as MTurk's XML.

A task of type `mturk_question` carries `{"question": <XML>, "question_type": <kind>}` as its
input (questions.py parses it). A worker's answer is one of two JSON shapes:

- HTMLQuestion / ExternalQuestion: `{"fields": {name: "value" | ["v1", "v2"]}}`, the submitted
  form's fields (a list for a name the form sent several times, e.g. checkboxes);
- QuestionForm: `{"answers": {QuestionIdentifier: answer}}`, one entry per answered question:
  `{"free_text": "..."}` (FreeTextAnswer), `{"selection_identifiers": ["a", ...]}` with an
  optional `"other_selection_text"` (SelectionAnswer), or
  `{"uploaded_file_key": "...", "uploaded_file_size_in_bytes": n}` (FileUploadAnswer), checked
  against the form: required questions, selection ids and counts, free-text constraints
  (IsNumeric bounds, Length, AnswerFormatRegex), file sizes.

`render_answer` turns a stored answer into what MTurk's GetAssignment/ListAssignmentsForHIT put in
`Answer`: a QuestionFormAnswers (2005-10-01) document, byte for byte in MTurk's layout: the
declaration `<?xml version="1.0" encoding="ASCII"?>`, then the elements with no whitespace
between them, text escaped as MTurk's serializer does (`&amp;`, `&lt;`, `&gt;`; every non-ASCII
character as a decimal character reference, since the document declares ASCII).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from services.tasks.mturk.questions import (
    AnswerSpec,
    FileUploadAnswer,
    FreeTextAnswer,
    ParsedQuestion,
    SelectionAnswer,
    answer_format_pattern,
)

QUESTION_FORM_ANSWERS_NS = (
    "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/"
    "QuestionFormAnswers.xsd"
)
XML_DECLARATION = '<?xml version="1.0" encoding="ASCII"?>'
MULTI_VALUE_SEPARATOR = "|"
"""How MTurk joins several values of one form field into one FreeText."""

MAX_FIELDS = 1_000
MAX_FIELD_NAME = 1_000
MAX_TEXT = 65_535
MAX_VALUES_PER_FIELD = 1_000

Problem = dict[str, Any]


# --- checking ----------------------------------------------------------------------------------


def answer_problems(question: ParsedQuestion, answer: Any) -> list[Problem]:
    """Problems of `answer` for `question`, as `[{"loc": [...], "msg": ...}]` (empty: fits)."""
    if not isinstance(answer, dict):
        return [{"loc": [], "msg": "an answer is a JSON object"}]
    if question.kind == "QuestionForm":
        if set(answer) != {"answers"}:
            return [{"loc": [], "msg": 'a QuestionForm answer is {"answers": {...}} only'}]
        return _form_problems(question, answer["answers"])
    if set(answer) != {"fields"}:
        return [{"loc": [], "msg": f'an {question.kind} answer is {{"fields": {{...}}}} only'}]
    return _fields_problems(answer["fields"])


def _fields_problems(fields: Any) -> list[Problem]:
    if not isinstance(fields, dict):
        return [{"loc": ["fields"], "msg": "fields is an object of name -> string or strings"}]
    if len(fields) > MAX_FIELDS:
        return [{"loc": ["fields"], "msg": f"at most {MAX_FIELDS} fields"}]
    problems: list[Problem] = []
    for name, value in fields.items():
        loc = ["fields", name]
        if not name or len(name) > MAX_FIELD_NAME:
            problems.append({"loc": loc, "msg": f"a field name has 1-{MAX_FIELD_NAME} characters"})
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list) and not 1 <= len(value) <= MAX_VALUES_PER_FIELD:
            problems.append({"loc": loc, "msg": f"a list holds 1-{MAX_VALUES_PER_FIELD} values"})
        elif not all(isinstance(v, str) for v in values):
            problems.append({"loc": loc, "msg": "a field's value is a string or a list of strings"})
        elif sum(map(len, values)) > MAX_TEXT:
            problems.append({"loc": loc, "msg": f"at most {MAX_TEXT} characters"})
        else:
            bad = next((v for v in values if _xml_unsafe(v)), None)
            if bad is not None:
                problems.append({"loc": loc, "msg": _XML_UNSAFE_MSG})
    return problems


def _form_problems(question: ParsedQuestion, answers: Any) -> list[Problem]:
    if not isinstance(answers, dict):
        return [{"loc": ["answers"], "msg": "answers is an object of QuestionIdentifier -> answer"}]
    problems: list[Problem] = []
    known = set(question.question_ids)
    for identifier in answers:
        if identifier not in known:
            problems.append(
                {"loc": ["answers", identifier], "msg": "no Question of the form has this id"}
            )
    for form_question in question.questions:
        loc: list[str | int] = ["answers", form_question.identifier]
        given = answers.get(form_question.identifier)
        if given is None:
            if form_question.is_required:
                problems.append({"loc": loc, "msg": "this question is required"})
            continue
        for msg in _spec_problems(form_question.answer, given):
            problems.append({"loc": loc, "msg": msg})
    return problems


def _spec_problems(spec: AnswerSpec, given: Any) -> list[str]:
    if not isinstance(given, dict):
        return ["an answer to a question is an object"]
    if isinstance(spec, FreeTextAnswer):
        if set(given) != {"free_text"}:
            return ['a FreeTextAnswer is answered with {"free_text": "..."}']
        return _free_text_problems(spec, given["free_text"])
    if isinstance(spec, SelectionAnswer):
        return _selection_problems(spec, given)
    return _upload_problems(spec, given)


def _free_text_problems(spec: FreeTextAnswer, text: Any) -> list[str]:
    if not isinstance(text, str):
        return ["free_text is a string"]
    if len(text) > MAX_TEXT:
        return [f"free_text has at most {MAX_TEXT} characters"]
    if _xml_unsafe(text):
        return [_XML_UNSAFE_MSG]
    problems: list[str] = []
    if spec.is_numeric:
        number = _number(text)
        if number is None:
            problems.append("the answer must be a number")
        else:
            if spec.min_value is not None and number < spec.min_value:
                problems.append(f"the answer must be at least {spec.min_value}")
            if spec.max_value is not None and number > spec.max_value:
                problems.append(f"the answer must be at most {spec.max_value}")
    if spec.min_length is not None and len(text) < spec.min_length:
        problems.append(f"the answer must have at least {spec.min_length} characters")
    if spec.max_length is not None and len(text) > spec.max_length:
        problems.append(f"the answer must have at most {spec.max_length} characters")
    for regex in spec.regexes:
        if not _matches(answer_format_pattern(regex), text):
            problems.append(regex.error_text or f"the answer must match {regex.regex}")
    return problems


_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def _number(text: str) -> Decimal | None:
    stripped = text.strip()
    if not _NUMBER.fullmatch(stripped):
        return None
    try:
        return Decimal(stripped)
    except InvalidOperation:
        return None


def _matches(pattern: str, text: str) -> bool:
    # The Rust engine (linear time) through the answers module's cached validators; the
    # pattern was compiled when the question was parsed.
    from services.tasks.answers import validator_for

    validator = validator_for({"type": "string", "pattern": pattern})
    return next(iter(validator.iter_errors(text)), None) is None


def _selection_problems(spec: SelectionAnswer, given: dict[str, Any]) -> list[str]:
    allowed_keys = {"selection_identifiers", "other_selection_text"}
    if not set(given) <= allowed_keys or not given:
        return [
            'a SelectionAnswer is answered with {"selection_identifiers": [...]} and, where the '
            'question has an OtherSelection, "other_selection_text"'
        ]
    ids = given.get("selection_identifiers", [])
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        return ["selection_identifiers is a list of SelectionIdentifier strings"]
    if len(set(ids)) != len(ids):
        return ["a selection may be chosen once"]
    unknown = [i for i in ids if i not in spec.selection_ids]
    if unknown:
        return [f"not a SelectionIdentifier of this question: {', '.join(unknown[:5])}"]
    problems: list[str] = []
    count = len(ids)
    other = given.get("other_selection_text")
    if other is not None:
        if spec.other_selection is None:
            return ["this question has no OtherSelection"]
        problems += _free_text_problems(spec.other_selection, other)
        count += 1
    if count < spec.min_selection_count:
        problems.append(f"choose at least {spec.min_selection_count} selection(s)")
    if count > spec.max_selection_count:
        problems.append(f"choose at most {spec.max_selection_count} selection(s)")
    return problems


def _upload_problems(spec: FileUploadAnswer, given: dict[str, Any]) -> list[str]:
    if set(given) != {"uploaded_file_key", "uploaded_file_size_in_bytes"}:
        return [
            'a FileUploadAnswer is answered with {"uploaded_file_key": "...", '
            '"uploaded_file_size_in_bytes": n}'
        ]
    key, size = given["uploaded_file_key"], given["uploaded_file_size_in_bytes"]
    if not isinstance(key, str) or not 1 <= len(key) <= 1024 or _xml_unsafe(key):
        return ["uploaded_file_key is a string of 1-1024 characters"]
    if isinstance(size, bool) or not isinstance(size, int):
        return ["uploaded_file_size_in_bytes is an integer"]
    if not spec.min_file_size <= size <= spec.max_file_size:
        return [f"the file must have {spec.min_file_size}-{spec.max_file_size} bytes"]
    return []


# XML 1.0 cannot carry these characters at all (not even as references): an answer holding
# one could never be rendered for an MTurk client, so it is refused at submit.
_XML_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_XML_UNSAFE_MSG = "the answer holds a control character XML cannot carry"


def _xml_unsafe(text: str) -> bool:
    return _XML_UNSAFE.search(text) is not None


# --- rendering ---------------------------------------------------------------------------------


def render_answer(answer: Any, question: ParsedQuestion | None = None) -> str:
    """The QuestionFormAnswers document of a stored answer.

    Form fields become one Answer each (FreeText; several values joined with "|", as MTurk
    joins them), in the order the stored object gives (Postgres' JSONB orders keys by length,
    then bytewise, so that is not the order of the worker's form). QuestionForm answers follow
    the form's question order when `question` is given, else the stored order. An answer of any
    other shape (a native answer to a native project viewed through the door) is rendered as one
    FreeText holding its JSON, under the identifier "answer"."""
    parts = [XML_DECLARATION, f'<QuestionFormAnswers xmlns="{QUESTION_FORM_ANSWERS_NS}">']
    if (
        isinstance(answer, dict)
        and set(answer) == {"fields"}
        and isinstance(answer["fields"], dict)
    ):
        for name, value in answer["fields"].items():
            text = MULTI_VALUE_SEPARATOR.join(value) if isinstance(value, list) else str(value)
            parts.append(_answer(name, f"<FreeText>{escape(text)}</FreeText>"))
    elif (
        isinstance(answer, dict)
        and set(answer) == {"answers"}
        and isinstance(answer["answers"], dict)
    ):
        given: dict[str, Any] = answer["answers"]
        order = list(question.question_ids) if question is not None else list(given)
        order += [i for i in given if i not in order]
        for identifier in order:
            if identifier in given:
                parts.append(_answer(identifier, _answer_body(given[identifier])))
    elif answer is not None:
        import orjson

        text = orjson.dumps(answer).decode()
        parts.append(_answer("answer", f"<FreeText>{escape(text)}</FreeText>"))
    parts.append("</QuestionFormAnswers>")
    return "".join(parts)


def _answer(identifier: str, body: str) -> str:
    return f"<Answer><QuestionIdentifier>{escape(identifier)}</QuestionIdentifier>{body}</Answer>"


def _answer_body(given: Any) -> str:
    if not isinstance(given, dict):
        return f"<FreeText>{escape(str(given))}</FreeText>"
    if "free_text" in given:
        return f"<FreeText>{escape(str(given['free_text']))}</FreeText>"
    if "uploaded_file_key" in given:
        return (
            f"<UploadedFileSizeInBytes>{int(given.get('uploaded_file_size_in_bytes') or 0)}"
            f"</UploadedFileSizeInBytes>"
            f"<UploadedFileKey>{escape(str(given['uploaded_file_key']))}</UploadedFileKey>"
        )
    body = "".join(
        f"<SelectionIdentifier>{escape(str(i))}</SelectionIdentifier>"
        for i in given.get("selection_identifiers") or []
    )
    other = given.get("other_selection_text")
    if other is not None:
        body += f"<OtherSelectionText>{escape(str(other))}</OtherSelectionText>"
    return body


_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"}
_NEEDS_ESCAPE = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\U0010ffff]")


def escape(text: str) -> str:
    """Text content for an ASCII document: markup characters as entities, a carriage return
    as `&#13;` (a parser would otherwise fold it into a newline), anything beyond ASCII (and
    DEL) as a decimal character reference; characters XML 1.0 cannot hold at all become
    U+FFFD (answers holding them are refused at submit; this only guards older data)."""
    return _NEEDS_ESCAPE.sub(_escape_one, text)


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    if char in _ESCAPES:
        return _ESCAPES[char]
    if _xml_unsafe(char):
        return "&#65533;"
    return f"&#{ord(char)};"
