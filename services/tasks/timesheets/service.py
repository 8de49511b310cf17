"""Timesheets of hourly projects: one per worker, project and ISO week (UTC); the review.

- Reads: the requester's list per project, the worker's own list, one timesheet with its
  sessions (either party; anyone else gets a 404).
- Approval (requester, or the auto-approve sweep `auto_approve_seconds` after the week's end)
  pays each undisputed session's seconds x the rate it opened with (pay tiers: the worker's
  level then), summed and rounded down to the cent, plus the fee through the outbox
  under `pay:timesheet:{id}`, committed with the approval, exactly as an assignment approval
  pays: a second approval finds it approved and pays nothing (200, the same timesheet), racing
  approvals are serialised on the row, and a payments outage only delays delivery. A timesheet
  is final, hence approvable, once its week is over or its project closed, and no session of
  it is still live.
- Disputes: the requester disputes an ended session of an open timesheet with a reason; the
  worker may answer; the requester withdraws the dispute (the time is paid) or approves the
  timesheet with the dispute standing (`upheld`: the session's time is not paid). Nothing else
  unpays time: rejecting answers of an hourly project does not.
- Money: the fee follows shared/fees.py on the payout, with the project's assignments_per_task,
  never more than what the publish reservation still holds (rounding over many timesheets can
  only ever cost the platform a cent, never the requester or the worker). Once the project is
  closed, what approval does not pay of a timesheet's share goes back to the requester.
"""

from __future__ import annotations

import logging
from datetime import datetime

from services.tasks.lifecycle.messages import Message, enqueue_many, release_message
from services.tasks.sessions import repository as sessions_repo
from services.tasks.sessions.schemas import TimesheetDetail, TimesheetRead
from services.tasks.sessions.service import session_read
from services.tasks.timesheets import repository
from services.tasks.timesheets.repository import TimesheetRow
from shared.database import Db, WriteDb
from shared.errors import Conflict, NotFound
from shared.fees import fee_cents
from shared.pagination import Page, PageParams

log = logging.getLogger("tasks.timesheets")


class TimesheetNotFound(NotFound):
    code = "not_found"


class TimesheetNotFinal(Conflict):
    code = "timesheet_not_final"


class TimesheetApproved(Conflict):
    code = "timesheet_approved"


class DisputeNotAllowed(Conflict):
    code = "dispute_not_allowed"


def timesheet_read(row: TimesheetRow) -> TimesheetRead:
    due = row.paid_cents if row.status == "approved" else row.undisputed_pay_cents
    return TimesheetRead(
        id=row.id,
        project_id=row.project_id,
        worker_id=row.worker_id,
        requester_id=row.requester_id,
        week_start=row.week_start,
        week_end=row.week_end,
        status=row.status,  # type: ignore[arg-type]
        seconds_worked=row.seconds_worked,
        hours_worked=round(row.seconds_worked / 3600, 4),
        sessions=row.sessions,
        answers_submitted=row.answers_submitted,
        answers_approved=row.answers_approved,
        disputed_seconds=row.disputed_seconds,
        hourly_rate=row.hourly_rate_cents,
        amount_due=due,
        auto_approve_at=row.auto_approve_at,
        disputed_at=row.disputed_at,
        approved_at=row.approved_at,
        approved_by=row.approved_by,  # type: ignore[arg-type]
        paid_seconds=row.paid_seconds,
        paid=row.paid_cents,
        fee=row.fee_cents,
    )


async def _detail(db: Db, row: TimesheetRow) -> TimesheetDetail:
    sessions = await sessions_repo.timesheet_sessions(db, row.id)
    return TimesheetDetail(
        **dict(timesheet_read(row)), work_sessions=[session_read(s) for s in sessions]
    )


async def _own(
    db: Db, timesheet_id: str, *, requester_id: str | None = None, worker_id: str | None = None
) -> TimesheetRow:
    row = await repository.get_timesheet(db, timesheet_id)
    if row is None or (
        (requester_id is not None and row.requester_id != requester_id)
        or (worker_id is not None and row.worker_id != worker_id)
    ):
        raise TimesheetNotFound("Timesheet not found.")
    return row


async def get_for_requester(
    db: Db, *, requester_id: str, project_id: str, timesheet_id: str
) -> TimesheetDetail:
    row = await _own(db, timesheet_id, requester_id=requester_id)
    if row.project_id != project_id:
        raise TimesheetNotFound("Timesheet not found.")
    return await _detail(db, row)


async def get_for_worker(db: Db, *, worker_id: str, timesheet_id: str) -> TimesheetDetail:
    return await _detail(db, await _own(db, timesheet_id, worker_id=worker_id))


