"""lifecycle/messages.py: each emitted message has ONE definition. The one-statement approve's
SQL payload is generated from it (messages.payout_sql); here, per (SQL, Python) pair, the row
the SQL writes equals the message the Python builds, for the same decided assignment."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from services.tasks.lifecycle.approve import APPROVE_ONE_SQL
from services.tasks.lifecycle.messages import (
    PAYOUT,
    payout_message,
    payout_sql,
    tier_release_message,
    tier_release_sql,
)

DECIDED = SimpleNamespace(
    id="A1",
    requester_id="R1",
    project_id="P1",
    task_id="T1",
    worker_id="W1",
    reward_cents=25,
    fee_cents=5,
)


@pytest.mark.parametrize(
    ("pair", "source"),
    [("approve fast path / record_approvals", "reserved"), ("override", "available")],
)
async def test_the_sql_payload_equals_the_python_definition(db, pair: str, source: str) -> None:
    # The decided assignment as a one-row relation `d`, with PAYOUT's columns.
    row = await db.fetchrow(
        f"SELECT {payout_sql('d', source=source)} FROM (SELECT $1::text AS id, "
        "$2::text AS requester_id, $3::text AS project_id, $4::text AS task_id, "
        "$5::text AS worker_id, $6::int AS reward_cents, $7::int AS fee_cents) AS d",
        DECIDED.id,
        DECIDED.requester_id,
        DECIDED.project_id,
        DECIDED.task_id,
        DECIDED.worker_id,
        DECIDED.reward_cents,
        DECIDED.fee_cents,
    )
    assert {column for _, column in PAYOUT.fields} <= set(vars(DECIDED)), pair
    kind, key, payload = row[0], row[1], row[2]
    expected = payout_message(DECIDED, source=source)  # type: ignore[arg-type]
    assert (kind, key) == (expected.kind, expected.key), pair
    payload = payload if isinstance(payload, dict) else json.loads(payload)
    assert payload == {**expected.payload, "key": expected.key}, pair


def test_the_fast_path_emits_the_generated_payload() -> None:
    assert payout_sql("d", source="reserved") in APPROVE_ONE_SQL


async def test_the_tier_release_sql_equals_the_python_definition(db) -> None:
    """APPROVE_ONE_SQL's `tier_released` row and record_approvals' message, for one decided
    assignment whose slot held more than its tier (pay tiers)."""
    slot_cents = 42
    row = await db.fetchrow(
        f"SELECT {tier_release_sql('d', slot_cents='$6::bigint')} FROM (SELECT $1::text AS id, "
        "$2::text AS requester_id, $3::text AS project_id, $4::int AS reward_cents, "
        "$5::int AS fee_cents) AS d",
        DECIDED.id,
        DECIDED.requester_id,
        DECIDED.project_id,
        DECIDED.reward_cents,
        DECIDED.fee_cents,
        slot_cents,
    )
    expected = tier_release_message(DECIDED, slot_cents=slot_cents)
    assert expected is not None and expected.payload["amount_cents"] == 12
    payload = row[2] if isinstance(row[2], dict) else json.loads(row[2])
    assert (row[0], row[1]) == (expected.kind, expected.key)
    assert payload == {**expected.payload, "key": expected.key}
    assert tier_release_sql("d", slot_cents="p.slot_cents") in APPROVE_ONE_SQL
    # A slot that held exactly the assignment's reward + fee (no tiers) releases nothing.
    assert tier_release_message(DECIDED, slot_cents=30) is None
