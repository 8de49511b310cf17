"""Discovery rules: which published work a worker may see, and what it is worth per hour.

A project is listed when the worker could accept one of its tasks right now: it has a claimable
task the worker never had, its `discover` requirements hold and its requester has not blocked the
worker (`shared.eligibility`, one call per batch of projects), and the worker has not failed its
gold standard (`min_gold_accuracy`, judged after at least 3 gold answers). Filtering happens per
batch of candidate projects, so a page costs a handful of queries however many projects exist.
Measured working times move slowly and are cached for a short while. The requester scorecard
(`requester_stats`) is precomputed per requester by a timer sweep (`refresh_scorecards`, table
`requester_scorecards`), so a page reads one row per requester instead of aggregating each
requester's history; a requester the sweep has not reached yet is computed on the spot (and
cached like the working times).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson

from services.tasks.answers import effective_answer_schema
from services.tasks.discovery import repository
from services.tasks.discovery.repository import (
    GoldRecord,
    Scorecard,
    WorkingTime,
    WorkProjectRow,
)
from services.tasks.discovery.schemas import RequesterStats, WorkProject, WorkProjectPreview
from services.tasks.gold.service import gold_accuracy_failed
from services.tasks.pay_tiers import rules as pay_tiers
from shared.database import Db, ReadDb, Writable
from shared.eligibility import ProjectRules, evaluate_eligibility
from shared.errors import Forbidden, NotFound
from shared.money import MIN_RATE_SECONDS
from shared.pagination import Page, PageParams

MIN_MEASURED_ANSWERS = 3

K = TypeVar("K")
V = TypeVar("V")


class NotQualified(Forbidden):
    code = "not_qualified"


class Blocked(Forbidden):
    code = "blocked"


class WorkNotFound(NotFound):
    code = "not_found"


class TtlCache:
    """Per-process memo of slow-moving aggregates, each entry good for `ttl` seconds."""

    def __init__(self) -> None:
        self._entries: dict[Any, tuple[float, Any]] = {}

    async def get_many(
        self,
        keys: Sequence[K],
        load: Callable[[list[K]], Any],
        *,
        ttl: float,
        missing: V,
    ) -> dict[K, V]:
        now = time.monotonic()
        out: dict[K, V] = {}
        stale: list[K] = []
        for key in keys:
            entry = self._entries.get(key)
            if entry is not None and entry[0] > now:
                out[key] = entry[1]
            else:
                stale.append(key)
        if stale:
            loaded = await load(stale)
            if len(self._entries) > 50_000:
                self._entries.clear()
            for key in stale:
                value = loaded.get(key, missing)
                out[key] = value
                if ttl > 0:
                    self._entries[key] = (now + ttl, value)
        return out


_working_times = TtlCache()
_live_scorecards = TtlCache()


def gold_failed(min_gold_accuracy: int | None, record: GoldRecord | None) -> bool:
    """The queue side's rule (the same one accept applies), on the worker's gold tally."""
    if record is None:
        return False
    return gold_accuracy_failed(
        min_gold_accuracy=min_gold_accuracy, answered=record.answered, correct=record.correct
    )


def measured_enough(measured: WorkingTime | None) -> bool:
    """Measured time is a rate's basis from `MIN_MEASURED_ANSWERS` answers and `MIN_RATE_SECONDS`
    (shared/money.py) of measured work on: a median over a few seconds of work in all (three
    10 ms answers) would extrapolate to thousands of dollars an hour."""
    return (
        measured is not None
        and measured.answers >= MIN_MEASURED_ANSWERS
        and measured.total_seconds >= MIN_RATE_SECONDS
    )


def hourly_rate_cents(
    reward_cents: int,
    measured: WorkingTime | None,
    estimated_seconds: int | None,
    *,
    hourly_rate: int | None = None,
) -> int | None:
    """Reward per hour (cents, rounded down) from measured time when there is enough of it
    (`measured_enough`), else the requester's estimate, else None; an hourly project's rate."""
    if hourly_rate is not None:
        return hourly_rate
    if measured is not None and measured_enough(measured):
        seconds = max(measured.median_seconds, 1.0)
    elif estimated_seconds:
        seconds = float(estimated_seconds)
    else:
        return None
    return int(reward_cents * 3600 // seconds)


def rate_basis(
    measured: WorkingTime | None, estimated_seconds: int | None, *, hourly: bool = False
) -> str | None:
    if hourly:
        return "hourly_rate"
    if measured_enough(measured):
        return "measured"
    return "estimate" if estimated_seconds else None


def measured_seconds(measured: WorkingTime | None) -> int:
    return 0 if measured is None else round(measured.total_seconds)


def requester_stats(card: Scorecard | None, *, pay_floor_set: bool) -> RequesterStats:
    if card is None:
        return RequesterStats(
            approval_rate_given=None, median_review_seconds=None, pay_floor_set=pay_floor_set
        )
    decided = card.approved + card.rejected
    return RequesterStats(
        approval_rate_given=round(100 * card.approved / decided, 1) if decided else None,
        median_review_seconds=(
            None
            if not decided or card.median_review_seconds is None
            else round(card.median_review_seconds)
        ),
        effective_hourly_pay=card.effective_hourly_cents,
        timesheets_disputed_rate=(
            round(100 * card.timesheets_disputed / card.timesheets_reviewed, 1)
            if card.timesheets_reviewed
            else None
        ),
        pay_floor_set=pay_floor_set,
        rejections_given=card.rejections_given,
        appeals_received=card.appeals_received,
        appeals_overturned=card.appeals_overturned,
    )


async def scorecards(db: Db, requester_ids: list[str], *, ttl: float) -> dict[str, Scorecard]:
    """The sweep's scorecards; the requesters it has not reached yet computed now (cached)."""
    stored = await repository.stored_scorecards(db, requester_ids)
    missing = [r for r in requester_ids if r not in stored]
    if missing:
        stored.update(
            await _live_scorecards.get_many(
                missing,
                lambda keys: repository.scorecard_figures(
                    db, keys, min_seconds=MIN_RATE_SECONDS, min_answers=MIN_MEASURED_ANSWERS
                ),
                ttl=ttl,
                missing=None,
            )
        )
    return {k: v for k, v in stored.items() if v is not None}


