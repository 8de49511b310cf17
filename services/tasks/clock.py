"""The tasks service's notion of "now" for hourly work, so tests can stand on a boundary.

Work sessions are measured by the server: every activity event is stamped with this clock in
Python and the stamp is what the SQL compares and stores (never the database's now()), so a test
can put the clock exactly on an idle deadline, a weekly cap or a week's end and prove what
happens there without sleeping minutes. Production reads the wall clock (`utcnow`); a test sets
`app.state.clock` to a callable of its own. The timers take the same clock from their runner.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def app_clock(request: Request) -> Clock:
    """The app's clock (`app.state.clock`, the wall clock unless a test set another)."""
    return getattr(request.app.state, "clock", utcnow)


async def get_now(request: Request) -> datetime:
    """Async on purpose: FastAPI runs a sync dependency in its thread pool."""
    return app_clock(request)()


NowDep = Annotated[datetime, Depends(get_now)]
