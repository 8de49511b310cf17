from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="WORKERS_", extra="ignore", frozen=True)

    # How often the stats loop folds worker_stats_deltas into worker_stats. Reads are exact either
    # way; compaction only keeps the per-worker delta rows few. 0 disables the loop.
    stats_compaction_interval_seconds: float = Field(default=10.0, ge=0, le=3600)
    stats_compaction_batch: int = Field(default=10_000, ge=1, le=1_000_000)
