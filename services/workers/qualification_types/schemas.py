"""Qualification types, their tests and answer keys.

A test is `{questions: [{id, prompt, kind, options?}], duration_seconds}`; an answer key is
`{answers: {question_id: {correct, score}}, mapping: "percentage"|"sum"}` where `correct` is a list
of option ids (single_choice: any of them; multiple_choice: exactly that set), a string (text:
trimmed, case-insensitive) or a number.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictInt,
    StrictStr,
    StringConstraints,
    model_validator,
)
from typing_extensions import TypeAliasType

QUESTION_KINDS = ("single_choice", "multiple_choice", "text", "number")
CHOICE_KINDS = ("single_choice", "multiple_choice")
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
]
QualificationValue = Annotated[int, Field(ge=INT32_MIN, le=INT32_MAX)]
TypeStatus = TypeAliasType("QualificationTypeStatus", Literal["active", "inactive"])
QuestionKind = TypeAliasType(
    "QuestionKind", Literal["single_choice", "multiple_choice", "text", "number"]
)
AnswerKeyMapping = TypeAliasType("AnswerKeyMapping", Literal["percentage", "sum", "scale", "range"])


def _lower_unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(i.lower() for i in items))


Keyword = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Keywords = Annotated[list[Keyword], AfterValidator(_lower_unique), Field(max_length=20)]
Description = Annotated[str, Field(max_length=2000)]
RetryDelay = Annotated[int, Field(ge=0, le=31_536_000)]


class Option(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Identifier
    text: str = Field(min_length=1, max_length=1000)


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Identifier
    prompt: str = Field(min_length=1, max_length=5000)
    kind: QuestionKind
    options: list[Option] | None = Field(default=None, max_length=50)

    @model_validator(mode="after")
    def _options_fit_kind(self) -> Question:
        if self.kind in CHOICE_KINDS:
            if not self.options or len(self.options) < 2:
                raise ValueError(f"a {self.kind} question needs at least 2 options")
            ids = [o.id for o in self.options]
            if len(set(ids)) != len(ids):
                raise ValueError("option ids must be unique within a question")
        elif self.options:
            raise ValueError(f"a {self.kind} question has no options")
        return self


class Test(BaseModel):
    model_config = ConfigDict(extra="forbid")

    questions: list[Question] = Field(min_length=1, max_length=100)
    duration_seconds: int = Field(ge=1, le=86_400, description="Each attempt's time limit.")

    @model_validator(mode="after")
    def _unique_question_ids(self) -> Test:
        ids = [q.id for q in self.questions]
        if len(set(ids)) != len(ids):
            raise ValueError("question ids must be unique")
        return self


# NaN/Infinity are no JSON numbers (and no answer could equal them): refused, not stored.
FiniteFloat = Annotated[float, Strict(), AllowInfNan(False)]


def _is_none(value: Any) -> bool:
    return value is None


def _is_zero(value: Any) -> bool:
    return value == 0


class AnswerOption(BaseModel):
    """One scored answer of a choice question (MTurk's AnswerOption): the worker's selection
    must be exactly this set of option ids to earn `score`."""

    model_config = ConfigDict(extra="forbid")

    selections: list[Identifier] = Field(min_length=1, max_length=50)
    score: int = Field(ge=0, le=1000)

    @model_validator(mode="after")
    def _distinct(self) -> AnswerOption:
        if len(set(self.selections)) != len(self.selections):
            raise ValueError("an answer option lists each option id once")
        return self


class AnswerKeyEntry(BaseModel):
    """Either `correct` + `score` (one right answer), or `options` + `default_score` (several
    scored selections, the first exact match counts; anything else earns `default_score`;
    `score` is then unused)."""

    model_config = ConfigDict(extra="forbid")

    # Fields a key does not use are left out of its JSON (stored and shown as before).
    correct: list[StrictStr] | StrictStr | StrictInt | FiniteFloat | None = Field(
        default=None, exclude_if=_is_none
    )
    score: int = Field(default=1, ge=0, le=1000)
    options: list[AnswerOption] | None = Field(
        default=None, min_length=1, max_length=100, exclude_if=_is_none
    )
    default_score: int = Field(default=0, ge=0, le=1000, exclude_if=_is_zero)

    @model_validator(mode="after")
    def _one_form(self) -> AnswerKeyEntry:
        if (self.correct is None) == (self.options is None):
            raise ValueError("an answer key entry has either correct or options")
        if self.options is None and self.default_score:
            raise ValueError("default_score goes with options")
        return self

    @property
    def max_points(self) -> int:
        if self.options is None:
            return self.score
        return max([self.default_score, *(o.score for o in self.options)])


class ScoreRange(BaseModel):
    """MTurk's SummedScoreRange: summed scores from `low` to `high` (inclusive) grant `value`."""

    model_config = ConfigDict(extra="forbid")

    low: int = Field(ge=0, le=INT32_MAX)
    high: int = Field(ge=0, le=INT32_MAX)
    value: QualificationValue

    @model_validator(mode="after")
    def _ordered(self) -> ScoreRange:
        if self.low > self.high:
            raise ValueError("a score range's low is at most its high")
        return self


Multiplier = Annotated[float, AllowInfNan(False), Field(ge=0, le=1_000_000)]


class AnswerKey(BaseModel):
    """How points become the qualification value (`mapping`): `percentage` of `maximum_score`
    (default: the most the key can give), rounded half up; `sum`: the points themselves;
    `scale`: points times `multiplier`, rounded half up; `range`: the `value` of the range the
    points fall in, else `out_of_range_value` (MTurk's QualificationValueMapping)."""

    model_config = ConfigDict(extra="forbid")

    answers: dict[Identifier, AnswerKeyEntry] = Field(min_length=1, max_length=100)
    mapping: AnswerKeyMapping = "percentage"
    maximum_score: int | None = Field(default=None, ge=1, le=INT32_MAX, exclude_if=_is_none)
    multiplier: Multiplier | None = Field(default=None, exclude_if=_is_none)
    ranges: list[ScoreRange] | None = Field(
        default=None, min_length=1, max_length=100, exclude_if=_is_none
    )
    out_of_range_value: QualificationValue | None = Field(default=None, exclude_if=_is_none)

    @model_validator(mode="after")
    def _mapping_fields(self) -> AnswerKey:
        wanted = {
            "percentage": {"maximum_score"},
            "sum": set(),
            "scale": {"multiplier"},
            "range": {"ranges", "out_of_range_value"},
        }[self.mapping]
        for name in ("maximum_score", "multiplier", "ranges", "out_of_range_value"):
            if getattr(self, name) is not None and name not in wanted:
                raise ValueError(f"{name} does not go with mapping {self.mapping!r}")
        if self.mapping == "scale" and self.multiplier is None:
            raise ValueError("mapping 'scale' needs a multiplier")
        if self.mapping == "range":
            if self.ranges is None or self.out_of_range_value is None:
                raise ValueError("mapping 'range' needs ranges and out_of_range_value")
            ordered = sorted(self.ranges, key=lambda r: r.low)
            for before, after in itertools.pairwise(ordered):
                if after.low <= before.high:
                    raise ValueError("score ranges must not overlap")
        return self


def consistency_errors(
    test: Test | None, answer_key: AnswerKey | None, auto_grant: bool
) -> list[dict[str, Any]]:
    """Cross-field rules, for create (on the body) and update (on the merged result)."""
    errors: list[dict[str, Any]] = []
    if auto_grant and test is not None:
        errors.append({"loc": ["body", "test"], "msg": "an auto_grant type has no test"})
    if answer_key is None:
        return errors
    if test is None:
        errors.append({"loc": ["body", "answer_key"], "msg": "an answer key needs a test"})
        return errors
    questions = {q.id: q for q in test.questions}
    for question_id, entry in answer_key.answers.items():
        loc: list[str | int] = ["body", "answer_key", "answers", question_id]
        question = questions.get(question_id)
        if question is None:
            errors.append({"loc": loc, "msg": "no question of the test has this id"})
            continue
        msg = _entry_error(question, entry)
        if msg:
            field = "options" if entry.options is not None else "correct"
            errors.append({"loc": [*loc, field], "msg": msg})
    if not errors and sum(e.max_points for e in answer_key.answers.values()) == 0:
        errors.append({"loc": ["body", "answer_key"], "msg": "the maximum score must be above 0"})
    return errors


def _entry_error(question: Question, entry: AnswerKeyEntry) -> str | None:
    correct = entry.correct
    if entry.options is not None:
        if question.kind not in CHOICE_KINDS:
            return f"scored options are for choice questions, not {question.kind}"
        option_ids = {o.id for o in question.options or []}
        if any(not set(o.selections) <= option_ids for o in entry.options):
            return "every option id of an answer option must be one of the question's options"
        return None
    if question.kind in CHOICE_KINDS:
        if not isinstance(correct, list):
            return f"a {question.kind} answer is a list of option ids"
        option_ids = {o.id for o in question.options or []}
        if not set(correct) <= option_ids:
            return "every correct option id must be one of the question's options"
        if question.kind == "single_choice" and not correct:
            return "a single_choice answer needs at least one correct option"
        return None
    if question.kind == "text":
        return None if isinstance(correct, str) else "a text answer is a string"
    return None if isinstance(correct, int | float) else "a number answer is a number"


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class QualificationTypeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description = ""
    keywords: Keywords = Field(default_factory=list)
    test: Test | None = None
    answer_key: AnswerKey | None = None
    retry_delay_seconds: RetryDelay | None = Field(
        default=None, description="Seconds between attempts; null: one attempt only."
    )
    auto_grant: bool = False
    auto_grant_value: QualificationValue = 1
    status: TypeStatus = "active"

    @model_validator(mode="after")
    def _consistent(self) -> QualificationTypeCreate:
        if self.name.lower().startswith("system."):
            raise ValueError("names starting with 'system.' are reserved")
        errors = consistency_errors(self.test, self.answer_key, self.auto_grant)
        if errors:
            raise ValueError("; ".join(e["msg"] for e in errors))
        return self


class QualificationTypeUpdate(BaseModel):
    """Fields sent change; null removes test, answer key or retry delay (refused elsewhere)."""

    model_config = ConfigDict(extra="forbid")

    description: Description | None = None
    keywords: Keywords | None = None
    status: TypeStatus | None = None
    retry_delay_seconds: RetryDelay | None = None
    test: Test | None = None
    answer_key: AnswerKey | None = None
    auto_grant: bool | None = None
    auto_grant_value: QualificationValue | None = None

    @model_validator(mode="after")
    def _nullable_only_where_meaningful(self) -> QualificationTypeUpdate:
        for name in ("description", "keywords", "status", "auto_grant", "auto_grant_value"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class QualificationTypeRead(BaseModel):
    id: str
    owner_id: str | None = Field(description="null for system types")
    name: str
    description: str
    keywords: list[str]
    status: TypeStatus
    is_system: bool
    has_test: bool
    test: Test | None
    retry_delay_seconds: int | None
    auto_grant: bool
    auto_grant_value: int
    created_at: datetime
    updated_at: datetime


class QualificationTypeOwnerRead(QualificationTypeRead):
    """What the owner sees: the answer key too (a required field, so a non-owner's view, which
    lacks it, can never be serialized as this model)."""

    answer_key: AnswerKey | None
