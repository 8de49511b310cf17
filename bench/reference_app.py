"""The reference for figure 1: the accept and submit SQL of the tasks service and nothing else.

A minimal FastAPI app on an asyncpg pool, deployed like the tasks service (same uvicorn flags, same
number of processes, the same connection budget per process). It runs the very statements of
`services/tasks/lifecycle/accept.py` and `submit.py` (imported, so they can never drift apart): the
claim (from a random rank, wrapping around, then waiting for locks, exactly as the service's accept
retries), the submit statement (the assignment's update and the worker's submission count in the
project, one statement in the service too) and the approve statement (`lifecycle/approve.py`'s
one-statement fast path: the state change, the slot, the tally and the payout's outbox row, which
the tasks service's deliverer then pays like any other). No auth, no requirements, no answer
validation, no idempotency, no pydantic models: what is left is the cost of HTTP + JSON + the
statements, which is what "our code" is measured against.

    uvicorn --factory bench.reference_app:create_app   (env BENCH_REFERENCE_DATABASE_URL)
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from services.tasks.lifecycle.accept import CLAIM_SKIP_LOCKED_SQL, CLAIM_WAITING_SQL
from services.tasks.lifecycle.approve import APPROVE_ONE_SQL
from services.tasks.lifecycle.decisions import OVERRIDE_WINDOW_DAYS
from services.tasks.lifecycle.submit import SUBMIT_SQL
from shared.ids import new_id

MAX_CLAIM_RANK = 2_147_483_647


async def _end_transaction(conn: asyncpg.Connection) -> None:
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


def _json(status: int, body: Any) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def create_app() -> FastAPI:
    database_url = os.environ["BENCH_REFERENCE_DATABASE_URL"]
    pool_size = int(os.environ.get("BENCH_REFERENCE_POOL_SIZE", "20"))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # jsonb as text both ways, like a plain driver setup would; the service decodes input.
        # Connections handled as the service's hot pool handles them (shared.database): reset on
        # release only by ending an open transaction, so both sides make the same round trips
        # for the same work.
        app.state.pool = await asyncpg.create_pool(
            database_url,
            min_size=min(4, pool_size),
            max_size=pool_size,
            reset=_end_transaction,
            # The bench charges each side the Postgres backends serving it (by this name).
            server_settings={"application_name": "reference"},
        )
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/accept")
    async def accept(request: Request) -> Response:
        """Body: project_id, worker_id, requester_id, reward_cents, fee_cents, duration_seconds."""
        body = orjson.loads(await request.body())
        args = (
            body["project_id"],
            body["worker_id"],
            # The service's own ids (a ULID): a random 26-digit id drawn with secrets.choice
            # cost the reference 27 getrandom calls per accept, flattering every ratio.
            new_id(),
            body["requester_id"],
            body["reward_cents"],
            body["fee_cents"],
            body["duration_seconds"],
            False,  # standing_excluded: the reference claims standard work
        )
        start = random.randint(0, MAX_CLAIM_RANK)
        # Each claim is one statement, atomic on its own: no BEGIN/COMMIT, as in the service.
        async with request.app.state.pool.acquire() as conn:
            for from_rank, sql in ((start, CLAIM_SKIP_LOCKED_SQL), (0, CLAIM_SKIP_LOCKED_SQL)):
                row = await conn.fetchrow(sql, args[0], args[1], from_rank, *args[2:])
                if row is not None and row["id"] is not None:
                    break
            else:
                row = await conn.fetchrow(CLAIM_WAITING_SQL, args[0], args[1], 0, *args[2:])
        if row is None or row["id"] is None:
            return _json(404, {"code": "no_work_available"})
        return _json(
            201,
            {
                "assignment_id": row["id"],
                "task_id": row["task_id"],
                "input": orjson.loads(row["input"]),
                "deadline": row["deadline"].isoformat(),
            },
        )

    @app.post("/submit/{assignment_id}")
    async def submit(assignment_id: str, request: Request) -> Response:
        """Body: {answer, worker_id}."""
        body = orjson.loads(await request.body())
        async with request.app.state.pool.acquire() as conn:
            row = await conn.fetchrow(
                SUBMIT_SQL,
                assignment_id,
                body["worker_id"],
                orjson.dumps(body["answer"]).decode(),
                0,  # no gold answer given
                0,
            )
        if row is None:
            return _json(409, {"code": "invalid_state"})
        return _json(200, {"id": row["id"], "status": row["status"]})

    @app.post("/approve/{assignment_id}")
    async def approve(assignment_id: str, request: Request) -> Response:
        """Body: {requester_id}. The payout is written to the outbox, as by the service."""
        body = orjson.loads(await request.body())
        async with request.app.state.pool.acquire() as conn:
            row = await conn.fetchrow(
                APPROVE_ONE_SQL, assignment_id, body["requester_id"], None, OVERRIDE_WINDOW_DAYS
            )
        if row is None:
            return _json(409, {"code": "invalid_state"})
        return _json(200, {"id": row["id"], "status": row["status"]})

    return app
