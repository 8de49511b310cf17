"""Worker profiles and their public stats.

Stats come from the trigger-maintained counters (shared/models/workers.py: WorkerStats + deltas),
read in one statement, so they are exact at every moment at O(1) cost per read.
"""

from __future__ import annotations

from services.workers.profiles import repository
from services.workers.profiles.schemas import ProfileUpdate, WorkerProfileRead
from shared.database import Db, Writable, WriteDb
from shared.errors import NotFound


class WorkerNotFound(NotFound):
    code = "worker_not_found"


async def get_profile(db: Db, *, worker_id: str) -> WorkerProfileRead:
    row = await repository.get_profile(db, worker_id)
    if row is None:
        raise WorkerNotFound("Worker not found.")
    stats = await repository.get_stats(db, worker_id)
    pending = stats.submitted - stats.approved - stats.rejected
    rate = round(100 * stats.approved / stats.decided, 2) if stats.decided else None
    return WorkerProfileRead(
        **row.model_dump(),
        submitted_count=stats.submitted,
        approved_count=stats.approved,
        rejected_count=stats.rejected,
        pending_review_count=pending,
        approval_rate=rate,
    )


async def update_profile(db: WriteDb, *, worker_id: str, data: ProfileUpdate) -> WorkerProfileRead:
    if not await repository.ensure_profile(db, worker_id):
        raise WorkerNotFound("Worker not found.")
    changes = data.changes()
    if changes:
        await repository.update_profile(db, worker_id, changes)
    return await get_profile(db, worker_id=worker_id)


async def create_profile_for_new_worker(
    db: Writable,
    *,
    worker_id: str,
    name: str,
    country: str | None,
    languages: list[str],
) -> None:
    """Called at sign-up so every worker has a profile row from the start."""
    await repository.insert_profile(
        db, worker_id=worker_id, display_name=name, country=country, languages=languages
    )


async def worker_exists(db: Db, *, worker_id: str) -> bool:
    return await repository.get_profile(db, worker_id) is not None