async def list_for_project(
    db: Db, *, project_id: str, page: PageParams, status: str | None
) -> Page[TimesheetRead]:
    rows = await repository.list_for_project(
        db, project_id=project_id, before_id=page.before, status=status, limit=page.fetch
    )
    kept, next_cursor = page.page_by_id(rows)
    return Page(items=[timesheet_read(r) for r in kept], next_cursor=next_cursor)


async def list_for_worker(
    db: Db, *, worker_id: str, page: PageParams, status: str | None
) -> Page[TimesheetRead]:
    rows = await repository.list_for_worker(
        db, worker_id=worker_id, before_id=page.before, status=status, limit=page.fetch
    )
    kept, next_cursor = page.page_by_id(rows)
    return Page(items=[timesheet_read(r) for r in kept], next_cursor=next_cursor)


# ---------------------------------------------------------------------------- approval


async def approve(
    db: WriteDb,
    *,
    timesheet_id: str,
    now: datetime,
    by: str,
    requester_id: str | None = None,
    project_id: str | None = None,
) -> bool:
    """Approve and pay the timesheet (see the module docstring). Returns whether this call
    approved it (False: it already was). Raises 404 for someone else's, 409 when not final."""
    sheet = await repository.lock_timesheet(db, timesheet_id, now)
    if sheet is None or (
        requester_id is not None
        and (sheet.requester_id != requester_id or sheet.project_id != project_id)
    ):
        raise TimesheetNotFound("Timesheet not found.")
    if sheet.status == "approved":
        return False
    if sheet.has_live_session or (now < sheet.week_end and sheet.project_status != "closed"):
        raise TimesheetNotFinal(
            "A timesheet can be approved once its week is over (or its project closed) and no "
            "session of it is still open.",
        )
    upheld = int(await db.fetchval(repository.UPHOLD_OPEN_DISPUTES_SQL, timesheet_id, now))
    paid_seconds = max(0, sheet.seconds_worked - upheld)
    # Each session at the rate it opened with (pay tiers), the upheld ones excluded.
    pay = int(await db.fetchval(repository.PAY_OF_TIMESHEET_SQL, timesheet_id))
    money = await repository.lock_budget(db, sheet.project_id)
    assert money is not None, "an hourly project with sessions has a budget row"
    if pay > money.left_cents:
        # Cannot happen: time is only granted within the budget the reservation covers.
        raise RuntimeError(f"timesheet {timesheet_id}: pay {pay} exceeds the reservation left")
    fee = min(
        fee_cents(pay, assignments_per_task=sheet.assignments_per_task), money.left_cents - pay
    )
    messages: list[Message] = []
    if pay:
        messages.append(
            Message(
                kind="payout",
                key=f"pay:timesheet:{timesheet_id}",
                payload={
                    "requester_id": sheet.requester_id,
                    "project_id": sheet.project_id,
                    "timesheet_id": timesheet_id,
                    "worker_id": sheet.worker_id,
                    "reward_cents": pay,
                    "fee_cents": fee,
                    "source": "reserved",
                },
            )
        )
    await db.execute(
        repository.APPROVE_TIMESHEET_SQL, timesheet_id, now, by, paid_seconds, pay, fee
    )
    released = 0
    if sheet.project_status == "closed":
        released = await _releasable(
            db,
            sheet.project_id,
            money,
            spent=pay + fee,
            assignments_per_task=sheet.assignments_per_task,
        )
        if released:
            messages.append(
                release_message(
                    key=f"release:timesheet:{timesheet_id}",
                    requester_id=sheet.requester_id,
                    project_id=sheet.project_id,
                    amount_cents=released,
                )
            )
    await db.execute(repository.MOVE_BUDGET_MONEY_SQL, sheet.project_id, pay + fee, released)
    await enqueue_many(db, messages)
    return True


async def _releasable(
    db: Db,
    project_id: str,
    money: repository.BudgetMoney,
    *,
    spent: int,
    assignments_per_task: int,
) -> int:
    """Of what the reservation still holds (after `spent`), what no open timesheet of the
    closed project can still claim: each may pay its time at the rate plus that pay's fee."""
    owed = sum(
        p + fee_cents(p, assignments_per_task=assignments_per_task)
        for p in await repository.owed_on_open_timesheets(db, project_id)
    )
    return max(0, money.left_cents - spent - owed)


async def approve_as_requester(
    db: WriteDb, *, requester_id: str, project_id: str, timesheet_id: str, now: datetime
) -> TimesheetDetail:
    await approve(
        db,
        timesheet_id=timesheet_id,
        now=now,
        by="requester",
        requester_id=requester_id,
        project_id=project_id,
    )
    row = await repository.get_timesheet(db, timesheet_id)
    assert row is not None
    return await _detail(db, row)