async def refresh_scorecards(db: Writable, *, limit: int, max_age_seconds: float) -> int:
    """One batch of the scorecard sweep (services/tasks/timers): the scorecards of requesters
    with published work that are missing or older than `max_age_seconds`."""
    return await repository.refresh_scorecards(
        db,
        limit=limit,
        max_age_seconds=max_age_seconds,
        min_seconds=MIN_RATE_SECONDS,
        min_answers=MIN_MEASURED_ANSWERS,
    )


def _rules(row: WorkProjectRow) -> ProjectRules:
    return ProjectRules(
        project_id=row.id,
        requester_id=row.requester_id,
        requirements=list(row.qualification_requirements or []),
    )


async def _visible(
    db: ReadDb, *, worker_id: str, candidates: list[WorkProjectRow]
) -> list[WorkProjectRow]:
    """Candidates whose discover guard holds (no block, requirements met) and gold not failed."""
    eligibility = await evaluate_eligibility(
        db, worker_id=worker_id, projects=[_rules(r) for r in candidates]
    )
    allowed = [r for r in candidates if eligibility[r.id].discover.ok]
    with_gold_rule = [r.id for r in allowed if r.min_gold_accuracy is not None]
    records = await repository.gold_records(db, worker_id=worker_id, project_ids=with_gold_rule)
    return [r for r in allowed if not gold_failed(r.min_gold_accuracy, records.get(r.id))]


