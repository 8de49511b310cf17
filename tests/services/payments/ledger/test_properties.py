"""Property: any sequence of deposits, reservations, payouts, releases, bonuses, withdrawals,
replays and concurrent bursts of them keeps every invariant, and balances follow a simple model.

After each step: the ledger check is ok (double entry, nothing negative, reserved = sum of
holds, caches = entries, one payout per assignment), and the API's balances and holds equal the
model's. A sequential step must answer exactly what the model predicts; in a concurrent burst
the order is unknown, so each success is applied to the model and the model must stay
non-negative (no overdraft, whatever the interleaving).

Each operation therefore has two halves: `expect` predicts the status of a call made alone (it
reads the model, never changes it) and `apply` books the effect of a call that succeeded,
unconditionally. A burst's successes are booked in list order, which need not be the order the
service ran them in (a withdrawal listed before the payout that funded it succeeds when the
payout commits first), so `apply` must never re-judge a success against the model.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.fees import bonus_fee_cents, fee_cents
from shared.ids import new_id
from shared.money import format_cents
from tests.fixtures.accounts import Actor, create_requester, create_worker
from tests.fixtures.payments import (
    INTERNAL,
    assert_ledger_ok,
    balance,
    cents,
    create_assignment,
    create_project,
)

PROJECT_APT = (1, 10)  # a normal project (20% fee) and a large batch (40%)


@dataclass
class Model:
    available: int = 0
    reserved: int = 0
    spent: int = 0
    holds: list[int] = field(default_factory=lambda: [0, 0])
    worker_available: list[int] = field(default_factory=lambda: [0, 0])
    withdrawn: list[int] = field(default_factory=lambda: [0, 0])

    def nonnegative(self) -> bool:
        values = [self.available, self.reserved, *self.holds, *self.worker_available]
        return all(v >= 0 for v in values)


@dataclass
class World:
    requester: Actor
    workers: list[Actor]
    projects: list[str]
    assignments: list[str]  # one submitted assignment per worker, for bonuses
    pending: list[int]


@dataclass
class Call:
    """One HTTP call, re-sendable as is (same key, same body) for a replay."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    internal: bool


# ----------------------------------------------------------------------------- operations


@dataclass(frozen=True)
class Deposit:
    amount: int

    def call(self, w: World) -> Call:
        headers = {**w.requester.headers, "Idempotency-Key": new_id()}
        return Call("/v1/deposits", {"amount": format_cents(self.amount)}, headers, False)

    def expect(self, m: Model) -> int:
        return 201

    def apply(self, m: Model) -> None:
        m.available += self.amount


@dataclass(frozen=True)
class Reserve:
    project: int
    amount: int

    def call(self, w: World) -> Call:
        body = {
            "key": f"add-tasks:{w.projects[self.project]}:{new_id()}",
            "requester_id": w.requester.id,
            "project_id": w.projects[self.project],
            "amount_cents": self.amount,
        }
        return Call("/internal/reservations", body, INTERNAL, True)

    def expect(self, m: Model) -> int:
        return 402 if m.available < self.amount else 201

    def apply(self, m: Model) -> None:
        m.available -= self.amount
        m.reserved += self.amount
        m.holds[self.project] += self.amount


@dataclass(frozen=True)
class Pay:
    project: int
    worker: int
    reward: int
    source: str

    @property
    def fee(self) -> int:
        return fee_cents(self.reward, assignments_per_task=PROJECT_APT[self.project])

    def call(self, w: World) -> Call:
        assignment_id = new_id()
        body = {
            "key": f"pay:{assignment_id}",
            "requester_id": w.requester.id,
            "project_id": w.projects[self.project],
            "task_id": new_id(),
            "assignment_id": assignment_id,
            "worker_id": w.workers[self.worker].id,
            "reward_cents": self.reward,
            "fee_cents": self.fee,
            "source": self.source,
        }
        return Call("/internal/payouts", body, INTERNAL, True)

    def expect(self, m: Model) -> int:
        total = self.reward + self.fee
        if self.source == "reserved":
            return 409 if m.holds[self.project] < total else 201
        return 402 if m.available < total else 201

    def apply(self, m: Model) -> None:
        total = self.reward + self.fee
        if self.source == "reserved":
            m.holds[self.project] -= total
            m.reserved -= total
        else:
            m.available -= total
        m.spent += total
        m.worker_available[self.worker] += self.reward


