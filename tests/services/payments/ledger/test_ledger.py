"""The database guards the ledger even against code that bypasses the service, and
`GET /internal/ledger/check` notices any damage."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from shared.ids import new_id
from tests.fixtures.accounts import create_requester
from tests.fixtures.payments import assert_ledger_ok, deposit, ledger_check


async def _one_deposit(payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient):
    requester = await create_requester(workers_client)
    body = await deposit(payments_client, requester, "3.00")
    return requester, body["id"]


async def test_entries_and_transactions_are_append_only(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    _, tx_id = await _one_deposit(payments_client, workers_client)
    statements = [
        ("UPDATE ledger_entries SET amount_cents = amount_cents * 2 WHERE transaction_id = $1",),
        ("DELETE FROM ledger_entries WHERE transaction_id = $1",),
        ("UPDATE ledger_transactions SET amount_cents = 1 WHERE id = $1",),
        ("DELETE FROM ledger_transactions WHERE id = $1",),
    ]
    for (sql,) in statements:
        with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="append-only"):
            await db.execute(sql, tx_id)
    for table in ("ledger_entries", "ledger_transactions"):
        with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="append-only"):
            await db.execute(f"TRUNCATE {table} CASCADE")
    assert (
        await db.fetchval("SELECT count(*) FROM ledger_entries WHERE transaction_id = $1", tx_id)
        == 2
    )


async def test_a_transaction_whose_legs_do_not_sum_to_zero_cannot_commit(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    requester, _ = await _one_deposit(payments_client, workers_client)
    account = f"requester:{requester.id}:available"
    tx_id = new_id()
    async with db.acquire() as conn:
        with pytest.raises(asyncpg.CheckViolationError, match="does not balance"):
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO ledger_transactions (id, kind, amount_cents, reference) "
                    "VALUES ($1, 'deposit', 100, 'forged')",
                    tx_id,
                )
                # one leg only: money out of nowhere
                await conn.execute(
                    "INSERT INTO ledger_entries "
                    "(transaction_id, account_id, kind, amount_cents, balance_after_cents) "
                    "VALUES ($1, $2, 'deposit', 100, 400)",
                    tx_id,
                    account,
                )
    assert await db.fetchval("SELECT count(*) FROM ledger_transactions WHERE id = $1", tx_id) == 0
    # a balanced pair commits: the trigger judges the whole transaction at commit, not each row
    async with db.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO ledger_transactions (id, kind, amount_cents, reference) "
            "VALUES ($1, 'deposit', 0, 'balanced')",
            tx_id,
        )
        for amount in (100, -100):
            await conn.execute(
                "INSERT INTO ledger_entries "
                "(transaction_id, account_id, kind, amount_cents, balance_after_cents) "
                "VALUES ($1, $2, 'deposit', $3, 300)",
                tx_id,
                account,
                amount,
            )


async def test_no_account_but_the_outside_world_may_go_negative(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    requester, _ = await _one_deposit(payments_client, workers_client)
    with pytest.raises(asyncpg.CheckViolationError, match="ck_ledger_accounts_nonnegative"):
        await db.execute(
            "UPDATE ledger_accounts SET balance_cents = -1 WHERE id = $1",
            f"requester:{requester.id}:available",
        )
    assert (
        await db.fetchval(
            "SELECT count(*) FROM ledger_accounts WHERE kind = 'external' AND balance_cents < 0"
        )
        >= 1
    )


async def test_the_check_reports_the_invariants_and_notices_damage(
    payments_client: httpx.AsyncClient, workers_client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    requester, _ = await _one_deposit(payments_client, workers_client)
    report = await assert_ledger_ok(payments_client)
    assert report["total_debits"] > 0 and report["accounts_negative"] == []
    assert report["reserved_mismatch"] == [] and report["unbalanced_transactions"] == []

    # A hold the ledger knows nothing about (a bookkeeping bug): the check names the requester.
    # project_holds is not append-only, so the damage can be undone after.
    project_id = new_id()
    await db.execute(
        "INSERT INTO project_holds (requester_id, project_id, held_cents) VALUES ($1, $2, 5)",
        requester.id,
        project_id,
    )
    try:
        damaged = await ledger_check(payments_client)
        assert damaged["ok"] is False
        assert requester.id in damaged["reserved_mismatch"]
    finally:
        await db.execute(
            "DELETE FROM project_holds WHERE requester_id = $1 AND project_id = $2",
            requester.id,
            project_id,
        )
    await assert_ledger_ok(payments_client)
