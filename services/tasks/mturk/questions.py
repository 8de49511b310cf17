"""MTurk question XML: parsed with namespaces, validated, and turned into plain values.

The three question documents MTurk accepts in CreateHIT's `Question` (and QuestionForm in
CreateQualificationType's `Test`):

- HTMLQuestion (2011-11-11): `HTMLContent` (the page, usually a CDATA section) and `FrameHeight`;
- ExternalQuestion (2006-07-14): `ExternalURL` (https only) and `FrameHeight`;
- QuestionForm (2005-10-01 and 2017-11-06): `Overview` and `Question` elements, each question
  with its `QuestionIdentifier`, `DisplayName`, `IsRequired`, `QuestionContent` and one
  `AnswerSpecification` (`FreeTextAnswer` with `Constraints`, `SelectionAnswer` with
  `Selections`, `StyleSuggestion` and selection counts, or `FileUploadAnswer`).

The document is requester input read by the tasks service, so it is parsed as hostile: at most
64 KB (MTurk's limit, 65,535 bytes of UTF-8), with defusedxml refusing DTDs, entity
declarations and external references (no billion laughs, no XXE), and elements matched by
their namespace-qualified names, as MTurk's schema validation does: a QuestionForm in the
HTMLQuestion namespace is not a QuestionForm. What MTurk's XSDs make an error (an unknown
element, a missing required one, a count out of range) is an error here too, worded like
MTurk's XML parse error; presentation-only content (Overview, FormattedContent, Binary) is
kept as the raw XML and its text, not interpreted.

The parsed question is cached by its text: a task's question is parsed again at every submit
(answer validation), and tasks of one batch usually share a handful of distinct questions.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from threading import Lock
from typing import Literal
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from services.tasks.mturk.errors import MTurkRequestError

MTURK_SCHEMAS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas"
HTML_QUESTION_NS = f"{MTURK_SCHEMAS}/2011-11-11/HTMLQuestion.xsd"
EXTERNAL_QUESTION_NS = f"{MTURK_SCHEMAS}/2006-07-14/ExternalQuestion.xsd"
QUESTION_FORM_NAMESPACES = {
    "2005-10-01": f"{MTURK_SCHEMAS}/2005-10-01/QuestionForm.xsd",
    "2017-11-06": f"{MTURK_SCHEMAS}/2017-11-06/QuestionForm.xsd",
}
MAX_QUESTION_BYTES = 65_535
"""MTurk: "The XML question data must not be larger than 64 kilobytes (65,535 bytes)"."""

MAX_FRAME_HEIGHT = 2_000_000_000
STYLE_SUGGESTIONS = ("radiobutton", "dropdown", "checkbox", "list", "combobox", "multichooser")
XML_PARSE_ERROR = "AWS.MechanicalTurk.XMLParseError"

QuestionKind = Literal["HTMLQuestion", "ExternalQuestion", "QuestionForm"]
QUESTION_KINDS: tuple[str, ...] = ("HTMLQuestion", "ExternalQuestion", "QuestionForm")


class QuestionXmlError(MTurkRequestError):
    """A question document MTurk would refuse; the message follows MTurk's XML parse error."""

    def __init__(self, details: str, *, parameter: str = "Question") -> None:
        self.details = details
        self.parameter = parameter
        super().__init__(
            "There was an error parsing the XML question or answer data in your request. "
            "Please make sure the data is well-formed and validates against the appropriate "
            f"schema. Details: {details}",
            XML_PARSE_ERROR,
        )


@dataclass(frozen=True, slots=True)
class AnswerFormatRegex:
    regex: str
    error_text: str | None
    flags: str | None


@dataclass(frozen=True, slots=True)
class FreeTextAnswer:
    is_numeric: bool
    min_value: int | None
    max_value: int | None
    min_length: int | None
    max_length: int | None
    regexes: tuple[AnswerFormatRegex, ...]
    default_text: str | None
    number_of_lines: int | None


@dataclass(frozen=True, slots=True)
class Selection:
    identifier: str
    text: str


@dataclass(frozen=True, slots=True)
class SelectionAnswer:
    min_selection_count: int
    max_selection_count: int
    style: str | None
    selections: tuple[Selection, ...]
    other_selection: FreeTextAnswer | None
    """An `OtherSelection`: a free-text entry besides the listed selections."""

    @property
    def selection_ids(self) -> tuple[str, ...]:
        return tuple(s.identifier for s in self.selections)