@dataclass(frozen=True)
class Release:
    project: int
    amount: int

    def call(self, w: World) -> Call:
        body = {
            "key": f"release:task:{new_id()}:1",
            "requester_id": w.requester.id,
            "project_id": w.projects[self.project],
            "amount_cents": self.amount,
        }
        return Call("/internal/releases", body, INTERNAL, True)

    def expect(self, m: Model) -> int:
        return 409 if m.holds[self.project] < self.amount else 201

    def apply(self, m: Model) -> None:
        m.holds[self.project] -= self.amount
        m.reserved -= self.amount
        m.available += self.amount


@dataclass(frozen=True)
class Bonus:
    worker: int
    amount: int

    def call(self, w: World) -> Call:
        headers = {**w.requester.headers, "Idempotency-Key": new_id()}
        body = {
            "assignment_id": w.assignments[self.worker],
            "amount": format_cents(self.amount),
            "reason": "property test",
        }
        return Call("/v1/bonuses", body, headers, False)

    @property
    def total(self) -> int:
        return self.amount + bonus_fee_cents(self.amount)

    def expect(self, m: Model) -> int:
        return 402 if m.available < self.total else 201

    def apply(self, m: Model) -> None:
        m.available -= self.total
        m.spent += self.total
        m.worker_available[self.worker] += self.amount


@dataclass(frozen=True)
class Withdraw:
    worker: int
    amount: int

    def call(self, w: World) -> Call:
        headers = {**w.workers[self.worker].headers, "Idempotency-Key": new_id()}
        return Call("/v1/withdrawals", {"amount": format_cents(self.amount)}, headers, False)

    def expect(self, m: Model) -> int:
        if self.amount < 100:
            return 422
        return 402 if m.worker_available[self.worker] < self.amount else 201

    def apply(self, m: Model) -> None:
        m.worker_available[self.worker] -= self.amount
        m.withdrawn[self.worker] += self.amount


@dataclass(frozen=True)
class ReplayLast:
    """Send the last successful call again, same key and body: nothing may move."""


@dataclass(frozen=True)
class Burst:
    ops: tuple[Any, ...]


projects = st.integers(min_value=0, max_value=1)
workers = st.integers(min_value=0, max_value=1)
money_ops = st.one_of(
    st.builds(Deposit, st.integers(min_value=1, max_value=2_000)),
    st.builds(Reserve, projects, st.integers(min_value=1, max_value=1_500)),
    st.builds(
        Pay,
        projects,
        workers,
        st.integers(min_value=0, max_value=400),
        st.sampled_from(["reserved", "available"]),
    ),
    st.builds(Release, projects, st.integers(min_value=1, max_value=800)),
    st.builds(Bonus, workers, st.integers(min_value=1, max_value=300)),
    st.builds(Withdraw, workers, st.integers(min_value=50, max_value=800)),
)
concurrent_ops = st.one_of(
    st.builds(Reserve, projects, st.integers(min_value=1, max_value=800)),
    st.builds(
        Pay,
        projects,
        workers,
        st.integers(min_value=1, max_value=300),
        st.sampled_from(["reserved", "available"]),
    ),
    st.builds(Release, projects, st.integers(min_value=1, max_value=400)),
    st.builds(Bonus, workers, st.integers(min_value=1, max_value=300)),
    st.builds(Withdraw, workers, st.integers(min_value=100, max_value=400)),
)
steps = st.lists(
    st.one_of(
        money_ops,
        st.just(ReplayLast()),
        st.builds(Burst, st.lists(concurrent_ops, min_size=2, max_size=8).map(tuple)),
    ),
    min_size=1,
    max_size=12,
)