async def _decorate(
    db: ReadDb, *, worker_id: str, rows: list[WorkProjectRow], stats_ttl: float
) -> list[WorkProject]:
    ids = [r.id for r in rows]
    available = await repository.available_counts(db, worker_id=worker_id, project_ids=ids)
    measured = await _working_times.get_many(
        ids, lambda keys: repository.working_times(db, keys), ttl=stats_ttl, missing=None
    )
    requesters = sorted({r.requester_id for r in rows})
    cards = await scorecards(db, requesters, ttl=stats_ttl)
    tiered = any(r.level_reward_cents or r.level_hourly_rate_cents for r in rows)
    level = await repository.worker_level(db, worker_id) if tiered else 0
    return [
        WorkProject(
            id=r.id,
            requester_id=r.requester_id,
            title=r.title,
            description=r.description,
            keywords=list(r.keywords),
            task_type=r.task_type,
            reward=r.reward_cents,
            pay_model=r.pay_model,
            kind=r.kind,
            hourly_rate=r.hourly_rate_cents,
            min_hourly_rate=r.min_hourly_rate_cents,
            reward_by_level=r.reward_by_level,
            hourly_rate_by_level=r.hourly_rate_by_level,
            reward_for_your_level=(
                None
                if r.pay_model == "hourly"
                else pay_tiers.level_of(r.level_reward_cents, level, base_cents=r.reward_cents)
            ),
            hourly_rate_for_your_level=(
                None
                if r.pay_model != "hourly" or r.hourly_rate_cents is None
                else pay_tiers.level_of(
                    r.level_hourly_rate_cents, level, base_cents=r.hourly_rate_cents
                )
            ),
            available_tasks=available.get(r.id, 0),
            assignment_duration_seconds=r.assignment_duration_seconds,
            estimated_seconds_per_assignment=r.estimated_seconds_per_assignment,
            hourly_rate_estimate=hourly_rate_cents(
                r.reward_cents,
                measured.get(r.id),
                r.estimated_seconds_per_assignment,
                hourly_rate=r.hourly_rate_cents if r.pay_model == "hourly" else None,
            ),
            hourly_rate_basis=rate_basis(
                measured.get(r.id),
                r.estimated_seconds_per_assignment,
                hourly=r.pay_model == "hourly",
            ),
            measured_seconds=measured_seconds(measured.get(r.id)),
            requester_stats=requester_stats(
                cards.get(r.requester_id), pay_floor_set=r.min_hourly_rate_cents is not None
            ),
            published_at=r.published_at,
        )
        for r in rows
    ]


async def list_work(
    db: ReadDb,
    *,
    worker_id: str,
    page: PageParams,
    scan_batch: int,
    stats_ttl: float,
) -> Page[WorkProject]:
    before = page.before
    batch = max(scan_batch, page.fetch)
    found: list[WorkProjectRow] = []
    while len(found) < page.fetch:
        candidates = await repository.published_with_work(
            db, worker_id=worker_id, before_id=before, limit=batch
        )
        if not candidates:
            break
        found += await _visible(db, worker_id=worker_id, candidates=candidates)
        if len(candidates) < batch:
            break
        before = candidates[-1].id
    kept, next_cursor = page.page_by_id(found)
    items = await _decorate(db, worker_id=worker_id, rows=kept, stats_ttl=stats_ttl)
    # A project whose last task went between the two queries is simply dropped from this page.
    return Page(items=[item for item in items if item.available_tasks > 0], next_cursor=next_cursor)


async def preview(
    db: ReadDb, *, worker_id: str, project_id: str, stats_ttl: float
) -> WorkProjectPreview:
    row = await repository.published_project(db, project_id)
    if row is None:
        raise WorkNotFound("No published project has this id.")
    eligibility = (await evaluate_eligibility(db, worker_id=worker_id, projects=[_rules(row)]))[
        row.id
    ]
    if eligibility.blocked:
        raise Blocked("The requester of this project has blocked you.")
    if not eligibility.preview.ok:
        unmet = [f.to_dict() for f in eligibility.preview.failures]
        raise NotQualified(
            "You do not meet this project's qualification requirements.",
            errors=[
                {
                    "loc": ["qualification_requirements", f["qualification_type_id"]],
                    "msg": f["reason"],
                }
                for f in unmet
            ],
            extra={"unmet_requirements": unmet},
        )
    [item] = await _decorate(db, worker_id=worker_id, rows=[row], stats_ttl=stats_ttl)
    records = await repository.gold_records(db, worker_id=worker_id, project_ids=[row.id])
    if gold_failed(row.min_gold_accuracy, records.get(row.id)):
        item.available_tasks = 0
    sample = (
        await repository.sample_input(db, worker_id=worker_id, project_id=row.id)
        if item.available_tasks
        else None
    )
    return WorkProjectPreview(
        **{name: getattr(item, name) for name in WorkProject.model_fields},
        instructions=row.instructions,
        labels=row.labels,
        multi_label=row.multi_label,
        answer_schema=effective_answer_schema(row),
        qualification_requirements=list(row.qualification_requirements or []),
        sample_input=None if sample is None else orjson.loads(sample),
    )


async def refresh_scorecards_of(db: Writable, requester_ids: list[str]) -> None:
    """Recompute these requesters' scorecards now, due or not."""
    await repository.refresh_scorecards_of(
        db, requester_ids, min_seconds=MIN_RATE_SECONDS, min_answers=MIN_MEASURED_ANSWERS
    )
