"""Qualification types, their tests and answer keys.

A test is `{questions: [{id, prompt, kind, options?}], duration_seconds}`; an answer key is
`{answers: {question_id: {correct, score}}, mapping: "percentage"|"sum"}` where `correct` is a list
of option ids (single_choice: any of them; multiple_choice: exactly that set), a string (text:
trimmed, case-insensitive) or a number.
"""

from __future__ import annotations

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
AnswerKeyMapping = TypeAliasType("AnswerKeyMapping", Literal["percentage", "sum"])


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


class AnswerKeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    correct: list[StrictStr] | StrictStr | StrictInt | FiniteFloat
    score: int = Field(default=1, ge=0, le=1000)


class AnswerKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answers: dict[Identifier, AnswerKeyEntry] = Field(min_length=1, max_length=100)
    mapping: AnswerKeyMapping = "percentage"


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
            errors.append({"loc": [*loc, "correct"], "msg": msg})
    if not errors and sum(e.score for e in answer_key.answers.values()) == 0:
        errors.append({"loc": ["body", "answer_key"], "msg": "the maximum score must be above 0"})
    return errors


def _entry_error(question: Question, entry: AnswerKeyEntry) -> str | None:
    correct = entry.correct
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
