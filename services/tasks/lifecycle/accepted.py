"""What accept learned that the holder's submit needs, kept per process: one statement to submit.

Submit must validate the answer against the project's answer format and grade it against the
task's gold answer before it writes. Accept has just read both (the project row, the claimed
task), so the process that handed out the assignment keeps them, and the holder's submit
validates on them and writes with `submit.SUBMIT_IF_UNCHANGED_SQL`, whose WHERE also requires
that format and gold answer to be still the current ones. A requester editing the format
between accept and submit costs the fast path, never correctness: nothing is written, and
submit reads afresh (the general path, which every other case takes too: an assignment accepted
by another replica or before a restart, an entry evicted, an answer the kept format refuses,
since a refusal must be judged on the current format).

Bounded: a submit takes its entry, and past `max_entries` the oldest go first (assignments
returned or left to expire are never taken). Several replicas: docs/architecture.md, "The
assignment lifecycle" (sticky routing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_ENTRIES = 20_000
"""~300 bytes each: a few MiB at most."""


@dataclass(frozen=True, slots=True)
class AcceptedContext:
    worker_id: str
    task_type: str
    labels: list[str] | None
    multi_label: bool
    answer_schema: dict[str, Any] | None
    gold_answer: Any


class AcceptedAssignments:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._max_entries = max_entries
        self._entries: dict[str, AcceptedContext] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def remember(self, assignment_id: str, context: AcceptedContext) -> None:
        if len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]  # dicts keep insertion order
        self._entries[assignment_id] = context

    def take(self, assignment_id: str, worker_id: str) -> AcceptedContext | None:
        """The entry, removed, if it is this worker's (anyone else gets the read path, which
        answers 404 for someone else's assignment)."""
        context = self._entries.get(assignment_id)
        if context is None or context.worker_id != worker_id:
            return None
        del self._entries[assignment_id]
        return context
