"""Checking answers against the questions, and scoring them against an answer key.

Pure functions: the attempt's snapshot of questions and key goes in, points and value come out.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from services.workers.qualification_types.schemas import (
    INT32_MAX,
    INT32_MIN,
    AnswerKey,
    AnswerKeyEntry,
    Question,
)

MAX_TEXT_ANSWER = 10_000


def answer_errors(questions: list[Question], answers: dict[str, Any]) -> list[dict[str, Any]]:
    """422 items for answers that do not fit their question (unknown id, wrong shape)."""
    by_id = {q.id: q for q in questions}
    errors: list[dict[str, Any]] = []
    for question_id, answer in answers.items():
        loc: list[str | int] = ["body", "answers", question_id]
        question = by_id.get(question_id)
        if question is None:
            errors.append({"loc": loc, "msg": "no question of this test has this id"})
            continue
        msg = _shape_error(question, answer)
        if msg:
            errors.append({"loc": loc, "msg": msg})
    return errors


def _shape_error(question: Question, answer: Any) -> str | None:
    option_ids = {o.id for o in question.options or []}
    if question.kind == "single_choice":
        if not isinstance(answer, str) or answer not in option_ids:
            return "answer with one of the question's option ids"
    elif question.kind == "multiple_choice":
        if not isinstance(answer, list) or not all(isinstance(a, str) for a in answer):
            return "answer with a list of the question's option ids"
        if not set(answer) <= option_ids or len(set(answer)) != len(answer):
            return "answer with distinct option ids of the question"
    elif question.kind == "text":
        if not isinstance(answer, str) or len(answer) > MAX_TEXT_ANSWER:
            return f"answer with a string of at most {MAX_TEXT_ANSWER} characters"
    elif not _is_number(answer):
        return "answer with a number"
    return None


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return not (isinstance(value, float) and not math.isfinite(value))


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def is_correct(question: Question, correct: Any, answer: Any) -> bool:
    if answer is None:
        return False
    if question.kind == "single_choice":
        return isinstance(answer, str) and answer in correct
    if question.kind == "multiple_choice":
        return isinstance(answer, list) and set(answer) == set(correct)
    if question.kind == "text":
        return (
            isinstance(answer, str)
            and isinstance(correct, str)
            and answer.strip().casefold() == correct.strip().casefold()
        )
    # number: compared as decimals, so 0.1 + 0.2 style float noise in JSON cannot matter
    given, expected = _decimal(answer), _decimal(correct)
    return _is_number(answer) and given is not None and given == expected


def _selected(question: Question, answer: Any) -> frozenset[str] | None:
    if question.kind == "single_choice" and isinstance(answer, str):
        return frozenset((answer,))
    if question.kind == "multiple_choice" and isinstance(answer, list):
        return frozenset(a for a in answer if isinstance(a, str))
    return None


def entry_points(question: Question, entry: AnswerKeyEntry, answer: Any) -> int:
    """Points one answer earns: the entry's score when correct; with scored options (MTurk's
    AnswerOption), the score of the option whose selections are exactly the worker's, else
    the entry's default score (an unanswered question earns it too, as on MTurk)."""
    if entry.options is None:
        return entry.score if is_correct(question, entry.correct, answer) else 0
    selected = _selected(question, answer)
    for option in entry.options:
        if selected is not None and selected == frozenset(option.selections):
            return option.score
    return entry.default_score


def _half_up(numerator: int | Decimal, denominator: int | Decimal) -> int:
    return int((Decimal(numerator) / Decimal(denominator)).to_integral_value(ROUND_HALF_UP))


def qualification_value(key: AnswerKey, points: int, max_points: int) -> int:
    """The granted value for `points` under the key's mapping, clamped to the int32 range a
    qualification value has."""
    if key.mapping == "sum":
        value = points
    elif key.mapping == "scale":
        value = _half_up(Decimal(points) * Decimal(str(key.multiplier)), 1)
    elif key.mapping == "range":
        found = [r.value for r in key.ranges or [] if r.low <= points <= r.high]
        value = found[0] if found else int(key.out_of_range_value or 0)
    else:
        maximum = key.maximum_score or max_points
        value = 0 if maximum <= 0 else _half_up(100 * points, maximum)
    return max(INT32_MIN, min(INT32_MAX, value))


def score(
    questions: list[Question], key: AnswerKey, answers: dict[str, Any]
) -> tuple[int, int, int]:
    """(points earned, maximum points, granted value)."""
    by_id = {q.id: q for q in questions}
    points = max_points = 0
    for question_id, entry in key.answers.items():
        question = by_id.get(question_id)
        if question is None:
            continue
        max_points += entry.max_points
        points += entry_points(question, entry, answers.get(question_id))
    return points, max_points, qualification_value(key, points, max_points)