@dataclass(frozen=True, slots=True)
class FileUploadAnswer:
    min_file_size: int
    max_file_size: int


AnswerSpec = FreeTextAnswer | SelectionAnswer | FileUploadAnswer


@dataclass(frozen=True, slots=True)
class FormQuestion:
    identifier: str
    display_name: str | None
    is_required: bool
    content_text: str
    """The question's readable text (Title, Text, list items, alt texts), whitespace folded."""
    answer: AnswerSpec


@dataclass(frozen=True, slots=True)
class ParsedQuestion:
    kind: QuestionKind
    namespace: str
    version: str
    xml: str
    html_content: str | None = None
    external_url: str | None = None
    frame_height: int | None = None
    overview_text: str = ""
    questions: tuple[FormQuestion, ...] = ()

    @property
    def question_ids(self) -> tuple[str, ...]:
        return tuple(q.identifier for q in self.questions)

    def question(self, identifier: str) -> FormQuestion | None:
        for q in self.questions:
            if q.identifier == identifier:
                return q
        return None


def parse_question(xml: str, *, parameter: str = "Question") -> ParsedQuestion:
    """The question document `xml`, parsed and validated; QuestionXmlError when MTurk would
    refuse it. `parameter` names the request parameter in messages (`Test` for a
    qualification test)."""
    if not isinstance(xml, str):  # before the cache, whose key it would be
        raise QuestionXmlError(f"the {parameter} parameter must be a string.", parameter=parameter)
    cached = _cache.get(xml)
    if cached is not None:
        return cached
    parsed = _parse(xml, parameter)
    _cache.put(xml, parsed)
    return parsed


def parse_question_form(xml: str, *, parameter: str = "Test") -> ParsedQuestion:
    """A QuestionForm only (a qualification test): any other question kind is refused."""
    parsed = parse_question(xml, parameter=parameter)
    if parsed.kind != "QuestionForm":
        raise QuestionXmlError(
            f"cvc-elt.1: Cannot find the declaration of element '{parsed.kind}'. "
            f"The {parameter} parameter must be a QuestionForm.",
            parameter=parameter,
        )
    return parsed


class _ParseCache:
    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, ParsedQuestion] = OrderedDict()
        self._lock = Lock()

    def get(self, xml: str) -> ParsedQuestion | None:
        with self._lock:
            found = self._items.get(xml)
            if found is not None:
                self._items.move_to_end(xml)
            return found

    def put(self, xml: str, parsed: ParsedQuestion) -> None:
        with self._lock:
            self._items[xml] = parsed
            if len(self._items) > self.size:
                self._items.popitem(last=False)


_cache = _ParseCache(size=256)


# --- the document ----------------------------------------------------------------------------