# ----------------------------------------------------------------------------- the test


async def _send(client: httpx.AsyncClient, call: Call) -> httpx.Response:
    return await client.post(call.path, json=call.body, headers=call.headers)


async def _new_world(workers_client: httpx.AsyncClient, db: asyncpg.Pool) -> World:
    requester = await create_requester(workers_client)
    people = [await create_worker(workers_client), await create_worker(workers_client)]
    project_ids = [
        await create_project(db, requester.id, assignments_per_task=apt) for apt in PROJECT_APT
    ]
    rewards = [37, 45]
    assignments = [
        (
            await create_assignment(
                db,
                requester_id=requester.id,
                worker_id=person.id,
                project_id=project_ids[0],
                status="submitted",
                reward_cents=reward,
            )
        ).assignment_id
        for person, reward in zip(people, rewards, strict=True)
    ]
    return World(requester, people, project_ids, assignments, rewards)


async def _assert_matches(
    client: httpx.AsyncClient, db: asyncpg.Pool, world: World, model: Model
) -> None:
    await assert_ledger_ok(client)
    assert model.nonnegative(), model
    got = await balance(client, world.requester)
    assert (cents(got["available"]), cents(got["reserved"]), cents(got["spent"])) == (
        model.available,
        model.reserved,
        model.spent,
    )
    for i, person in enumerate(world.workers):
        got = await balance(client, person)
        assert cents(got["available"]) == model.worker_available[i]
        assert cents(got["withdrawn"]) == model.withdrawn[i]
        assert cents(got["pending"]) == world.pending[i]
    holds = await db.fetch(
        "SELECT project_id, held_cents FROM project_holds WHERE requester_id = $1",
        world.requester.id,
    )
    held = {r["project_id"]: r["held_cents"] for r in holds}
    assert [held.get(p, 0) for p in world.projects] == model.holds


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=steps)
async def test_random_money_sequences_keep_every_invariant(
    plan: list[Any],
    payments_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    db: asyncpg.Pool,
) -> None:
    world = await _new_world(workers_client, db)
    model = Model()
    last: tuple[Call, httpx.Response] | None = None
    for step in plan:
        if isinstance(step, ReplayLast):
            if last is None:
                continue
            call, first = last
            again = await _send(payments_client, call)
            assert again.status_code == (200 if call.internal else first.status_code)
            assert again.json() == first.json()
            assert again.headers["Idempotent-Replayed"] == "true"
        elif isinstance(step, Burst):
            calls = [op.call(world) for op in step.ops]
            responses = await asyncio.gather(*(_send(payments_client, c) for c in calls))
            for op, call, resp in zip(step.ops, calls, responses, strict=True):
                assert resp.status_code in (201, 402, 409, 422), resp.text
                if resp.status_code == 201:
                    op.apply(model)  # every success happened, in some order: book it as is
                    last = (call, resp)
            assert model.nonnegative(), (step, [r.status_code for r in responses])
        else:
            call = step.call(world)
            expected = step.expect(model)
            resp = await _send(payments_client, call)
            assert resp.status_code == expected, (step, resp.text)
            if resp.status_code == 201:
                step.apply(model)
                last = (call, resp)
        await _assert_matches(payments_client, db, world, model)


def test_a_burst_books_every_success_whatever_order_the_service_ran_them_in() -> None:
    """The model itself: the service ran the payout (listed second) before the withdrawal it
    funded, so both answered 201; booking them in list order must still count both. A success
    the model cannot afford is an overdraft, which `nonnegative` must then report."""
    model = Model(available=1_000)
    burst = (
        Withdraw(worker=0, amount=100),
        Pay(project=0, worker=0, reward=100, source="available"),
    )
    for op in burst:  # both answered 201
        op.apply(model)
    assert model.worker_available == [0, 0] and model.withdrawn == [100, 0]
    assert model.available == 1_000 - 100 - burst[1].fee and model.nonnegative()
    Withdraw(worker=0, amount=100).apply(model)  # a second one would overdraw
    assert not model.nonnegative()