async def auto_approve_due(db: WriteDb, *, now: datetime, limit: int, grace_seconds: float) -> int:
    """The sweep: unreviewed timesheets past `auto_approve_at` are approved like a requester
    approval (`approved_by: auto`). Replica-safe: the batch locks what its approvals will lock
    first, in the one order (repository.lock_for_approvals), and approval is a no-op on a
    timesheet already approved, so two replicas on one timesheet pay it once."""
    ids = [
        r["id"] for r in await db.fetch(repository.DUE_TIMESHEETS_SQL, now, grace_seconds, limit)
    ]
    if not ids:
        return 0
    await repository.lock_for_approvals(db, ids)
    approved = 0
    for timesheet_id in ids:
        try:
            async with db.savepoint():
                approved += int(await approve(db, timesheet_id=timesheet_id, now=now, by="auto"))
        except TimesheetNotFinal:
            continue  # a session still live past the deadline: next pass
        except Exception:
            # A timesheet that cannot be paid (a broken invariant, logged for the operator) must
            # not hold back the others of the batch: its savepoint is rolled back (the error
            # leaves the block, so a failed statement's transaction state goes with it) and the
            # next pass tries it again.
            log.exception("timesheet %s: auto-approval failed", timesheet_id)
            continue
    return approved


# ------------------------------------------------------------------------- close of a project


async def release_on_close(
    db: WriteDb, *, project_id: str, requester_id: str, assignments_per_task: int
) -> int:
    """Close of an hourly project (its sessions already ended): the reservation not earned and
    not owed to an open timesheet goes back now, `release:hourly:{project}`. Returns the cents."""
    money = await repository.lock_budget(db, project_id)
    if money is None:
        return 0  # never published
    amount = await _releasable(
        db, project_id, money, spent=0, assignments_per_task=assignments_per_task
    )
    if amount:
        await db.execute(repository.MOVE_BUDGET_MONEY_SQL, project_id, 0, amount)
        await enqueue_many(
            db,
            [
                release_message(
                    key=f"release:hourly:{project_id}",
                    requester_id=requester_id,
                    project_id=project_id,
                    amount_cents=amount,
                )
            ],
        )
    return amount


# ----------------------------------------------------------------------------- disputes


async def _session_of_timesheet(
    db: WriteDb, *, session_id: str, timesheet_id: str, requester_id: str, project_id: str
) -> repository.SessionForReview:
    row = await repository.lock_session_for_review(db, session_id)
    if (
        row is None
        or row.timesheet_id != timesheet_id
        or row.requester_id != requester_id
        or row.project_id != project_id
    ):
        raise NotFound("Work session not found.")
    if row.timesheet_status != "open":
        raise TimesheetApproved("This timesheet is approved: its disputes are settled.")
    return row


async def dispute_session(
    db: WriteDb,
    *,
    requester_id: str,
    project_id: str,
    timesheet_id: str,
    session_id: str,
    reason: str,
    now: datetime,
) -> TimesheetDetail:
    row = await _session_of_timesheet(
        db,
        session_id=session_id,
        timesheet_id=timesheet_id,
        requester_id=requester_id,
        project_id=project_id,
    )
    if row.status == "open":
        raise DisputeNotAllowed("A session still open cannot be disputed; wait for it to end.")
    if row.dispute_status is not None:
        raise DisputeNotAllowed(
            f"This session was already disputed (the dispute is {row.dispute_status})."
        )
    await db.execute(repository.DISPUTE_SESSION_SQL, session_id, reason, now)
    return await get_for_requester(
        db, requester_id=requester_id, project_id=project_id, timesheet_id=timesheet_id
    )


async def withdraw_dispute(
    db: WriteDb,
    *,
    requester_id: str,
    project_id: str,
    timesheet_id: str,
    session_id: str,
    now: datetime,
) -> TimesheetDetail:
    row = await _session_of_timesheet(
        db,
        session_id=session_id,
        timesheet_id=timesheet_id,
        requester_id=requester_id,
        project_id=project_id,
    )
    if row.dispute_status != "open":
        raise DisputeNotAllowed("This session has no open dispute.")
    await db.execute(repository.WITHDRAW_DISPUTE_SQL, session_id, now)
    return await get_for_requester(
        db, requester_id=requester_id, project_id=project_id, timesheet_id=timesheet_id
    )


async def respond_to_dispute(
    db: WriteDb, *, worker_id: str, session_id: str, response: str, now: datetime
) -> TimesheetDetail:
    row = await repository.lock_session_for_review(db, session_id)
    if row is None or row.worker_id != worker_id:
        raise NotFound("Work session not found.")
    if row.timesheet_status != "open":
        raise TimesheetApproved("This timesheet is approved: its disputes are settled.")
    if row.dispute_status != "open":
        raise DisputeNotAllowed("This session has no open dispute to answer.")
    if row.dispute_response is not None:
        raise DisputeNotAllowed("You already answered this dispute.")
    await db.execute(repository.RESPOND_TO_DISPUTE_SQL, session_id, response, now)
    return await get_for_worker(db, worker_id=worker_id, timesheet_id=row.timesheet_id)
