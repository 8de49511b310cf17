"""The service's notion of "now", as a dependency so tests can stand exactly on a boundary.

Attempt deadlines and retake delays are decided in Python against this clock (and stored), so a
test can freeze it at `started_at + retry_delay_seconds` and prove the retake is allowed exactly
then, which a wall clock racing the database's now() could never show.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, FastAPI


def utcnow() -> datetime:
    return datetime.now(UTC)


async def get_now() -> datetime:
    return utcnow()


NowDep = Annotated[datetime, Depends(get_now)]


def app_now(app: FastAPI) -> datetime:
    """ "Now" for the app's background jobs (the levels loop): the clock its routes use, so a
    test that freezes `get_now` (tests/fixtures/workers.frozen_clock) freezes them too."""
    override = app.dependency_overrides.get(get_now)
    if override is None:
        return utcnow()
    moment = override()
    assert isinstance(moment, datetime), "override get_now with a plain function"
    return moment
