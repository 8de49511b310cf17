"""Settings base class: each service subclasses it with its own env prefix (TASKS_, ...)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.ratelimit import validate_networks, validate_rate

_PLACEHOLDERS = {"changeme", "change-me", "secret", "changethis", "password", "token"}


class ServiceSettings(BaseSettings):
    """What every service needs; secrets have no defaults so a misconfigured deploy fails loudly."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    database_url: str = Field(description="postgresql://user:pass@host:port/db")
    internal_token: SecretStr = Field(min_length=16, description="shared secret for /internal/*")

    tasks_url: str = "http://127.0.0.1:8001"
    workers_url: str = "http://127.0.0.1:8002"
    payments_url: str = "http://127.0.0.1:8003"

    # The general pool (routes, background jobs) and the hot paths' pool (shared.hot_path):
    # asyncpg both, connections opened on first use (shared.database).
    db_pool_size: int = Field(default=20, ge=1, le=200)
    db_driver_pool_size: int = Field(default=20, ge=1, le=200)
    # A streaming replica for the reads that tolerate staleness (shared.database.ReadReplica,
    # StaleReadDbDep). Unset: every read goes to the primary, as without this feature. They are
    # sent to the primary too while the replica is down or its lag, measured on the replica and
    # probed every `read_replica_probe_seconds`, exceeds `read_replica_max_lag_seconds`.
    read_database_url: str | None = None
    read_replica_max_lag_seconds: float = Field(default=5.0, ge=0, le=3_600)
    read_replica_probe_seconds: float = Field(default=1.0, gt=0, le=60)
    db_replica_pool_size: int = Field(default=20, ge=1, le=200)
    # How long a process may answer for an API key from memory (shared.auth.ApiKeyCache;
    # revocations are pushed sooner, by notification). 0 looks every key up on every request.
    api_key_cache_seconds: float = Field(default=60.0, ge=0, le=3600)
    # The AES-256-GCM key sealing MTurk credential secrets at rest (shared.mturk_credentials):
    # base64 of 32 bytes, the same in the workers and tasks services. Unset: derived (HKDF)
    # from internal_token, which both already share; set it to rotate the two independently.
    mturk_secrets_key: SecretStr | None = None
    http_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    log_level: str = "INFO"
    # How often each process refreshes the gauges it samples (its pools' sizes; in the tasks
    # service the outbox and timer backlogs too). 0 turns the sampling off (/metrics still
    # answers, with the pools as of the scrape).
    metrics_sample_seconds: float = Field(default=15.0, ge=0, le=3600)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_json_depth: int = Field(default=64, ge=8, le=200)
    # Rate limits in `limits` notation ("3000/minute", "50/second"); see shared/ratelimit.py.
    # Counted per process (a replica enforces its own budget).
    # Per ACCOUNT, all its keys together (minting keys does not buy more). RATE_LIMIT_PER_KEY is
    # the old name, kept as an alias: it applies while RATE_LIMIT_PER_ACCOUNT is unset.
    rate_limit_per_account: str | None = None
    rate_limit_per_key: str = "3000/minute"
    # Sign-up, per client address (an IPv6 client: per /64); see forwarded_allow_ips.
    rate_limit_signup: str = "120/minute"
    # POST /v1/accounts/me/api-keys per account, and the active keys an account may hold
    # (both read by the workers service, which issues keys).
    rate_limit_api_key_creation: str = "60/hour"
    max_active_api_keys: int = Field(default=20, ge=1, le=10_000)
    # Peers whose X-Forwarded-For is believed (IPs or CIDRs, comma-separated or a JSON list):
    # the gateway's address or network. Empty (the default): nobody's, the TCP peer is the
    # client. uvicorn runs with --no-proxy-headers; shared.ratelimit.TrustedProxies decides.
    forwarded_allow_ips: Annotated[tuple[str, ...], NoDecode] = ()

    @property
    def account_rate_limit(self) -> str:
        return self.rate_limit_per_account or self.rate_limit_per_key

    @field_validator(
        "rate_limit_per_account",
        "rate_limit_per_key",
        "rate_limit_signup",
        "rate_limit_api_key_creation",
    )
    @classmethod
    def _valid_rate(cls, v: str | None) -> str | None:
        return None if v is None else validate_rate(v)

    @field_validator("forwarded_allow_ips", mode="before")
    @classmethod
    def _valid_networks(cls, v: Any) -> tuple[str, ...]:
        return validate_networks(v)

    @field_validator("internal_token")
    @classmethod
    def _refuse_placeholder(cls, v: SecretStr) -> SecretStr:
        if v.get_secret_value().strip().lower() in _PLACEHOLDERS:
            raise ValueError("internal_token is a placeholder; set a real secret")
        return v

    @field_validator("database_url", "read_database_url")
    @classmethod
    def _postgres_only(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return None
        if not v.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
            raise ValueError(f"{info.field_name} must be a postgresql:// URL")
        return v

    @field_validator("read_database_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, v: Any) -> Any:
        """`READ_DATABASE_URL=` (set but empty, as templated deploys write it) means no replica."""
        return None if isinstance(v, str) and not v.strip() else v
