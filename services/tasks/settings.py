from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TASKS_", extra="ignore", frozen=True)

    # The queue's hot paths (accept, submit, return) take most of the site's requests, on the
    # driver pool: a larger one than the kit's. Everything else, the outbox deliverer and the
    # timer sweeps use the engine's pool (db_pool_size).
    db_driver_pool_size: int = Field(default=40, ge=1, le=200)

    # Projects: uploads, discovery, results.
    upload_max_tasks: int = Field(default=10_000, ge=1, le=100_000)
    # Published projects examined per discovery query while filling one page (blocks,
    # requirements and gold accuracy are filtered in bulk per batch).
    discovery_scan_batch: int = Field(default=200, ge=10, le=5_000)
    # Requester review stats and measured working times shown in discovery are cached this long.
    discovery_stats_ttl_seconds: float = Field(default=60.0, ge=0, le=3_600)
    # The requester scorecard in discovery is precomputed by a timer sweep: a requester's is
    # recomputed once older than this, this many requesters per batch.
    discovery_scorecard_max_age_seconds: float = Field(default=60.0, ge=1, le=86_400)
    discovery_scorecard_batch_size: int = Field(default=50, ge=1, le=1_000)
    results_batch_rows: int = Field(default=500, ge=10, le=10_000)

    # The queue: accept, review, outbox.
    # The outbox deliverer: how often it looks for due payouts/releases when nobody wakes it,
    # how many it leases per pass, and the retry backoff (base * 2^(attempt-1), capped).
    outbox_enabled: bool = True
    outbox_poll_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    outbox_batch_size: int = Field(default=100, ge=1, le=1_000)
    outbox_concurrency: int = Field(default=8, ge=1, le=100)
    outbox_backoff_base_seconds: float = Field(default=1.0, gt=0, le=600)
    outbox_backoff_cap_seconds: float = Field(default=300.0, gt=0, le=86_400)
    # A leased message is retried by anyone after this long (a deliverer that died mid-call);
    # longer than one payments call can take.
    outbox_lease_seconds: float = Field(default=30.0, ge=1, le=3_600)

    # Hourly work: heartbeats that arrive while one heartbeat statement is in flight go together
    # in the next, at most this many per statement (services/tasks/sessions/service.py,
    # session_events; 1 runs one statement per heartbeat).
    heartbeat_max_batch: int = Field(default=128, ge=1, le=1_000)

    # Fair review (services/tasks/appeals, lifecycle/reject.py): of the rejections one requester
    # gives one worker in one UTC day, only this many count toward the worker's standing
    # (approval rate, level); the rest are flagged assignments.standing_excluded.
    # Env: TASKS_REJECTIONS_COUNTED_PER_REQUESTER_PER_DAY.
    rejections_counted_per_requester_per_day: int = Field(default=5, ge=0, le=1_000_000)

    # Timers: deadlines, auto-approval, task lifetimes, outbox retention.
    # Every tasks process runs the sweeps (services/tasks/timers/); replicas share the due items
    # through `FOR UPDATE SKIP LOCKED` batches, so adding replicas adds throughput, not repeats.
    timers_enabled: bool = True
    # How often an idle sweep looks for due items. A sweep whose batch came back full loops at
    # once instead, so a backlog drains at database speed whatever this is.
    timers_poll_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    # Due items acted on per transaction (one statement claims and changes them all).
    timers_batch_size: int = Field(default=500, ge=1, le=10_000)
    # A timer acts on an item only this long after it fell due. The request paths enforce the
    # exact time themselves (submit refuses after the deadline, accept skips expired tasks), so
    # the timers are janitors: being a few seconds late changes nothing a client can see, and
    # leaves the boundary to the request that is deciding it.
    timers_grace_seconds: float = Field(default=5.0, ge=0, le=3_600)
    # After a failed sweep (the database restarting, say) wait this long, doubling up to the cap.
    timers_error_backoff_seconds: float = Field(default=0.5, gt=0, le=60)
    timers_error_backoff_cap_seconds: float = Field(default=10.0, gt=0, le=600)
    # On shutdown each sweep, and the outbox deliverer, finishes its current batch if it can
    # within this; otherwise it is cancelled: a sweep's transaction rolls back and a leased
    # outbox message is retried after its lease, so nothing is lost either way.
    background_stop_timeout_seconds: float = Field(default=5.0, ge=0, le=60)
    # The pay floor's settlement sweep (services/tasks/pay_floor): a week's answers are settled
    # this long after the week ended (an approval in flight at midnight has committed by then),
    # and a closed project with answers still in flight is looked at again this often.
    pay_floor_grace_seconds: float = Field(default=3_600, ge=0, le=86_400)
    pay_floor_recheck_seconds: float = Field(default=300, gt=0, le=86_400)
    # Delivered outbox rows are kept this long (for inspection), then pruned by a sweep.
    outbox_retention_seconds: float = Field(default=7 * 86_400, ge=0, le=365 * 86_400)

    # Aggregation (crowd-kit, services/tasks/results/jobs.py): runs happen in a pool of spawned
    # processes (crowd-kit never enters the service process); each process is replaced after
    # this many runs so a large project's memory goes back to the system.
    aggregation_processes: int = Field(default=1, ge=1, le=16)
    aggregation_jobs_per_process: int = Field(default=4, ge=0, le=1_000)
    # A running run is heartbeaten every third of this; past it, another process takes it over.
    aggregation_lease_seconds: float = Field(default=30.0, ge=1, le=3_600)
    # A failed run is started again by a request for it once this long has passed since it
    # failed (before then the request is answered with the failure): a method that fails on a
    # project's data does not restart a minutes-long job on every poll.
    aggregation_retry_seconds: float = Field(default=30.0, ge=0, le=86_400)
    # The results request waits this long for a run before answering 202 with its status URL.
    aggregation_inline_wait_seconds: float = Field(default=5.0, ge=0, le=60)
    # SegmentationEM draws bounding boxes on a grid of this many cells a side.
    aggregation_box_grid: int = Field(default=64, ge=8, le=512)
