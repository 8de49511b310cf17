"""Turning a task's answers into one aggregate answer and an agreement score.

The export streams tasks one at a time and asks an `Aggregator` for each; `aggregator_for` picks
the method by the project's answer format. Today that is a plurality vote for the label types
(classification, sentiment) and nothing for the rest. A Dawid-Skene aggregator would implement
the same protocol: it needs every worker's answers across the project to estimate each worker's
confusion matrix first, so it would be built by a factory that runs that fit (one pass over the
project's assignments) before the export starts, then answer per task like this one does.

Majority rules (documented for requesters):
- Only `approved` and `submitted` answers vote (rejected work does not).
- Single-label: the label given most often wins. Multi-label: each distinct *set* of labels is one
  candidate (order inside an answer does not matter) and the most frequent set wins.
- Ties go to the candidate that comes first in the project's label order (sentiment: positive,
  negative, neutral), so the result never depends on who answered first.
- `agreement` = votes for the winner / votes cast, rounded to 2 decimals; null with no votes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from services.tasks.answers import SENTIMENT_LABELS

VOTING_STATUSES = frozenset({"approved", "submitted"})


@dataclass(frozen=True, slots=True)
class WorkerAnswer:
    assignment_id: str
    worker_id: str
    answer: Any
    status: str


@dataclass(frozen=True, slots=True)
class Aggregate:
    answer: Any | None
    agreement: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"answer": self.answer, "agreement": self.agreement}


NO_AGGREGATE = Aggregate(answer=None, agreement=None)


class Aggregator(Protocol):
    def aggregate(self, answers: Sequence[WorkerAnswer]) -> Aggregate: ...


class NoAggregation:
    """Free text, boxes and free-form answers have no vote to count."""

    def aggregate(self, answers: Sequence[WorkerAnswer]) -> Aggregate:
        return NO_AGGREGATE


class MajorityVote:
    """Plurality over label answers; see the module docstring for ties and agreement."""

    def __init__(self, *, labels: Sequence[str], multi_label: bool) -> None:
        self.multi_label = multi_label
        self._rank = {label: i for i, label in enumerate(labels)}

    def _candidate(self, answer: Any) -> Hashable | None:
        if not isinstance(answer, dict):
            return None
        if self.multi_label:
            chosen = answer.get("labels")
            if not isinstance(chosen, list) or not all(isinstance(x, str) for x in chosen):
                return None
            return tuple(sorted(set(chosen), key=self._label_key))
        label = answer.get("label")
        return label if isinstance(label, str) else None

    def _label_key(self, label: str) -> tuple[int, str]:
        return (self._rank.get(label, len(self._rank)), label)

    def _tie_key(self, candidate: Hashable) -> tuple[Any, ...]:
        if isinstance(candidate, tuple):
            return tuple(self._label_key(label) for label in candidate)
        return self._label_key(str(candidate))

    def aggregate(self, answers: Sequence[WorkerAnswer]) -> Aggregate:
        votes: Counter[Hashable] = Counter()
        for item in answers:
            if item.status not in VOTING_STATUSES:
                continue
            candidate = self._candidate(item.answer)
            if candidate is not None:
                votes[candidate] += 1
        total = sum(votes.values())
        if not total:
            return NO_AGGREGATE
        best = max(votes.values())
        winner = min((c for c, n in votes.items() if n == best), key=self._tie_key)
        answer = {"labels": list(winner)} if self.multi_label else {"label": winner}
        return Aggregate(answer=answer, agreement=round(best / total, 2))


def aggregator_for(
    *, task_type: str, labels: Sequence[str] | None, multi_label: bool
) -> Aggregator:
    if task_type == "classification":
        return MajorityVote(labels=labels or [], multi_label=multi_label)
    if task_type == "sentiment":
        return MajorityVote(labels=SENTIMENT_LABELS, multi_label=False)
    return NoAggregation()