def load_xml(xml: str, *, parameter: str) -> tuple[Element, str, str]:
    """The document's root element, its namespace and local name: at most 64 KB, well-formed,
    with no DTD, entity or external reference (refused before anything is expanded)."""
    if not isinstance(xml, str):
        raise QuestionXmlError(f"the {parameter} parameter must be a string.", parameter=parameter)
    size = len(xml.encode("utf-8", errors="surrogatepass"))
    if size > MAX_QUESTION_BYTES:
        raise MTurkRequestError(
            f"The value of the {parameter} parameter is {size} bytes; "
            f"it must be at most {MAX_QUESTION_BYTES} bytes (64 KB).",
            "AWS.MechanicalTurk.InvalidParameterValue",
        )
    if not xml.strip():
        raise QuestionXmlError("Premature end of file.", parameter=parameter)
    try:
        # forbid_dtd: no DOCTYPE at all (MTurk's documents have none); entities and external
        # references are refused by defusedxml's defaults as well.
        root = fromstring(xml, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise QuestionXmlError(
            f"DOCTYPE and entity declarations are not allowed ({type(exc).__name__}).",
            parameter=parameter,
        ) from exc
    except ParseError as exc:
        raise QuestionXmlError(
            f"The document is not well-formed XML: {exc}.", parameter=parameter
        ) from exc
    except ValueError as exc:  # e.g. an encoding declaration on a str the parser refuses
        raise QuestionXmlError(
            f"The document cannot be read as XML: {exc}.", parameter=parameter
        ) from exc
    namespace, local = _split(root.tag)
    return root, namespace, local


def _parse(xml: str, parameter: str) -> ParsedQuestion:
    root, namespace, local = load_xml(xml, parameter=parameter)
    reader = XmlReader(namespace, parameter)
    if local == "HTMLQuestion" and namespace == HTML_QUESTION_NS:
        return _html_question(root, reader, xml)
    if local == "ExternalQuestion" and namespace == EXTERNAL_QUESTION_NS:
        return _external_question(root, reader, xml)
    if local == "QuestionForm" and namespace in QUESTION_FORM_NAMESPACES.values():
        return _question_form(root, reader, xml)
    shown = f"{{{namespace}}}{local}" if namespace else local
    raise QuestionXmlError(
        f"cvc-elt.1: Cannot find the declaration of element '{shown}'. The question must be an "
        "HTMLQuestion (2011-11-11), an ExternalQuestion (2006-07-14) or a QuestionForm "
        "(2005-10-01 or 2017-11-06) in its namespace.",
        parameter=parameter,
    )


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return "", tag


def _version(namespace: str) -> str:
    return namespace.removeprefix(MTURK_SCHEMAS + "/").split("/", 1)[0]


class XmlReader:
    """Element checks in one namespace, raising MTurk's schema-validation wording."""

    def __init__(self, namespace: str, parameter: str) -> None:
        self.namespace = namespace
        self.parameter = parameter

    def fail(self, details: str) -> QuestionXmlError:
        return QuestionXmlError(details, parameter=self.parameter)

    def children(self, element: Element, allowed: tuple[str, ...]) -> list[tuple[str, Element]]:
        """(local name, child) pairs; a child outside `allowed` or another namespace fails."""
        found: list[tuple[str, Element]] = []
        for child in element:
            if not isinstance(child.tag, str):  # comments, processing instructions
                continue
            namespace, local = _split(child.tag)
            if namespace != self.namespace or local not in allowed:
                expected = ", ".join(allowed)
                raise self.fail(
                    f"cvc-complex-type.2.4.a: Invalid content was found starting with element "
                    f"'{local}' in '{_split(element.tag)[1]}'. One of '{{{expected}}}' is expected."
                )
            found.append((local, child))
        return found

    def one(
        self, element: Element, children: list[tuple[str, Element]], name: str
    ) -> Element | None:
        matches = [c for local, c in children if local == name]
        if len(matches) > 1:
            raise self.fail(
                f"cvc-complex-type.2.4.d: Invalid content was found starting with element "
                f"'{name}' in '{_split(element.tag)[1]}': it may appear once."
            )
        return matches[0] if matches else None

    def required(self, element: Element, children: list[tuple[str, Element]], name: str) -> Element:
        found = self.one(element, children, name)
        if found is None:
            raise self.fail(
                f"cvc-complex-type.2.4.b: The content of element '{_split(element.tag)[1]}' is "
                f"not complete. One of '{{{name}}}' is expected."
            )
        return found

    def text(self, element: Element) -> str:
        if len([c for c in element if isinstance(c.tag, str)]):
            raise self.fail(
                f"cvc-complex-type.2.3: Element '{_split(element.tag)[1]}' cannot have "
                "element children: its content is text only."
            )
        return element.text or ""

    def integer(
        self, element: Element, *, minimum: int, maximum: int, name: str | None = None
    ) -> int:
        return self.integer_value(
            self.text(element).strip(), minimum, maximum, name or _split(element.tag)[1]
        )

    def integer_value(self, raw: str, minimum: int, maximum: int, name: str) -> int:
        if not re.fullmatch(r"[+-]?[0-9]{1,12}", raw):
            raise self.fail(
                f"cvc-datatype-valid.1.2.1: '{raw}' is not a valid value for 'integer' in '{name}'."
            )
        value = int(raw)
        if not minimum <= value <= maximum:
            raise self.fail(
                f"cvc-minInclusive-valid: Value '{raw}' of '{name}' is not within "
                f"[{minimum}, {maximum}]."
            )
        return value

    def boolean(self, element: Element) -> bool:
        raw = self.text(element).strip()
        if raw not in ("true", "false", "1", "0"):
            raise self.fail(
                f"cvc-datatype-valid.1.2.1: '{raw}' is not a valid value for 'boolean' in "
                f"'{_split(element.tag)[1]}'."
            )
        return raw in ("true", "1")

    def no_attributes(self, element: Element, allowed: tuple[str, ...] = ()) -> None:
        for name in element.attrib:
            if name not in allowed:
                raise self.fail(
                    f"cvc-complex-type.3.2.2: Attribute '{name}' is not allowed to appear in "
                    f"element '{_split(element.tag)[1]}'."
                )


def _frame_height(reader: XmlReader, element: Element) -> int:
    # 0 asks the worker's page to size the frame to its content (MTurk's documented meaning).
    return reader.integer(element, minimum=0, maximum=MAX_FRAME_HEIGHT)


def _html_question(root: Element, reader: XmlReader, xml: str) -> ParsedQuestion:
    reader.no_attributes(root)
    children = reader.children(root, ("HTMLContent", "FrameHeight"))
    content = reader.text(reader.required(root, children, "HTMLContent"))
    height = _frame_height(reader, reader.required(root, children, "FrameHeight"))
    if not content.strip():
        raise reader.fail("cvc-minLength-valid: HTMLContent must not be empty.")
    return ParsedQuestion(
        kind="HTMLQuestion",
        namespace=reader.namespace,
        version=_version(reader.namespace),
        xml=xml,
        html_content=content,
        frame_height=height,
    )


def _external_question(root: Element, reader: XmlReader, xml: str) -> ParsedQuestion:
    reader.no_attributes(root)
    children = reader.children(root, ("ExternalURL", "FrameHeight"))
    url = reader.text(reader.required(root, children, "ExternalURL")).strip()
    height = _frame_height(reader, reader.required(root, children, "FrameHeight"))
    parts = urlsplit(url)
    if parts.scheme.lower() != "https" or not parts.netloc or any(c.isspace() for c in url):
        # MTurk: "The ExternalURL must use HTTPS" (workers' pages are served over HTTPS, and a
        # browser refuses an http frame inside them).
        raise MTurkRequestError(
            f"The value {url!r} of ExternalURL is not valid: it must be an absolute https URL.",
            "AWS.MechanicalTurk.ExternalQuestionInvalidUrl",
        )
    return ParsedQuestion(
        kind="ExternalQuestion",
        namespace=reader.namespace,
        version=_version(reader.namespace),
        xml=xml,
        external_url=url,
        frame_height=height,
    )


# --- QuestionForm ----------------------------------------------------------------------------

_CONTENT_ELEMENTS = (
    "Title",
    "Text",
    "List",
    "Binary",
    "Application",
    "EmbeddedBinary",
    "FormattedContent",
)


def _question_form(root: Element, reader: XmlReader, xml: str) -> ParsedQuestion:
    reader.no_attributes(root)
    children = reader.children(root, ("Overview", "Question"))
    overview: list[str] = []
    questions: list[FormQuestion] = []
    seen: set[str] = set()
    for local, child in children:
        if local == "Overview":
            overview.append(_content_text(reader, child))
            continue
        question = _form_question(reader, child)
        if question.identifier in seen:
            raise reader.fail(
                f"The QuestionIdentifier '{question.identifier}' is used by more than one "
                "Question: identifiers must be unique within a QuestionForm."
            )
        seen.add(question.identifier)
        questions.append(question)
    if not questions:
        raise reader.fail(
            "cvc-complex-type.2.4.b: The content of element 'QuestionForm' is not complete. "
            "One of '{Overview, Question}' is expected: a QuestionForm needs a Question."
        )
    return ParsedQuestion(
        kind="QuestionForm",
        namespace=reader.namespace,
        version=_version(reader.namespace),
        xml=xml,
        overview_text=" ".join(t for t in overview if t),
        questions=tuple(questions),
    )


def _form_question(reader: XmlReader, element: Element) -> FormQuestion:
    children = reader.children(
        element,
        (
            "QuestionIdentifier",
            "DisplayName",
            "IsRequired",
            "QuestionContent",
            "AnswerSpecification",
        ),
    )
    identifier = reader.text(reader.required(element, children, "QuestionIdentifier")).strip()
    if not identifier:
        raise reader.fail("cvc-minLength-valid: QuestionIdentifier must not be empty.")
    display = reader.one(element, children, "DisplayName")
    required = reader.one(element, children, "IsRequired")
    content = reader.required(element, children, "QuestionContent")
    spec = reader.required(element, children, "AnswerSpecification")
    return FormQuestion(
        identifier=identifier,
        display_name=reader.text(display).strip() if display is not None else None,
        is_required=reader.boolean(required) if required is not None else False,
        content_text=_content_text(reader, content),
        answer=_answer_spec(reader, spec),
    )


def _content_text(reader: XmlReader, element: Element) -> str:
    """The readable text of an Overview or QuestionContent (checked to hold content elements
    only); formatted and binary content contribute their text and alt text."""
    parts: list[str] = []
    for local, child in reader.children(element, _CONTENT_ELEMENTS):
        if local in ("Title", "Text"):
            parts.append(reader.text(child))
        elif local == "FormattedContent":
            parts.append(_strip_tags(reader.text(child)))
        else:
            parts.append(" ".join(child.itertext()))
    return " ".join(" ".join(parts).split())


def _strip_tags(html: str) -> str:
    return re.sub(r"<[^>]*>", " ", html)


def _answer_spec(reader: XmlReader, element: Element) -> AnswerSpec:
    children = reader.children(element, ("FreeTextAnswer", "SelectionAnswer", "FileUploadAnswer"))
    if len(children) != 1:
        raise reader.fail(
            "cvc-complex-type.2.4.b: The content of element 'AnswerSpecification' must be "
            "exactly one of '{FreeTextAnswer, SelectionAnswer, FileUploadAnswer}'."
        )
    local, child = children[0]
    if local == "FreeTextAnswer":
        return _free_text(reader, child)
    if local == "SelectionAnswer":
        return _selection(reader, child)
    return _file_upload(reader, child)


INT_MAX = 2**31 - 1
INT_MIN = -(2**31)


def _free_text(reader: XmlReader, element: Element) -> FreeTextAnswer:
    children = reader.children(element, ("Constraints", "DefaultText", "NumberOfLinesSuggestion"))
    is_numeric = False
    min_value = max_value = min_length = max_length = None
    regexes: list[AnswerFormatRegex] = []
    constraints = reader.one(element, children, "Constraints")
    if constraints is not None:
        items = reader.children(constraints, ("IsNumeric", "Length", "AnswerFormatRegex"))
        numeric = reader.one(constraints, items, "IsNumeric")
        length = reader.one(constraints, items, "Length")
        if numeric is not None:
            reader.no_attributes(numeric, ("minValue", "maxValue"))
            is_numeric = True
            min_value = _attr_int(reader, numeric, "minValue", INT_MIN)
            max_value = _attr_int(reader, numeric, "maxValue", INT_MIN)
        if length is not None:
            reader.no_attributes(length, ("minLength", "maxLength"))
            min_length = _attr_int(reader, length, "minLength", 0)
            max_length = _attr_int(reader, length, "maxLength", 0)
        for local, item in items:
            if local == "AnswerFormatRegex":
                regexes.append(_regex(reader, item))
    if min_value is not None and max_value is not None and min_value > max_value:
        raise reader.fail(f"IsNumeric minValue {min_value} is above its maxValue {max_value}.")
    if min_length is not None and max_length is not None and min_length > max_length:
        raise reader.fail(f"Length minLength {min_length} is above its maxLength {max_length}.")
    default = reader.one(element, children, "DefaultText")
    lines = reader.one(element, children, "NumberOfLinesSuggestion")
    return FreeTextAnswer(
        is_numeric=is_numeric,
        min_value=min_value,
        max_value=max_value,
        min_length=min_length,
        max_length=max_length,
        regexes=tuple(regexes),
        default_text=reader.text(default) if default is not None else None,
        number_of_lines=reader.integer(lines, minimum=1, maximum=INT_MAX)
        if lines is not None
        else None,
    )


def _attr_int(reader: XmlReader, element: Element, name: str, minimum: int) -> int | None:
    raw = element.get(name)
    if raw is None:
        return None
    return reader.integer_value(raw.strip(), minimum, INT_MAX, f"{_split(element.tag)[1]}@{name}")


def _regex(reader: XmlReader, element: Element) -> AnswerFormatRegex:
    reader.no_attributes(element, ("regex", "errorText", "flags"))
    reader.children(element, ())
    pattern = element.get("regex")
    if not pattern:
        raise reader.fail(
            "cvc-complex-type.4: Attribute 'regex' must appear on element 'AnswerFormatRegex'."
        )
    flags = element.get("flags")
    if flags is not None and flags not in ("", "i"):
        raise reader.fail(f"AnswerFormatRegex flags '{flags}' is not supported: only 'i' is.")
    # Checked now (and compiled for answers) by the Rust engine: linear time whatever a
    # worker types. Imported here: answers.py imports this module.
    from services.tasks.answers import validator_for
    from shared.safe_schema import UnsafeSchema

    try:
        validator_for({"type": "string", "pattern": _anchored(pattern, flags)})
    except UnsafeSchema as exc:
        raise reader.fail(f"AnswerFormatRegex regex '{pattern}' is not supported: {exc}.") from exc
    return AnswerFormatRegex(regex=pattern, error_text=element.get("errorText"), flags=flags)


def _anchored(pattern: str, flags: str | None) -> str:
    """MTurk checks an answer with JavaScript's `RegExp(regex, flags).test(answer)`: a search,
    not a full match. JSON Schema's `pattern` is a search too, so the pattern is kept as
    written (anchor it with ^...$ to match the whole answer); the `i` flag becomes inline."""
    return f"(?i){pattern}" if flags == "i" else pattern


def answer_format_pattern(regex: AnswerFormatRegex) -> str:
    """The JSON Schema pattern equivalent of an AnswerFormatRegex (answer validation)."""
    return _anchored(regex.regex, regex.flags)


def _selection(reader: XmlReader, element: Element) -> SelectionAnswer:
    children = reader.children(
        element, ("MinSelectionCount", "MaxSelectionCount", "StyleSuggestion", "Selections")
    )
    style_element = reader.one(element, children, "StyleSuggestion")
    style = reader.text(style_element).strip() if style_element is not None else None
    if style is not None and style not in STYLE_SUGGESTIONS:
        raise reader.fail(
            f"cvc-enumeration-valid: Value '{style}' is not facet-valid with respect to "
            f"enumeration '[{', '.join(STYLE_SUGGESTIONS)}]'."
        )
    selections_element = reader.required(element, children, "Selections")
    selections: list[Selection] = []
    other: FreeTextAnswer | None = None
    for local, child in reader.children(selections_element, ("Selection", "OtherSelection")):
        if local == "OtherSelection":
            if other is not None:
                raise reader.fail("Selections may hold one OtherSelection.")
            other = _free_text(reader, child)
            continue
        items = reader.children(
            child, ("SelectionIdentifier", "Text", "FormattedContent", "Binary")
        )
        identifier = reader.text(reader.required(child, items, "SelectionIdentifier")).strip()
        if not identifier:
            raise reader.fail("cvc-minLength-valid: SelectionIdentifier must not be empty.")
        shown = [
            reader.text(c) if local_name == "Text" else " ".join(c.itertext())
            for local_name, c in items
            if local_name != "SelectionIdentifier"
        ]
        if not shown:
            raise reader.fail(
                "cvc-complex-type.2.4.b: The content of element 'Selection' is not complete. "
                "One of '{Text, FormattedContent, Binary}' is expected."
            )
        selections.append(Selection(identifier=identifier, text=" ".join(" ".join(shown).split())))
    if not selections:
        raise reader.fail(
            "cvc-complex-type.2.4.b: The content of element 'Selections' is not complete. "
            "One of '{Selection}' is expected."
        )
    ids = [s.identifier for s in selections]
    if len(set(ids)) != len(ids):
        raise reader.fail("SelectionIdentifier values must be unique within a SelectionAnswer.")
    choices = len(selections) + (1 if other is not None else 0)
    min_element = reader.one(element, children, "MinSelectionCount")
    max_element = reader.one(element, children, "MaxSelectionCount")
    minimum = (
        reader.integer(min_element, minimum=0, maximum=choices) if min_element is not None else 1
    )
    maximum = (
        reader.integer(max_element, minimum=1, maximum=choices) if max_element is not None else 1
    )
    if minimum > maximum:
        raise reader.fail(f"MinSelectionCount {minimum} is above MaxSelectionCount {maximum}.")
    return SelectionAnswer(
        min_selection_count=minimum,
        max_selection_count=maximum,
        style=style,
        selections=tuple(selections),
        other_selection=other,
    )


def _file_upload(reader: XmlReader, element: Element) -> FileUploadAnswer:
    children = reader.children(element, ("MaxFileSizeInBytes", "MinFileSizeInBytes"))
    # MTurk's limits: 0 to 2,000,000,000 bytes; both elements are required.
    maximum = reader.integer(
        reader.required(element, children, "MaxFileSizeInBytes"), minimum=0, maximum=2_000_000_000
    )
    minimum = reader.integer(
        reader.required(element, children, "MinFileSizeInBytes"), minimum=0, maximum=2_000_000_000
    )
    if minimum > maximum:
        raise reader.fail(f"MinFileSizeInBytes {minimum} is above MaxFileSizeInBytes {maximum}.")
    return FileUploadAnswer(min_file_size=minimum, max_file_size=maximum)
