"""Appeals: a worker contests a rejection once, within APPEAL_WINDOW_DAYS of it; the requester
overturns the appeal (the rejection becomes an approval paid exactly like an override,
lifecycle/override.py) or upholds it with a reason.

Why the money moves once when an overturn races a direct approval of the same assignment: both
start by locking the assignment row (decisions.locked_one), and the override statement flips the
appeal to `overturned` in the same statement that approves the assignment. Whichever comes
second finds the assignment approved and the appeal overturned, and pays nothing (payments also
acts once per payout key).

An appeal left open for ANSWER_WITHIN_DAYS counts as overturned in the requester's scorecard
(services/tasks/discovery); nothing is paid until the requester overturns it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from services.tasks.appeals import repository
from services.tasks.appeals.schemas import APPEAL_WINDOW_DAYS, AppealRead
from services.tasks.lifecycle import override as override_
from services.tasks.lifecycle.assignment import AssignmentNotFound
from services.tasks.lifecycle.decisions import locked_one
from shared.database import Db, WriteDb
from shared.errors import Conflict, InvalidState, NotFound
from shared.http import InternalClient
from shared.ids import new_id
from shared.pagination import Page, PageParams


class AppealNotFound(NotFound):
    code = "not_found"


class AppealExists(Conflict):
    code = "appeal_exists"


class AppealWindowClosed(Conflict):
    code = "appeal_window_closed"


class AppealDecided(Conflict):
    code = "appeal_decided"


async def appeal(
    db: WriteDb, *, worker_id: str, assignment_id: str, message: str, now: datetime
) -> AppealRead:
    target = await repository.lock_worker_assignment(
        db, assignment_id=assignment_id, worker_id=worker_id
    )
    if target is None:
        raise AssignmentNotFound("Assignment not found.")
    if target.appealed:
        raise AppealExists("This assignment was appealed before; a rejection is appealed once.")
    if target.status != "rejected" or target.reviewed_at is None:
        raise InvalidState(
            f"Only a rejected assignment can be appealed; this one is {target.status}."
        )
    if now > target.reviewed_at + timedelta(days=APPEAL_WINDOW_DAYS):
        raise AppealWindowClosed(
            f"A rejection can be appealed within {APPEAL_WINDOW_DAYS} days of it; this one was "
            f"made at {target.reviewed_at.isoformat()}."
        )
    created = await repository.insert_appeal(
        db, appeal_id=new_id(), target=target, worker_id=worker_id, message=message, now=now
    )
    if created is None:  # unreachable under the row lock; the unique key says the same
        raise AppealExists("This assignment was appealed before; a rejection is appealed once.")
    return created


async def _locked(db: WriteDb, *, requester_id: str, assignment_id: str) -> AppealRead:
    """The requester's assignment, then its appeal, locked in that order (the order every
    review path takes); 404 for someone else's assignment or one without an appeal."""
    await locked_one(db, requester_id=requester_id, assignment_id=assignment_id)
    found = await repository.lock_appeal(db, assignment_id=assignment_id, requester_id=requester_id)
    if found is None:
        raise AppealNotFound("This assignment has no appeal.")
    return found


async def overturn(
    db: WriteDb,
    *,
    payments: InternalClient,
    requester_id: str,
    assignment_id: str,
    feedback: str | None,
) -> AppealRead:
    """Overturning an overturned appeal answers it unchanged (a retry, or a direct approval
    that came first): nothing is paid twice."""
    current = await locked_one(db, requester_id=requester_id, assignment_id=assignment_id)
    found = await repository.lock_appeal(db, assignment_id=assignment_id, requester_id=requester_id)
    if found is None:
        raise AppealNotFound("This assignment has no appeal.")
    if found.status == "overturned":
        return found
    if found.status == "upheld":
        raise AppealDecided("This appeal was upheld; approve the assignment to reverse that.")
    if current.status != "rejected":  # an open appeal's assignment is rejected (override.py)
        raise InvalidState(f"The appealed assignment is {current.status}, not rejected.")
    await override_.override(
        db, payments=payments, current=current, feedback=feedback, appealed=True
    )
    overturned = await repository.get_appeal(
        db, assignment_id=assignment_id, requester_id=requester_id
    )
    assert overturned is not None and overturned.status == "overturned"
    return overturned


async def uphold(db: WriteDb, *, requester_id: str, assignment_id: str, reason: str) -> AppealRead:
    """Upholding an upheld appeal answers it unchanged (its first reason stays)."""
    found = await _locked(db, requester_id=requester_id, assignment_id=assignment_id)
    if found.status == "upheld":
        return found
    if found.status == "overturned":
        raise AppealDecided("This appeal was overturned: the assignment is approved and paid.")
    upheld = await repository.uphold(db, assignment_id=assignment_id, reason=reason)
    assert upheld is not None  # locked and open
    return upheld


async def get_appeal(
    db: Db, *, assignment_id: str, requester_id: str | None = None, worker_id: str | None = None
) -> AppealRead:
    found = await repository.get_appeal(
        db, assignment_id=assignment_id, requester_id=requester_id, worker_id=worker_id
    )
    if found is None:
        raise AppealNotFound("No appeal of this assignment is yours to see.")
    return found


async def list_appeals(
    db: Db,
    *,
    page: PageParams,
    requester_id: str | None = None,
    worker_id: str | None = None,
    project_id: str | None = None,
    status: str | None = None,
) -> Page[AppealRead]:
    rows = await repository.list_appeals(
        db,
        requester_id=requester_id,
        worker_id=worker_id,
        project_id=project_id,
        status=status,
        before_id=page.before,
        limit=page.fetch,
    )
    kept, next_cursor = page.page_by_id(rows)
    return Page(items=kept, next_cursor=next_cursor)
