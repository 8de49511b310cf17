"""`GET /v1/earnings?from=&to=` (contract: "Money"), workers only.

`from` and `to` are strict ISO calendar days (`YYYY-MM-DD`, ASCII digits) between
`EARLIEST_DAY` and `LATEST_DAY`: anything else is 422 problem+json before any SQL runs (no
Unix timestamps, no datetimes, no day whose next day does not exist).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AfterValidator, BeforeValidator, WithJsonSchema

from services.payments.earnings import service
from services.payments.earnings.schemas import Earnings
from services.payments.earnings.service import EARLIEST_DAY, LATEST_DAY
from shared.auth import WorkerDep
from shared.database import StaleReadDbDep
from shared.errors import Forbidden, Unauthorized, ValidationFailed, error_responses

_DAY_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_day(value: Any) -> Any:
    """Only `YYYY-MM-DD` strings (pydantic alone also takes "0" as 1970-01-01)."""
    if isinstance(value, str) and not _DAY_RE.fullmatch(value):
        raise ValueError("must be a day as YYYY-MM-DD")
    return value


def _bounded_day(value: date) -> date:
    if not EARLIEST_DAY <= value <= LATEST_DAY:
        raise ValueError(f"must be between {EARLIEST_DAY} and {LATEST_DAY}")
    return value


Day = Annotated[
    date,
    BeforeValidator(_iso_day),
    AfterValidator(_bounded_day),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date",
            "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
            "description": f"A UTC day, {EARLIEST_DAY} to {LATEST_DAY}.",
        }
    ),
]

router = APIRouter(prefix="/v1/earnings", tags=["money"])


@router.get(
    "",
    response_model=Earnings,
    response_model_by_alias=True,
    responses=error_responses(Unauthorized, Forbidden, ValidationFailed),
    summary="Earnings (rewards and bonuses) by day and project, hours worked, hourly rate",
)
async def get_earnings(
    caller: WorkerDep,
    db: StaleReadDbDep,  # a report over past days: may lag the latest payout by a few seconds
    from_date: Annotated[
        Day | None,
        Query(alias="from", description=f"First UTC day (inclusive), {EARLIEST_DAY} or later."),
    ] = None,
    to_date: Annotated[
        Day | None,
        Query(alias="to", description=f"Last UTC day (inclusive), {LATEST_DAY} or earlier."),
    ] = None,
) -> Earnings:
    return await service.get_earnings(
        db, worker_id=caller.account_id, from_date=from_date, to_date=to_date
    )
