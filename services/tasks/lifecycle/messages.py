"""What the transitions emit: ONE definition per message, for Python and SQL alike.

A message is a payments call written to the outbox in the transition's own transaction (the
deliverer, services/tasks/outbox, sends it after the commit; payments acts once per `key`).

- payout (approve, auto-approve, bulk approve: paid from the reservation, `source` "reserved";
  override: paid from the available balance, `source` "available", sent synchronously);
- release (a slot given back where nobody can claim it, close, a task's lifetime ending, the
  pay floor's unused reserve);
- top_up (the pay floor's settlement, services/tasks/pay_floor: one per topped-up answer).

The payout's shape is `PAYOUT`: its key and payload fields, each named after the column of the
decided assignment it comes from. `payout_message` builds it from a row in Python;
`payout_sql` GENERATES the `jsonb_build_object(...)` of the one-statement approve from the same
definition, so the two cannot drift (tests/services/tasks/lifecycle/test_messages.py also
compares what each writes). A rule about what a payout carries is one edit here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from shared.database import Writable
from shared.jsonutil import dumps

MessageKind = Literal["payout", "release", "top_up"]
PayoutSource = Literal["reserved", "available"]


@dataclass(frozen=True, slots=True)
class Message:
    kind: MessageKind
    key: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class MessageShape:
    """A message emitted per decided row: `key` is `key_prefix` + the row's `key_column`; each
    payload field is (name in the payload, column of the row)."""

    kind: MessageKind
    key_prefix: str
    key_column: str
    fields: tuple[tuple[str, str], ...]

    def key(self, row: Any) -> str:
        return self.key_prefix + getattr(row, self.key_column)

    def key_sql(self, alias: str) -> str:
        return f"'{self.key_prefix}' || {alias}.{self.key_column}"


PAYOUT = MessageShape(
    kind="payout",
    key_prefix="pay:",
    key_column="id",
    fields=(
        ("requester_id", "requester_id"),
        ("project_id", "project_id"),
        ("task_id", "task_id"),
        ("assignment_id", "id"),
        ("worker_id", "worker_id"),
        ("reward_cents", "reward_cents"),
        ("fee_cents", "fee_cents"),
    ),
)
"""The payments call for an approved assignment (`pay:{assignment_id}`: paid once), plus its
`source`."""


def payout_message(row: Any, *, source: PayoutSource) -> Message:
    """The payout of a decided assignment (any row with PAYOUT's columns as attributes)."""
    payload = {name: getattr(row, column) for name, column in PAYOUT.fields}
    payload["source"] = source
    return Message(kind=PAYOUT.kind, key=PAYOUT.key(row), payload=payload)


def payout_sql(alias: str, *, source: PayoutSource) -> str:
    """`kind, key, payload` of the outbox row for the decided assignment aliased `alias`, as SQL
    select items: the same message as `payout_message` (the payload carries its key, as
    `enqueue_many` stores it)."""
    key = PAYOUT.key_sql(alias)
    pairs = [f"'{name}', {alias}.{column}" for name, column in PAYOUT.fields]
    pairs += [f"'source', '{source}'", f"'key', {key}"]
    return f"'{PAYOUT.kind}', {key}, jsonb_build_object(\n        " + ", ".join(pairs) + ")"


def release_message(*, key: str, requester_id: str, project_id: str, amount_cents: int) -> Message:
    """Money of slots nobody will use goes back to the requester's available balance; `key`
    names the event (`release:slot:{assignment}`, `release:close:{project}`,
    `release:task:{task}`, `release:tasks:{project}:{first task}`)."""
    return Message(
        kind="release",
        key=key,
        payload={
            "requester_id": requester_id,
            "project_id": project_id,
            "amount_cents": amount_cents,
        },
    )


def tier_release_key(assignment_id: str) -> str:
    return f"release:tier:{assignment_id}"


def tier_release_message(row: Any, *, slot_cents: int) -> Message | None:
    """Pay tiers (services/tasks/pay_tiers): an approved assignment's slot held the highest
    tier's reward + fee; what its own tier does not use goes back to the requester with the
    approval (`release:tier:{assignment_id}`: once). None when nothing is left over."""
    amount = slot_cents - row.reward_cents - row.fee_cents
    if amount <= 0:
        return None
    return release_message(
        key=tier_release_key(row.id),
        requester_id=row.requester_id,
        project_id=row.project_id,
        amount_cents=amount,
    )


def tier_release_sql(alias: str, *, slot_cents: str) -> str:
    """`kind, key, payload` of `tier_release_message` for the decided assignment `alias`, whose
    slot held `slot_cents` (SQL); the caller filters out rows with nothing left over."""
    key = f"'release:tier:' || {alias}.id"
    amount = f"{slot_cents} - {alias}.reward_cents - {alias}.fee_cents"
    return (
        f"'release', {key}, jsonb_build_object('requester_id', {alias}.requester_id, "
        f"'project_id', {alias}.project_id, 'amount_cents', {amount}, 'key', {key})"
    )


def top_up_message(
    *,
    requester_id: str,
    project_id: str,
    task_id: str,
    assignment_id: str,
    worker_id: str,
    amount_cents: int,
    fee_cents: int,
    source: PayoutSource,
) -> Message:
    """The pay floor's top-up of one approved answer (services/tasks/pay_floor): a bonus the
    platform pays on the requester's behalf, `topup:{assignment_id}` (an answer is topped up at
    most once)."""
    return Message(
        kind="top_up",
        key=f"topup:{assignment_id}",
        payload={
            "requester_id": requester_id,
            "project_id": project_id,
            "task_id": task_id,
            "assignment_id": assignment_id,
            "worker_id": worker_id,
            "amount_cents": amount_cents,
            "fee_cents": fee_cents,
            "source": source,
        },
    )


# --------------------------------------------------------------------------- writing them

OUTBOX_INSERT_SQL = """
INSERT INTO outbox (kind, key, payload)
SELECT m.kind, m.key, m.payload::jsonb
FROM unnest($1::text[], $2::text[], $3::text[]) AS m(kind, key, payload)
ON CONFLICT (key) DO NOTHING
"""


async def enqueue(db: Writable, *, kind: MessageKind, key: str, payload: dict[str, Any]) -> None:
    """Add one message in the caller's transaction; it is sent only if that transaction commits.

    `payload` is the body for payments (`key` is added to it). A key already enqueued is the
    same event and is left as it is.
    """
    await enqueue_many(db, [Message(kind=kind, key=key, payload=payload)])


async def enqueue_many(db: Writable, messages: Sequence[Message]) -> None:
    """`enqueue` for a batch (bulk review, timers) in one statement."""
    if not messages:
        return
    await db.execute(
        OUTBOX_INSERT_SQL,
        [m.kind for m in messages],
        [m.key for m in messages],
        [dumps({**m.payload, "key": m.key}).decode() for m in messages],
    )
