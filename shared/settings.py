"""Settings base class: each service subclasses it with its own env prefix (TASKS_, ...)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.ratelimit import validate_rate

_PLACEHOLDERS = {"changeme", "change-me", "secret", "changethis", "password", "token"}


class ServiceSettings(BaseSettings):
    """What every service needs; secrets have no defaults so a misconfigured deploy fails loudly."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    database_url: str = Field(description="postgresql://user:pass@host:port/db")
    internal_token: SecretStr = Field(min_length=16, description="shared secret for /internal/*")

    tasks_url: str = "http://127.0.0.1:8001"
    workers_url: str = "http://127.0.0.1:8002"
    payments_url: str = "http://127.0.0.1:8003"

    db_pool_size: int = Field(default=20, ge=1, le=200)
    db_max_overflow: int = Field(default=0, ge=0, le=200)
    # The raw asyncpg pool of the hot paths (shared.hot_path), opened on
    # first use.
    db_driver_pool_size: int = Field(default=20, ge=1, le=200)
    # How long a process may answer for an API key from memory (shared.auth.ApiKeyCache;
    # revocations are pushed sooner, by notification). 0 looks every key up on every request.
    api_key_cache_seconds: float = Field(default=60.0, ge=0, le=3600)
    http_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    log_level: str = "INFO"
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_json_depth: int = Field(default=64, ge=8, le=200)
    # Rate limits in `limits` notation ("3000/minute", "50/second"); see shared/ratelimit.py.
    rate_limit_per_key: str = "3000/minute"
    rate_limit_signup: str = "120/minute"

    @field_validator("rate_limit_per_key", "rate_limit_signup")
    @classmethod
    def _valid_rate(cls, v: str) -> str:
        return validate_rate(v)

    @field_validator("internal_token")
    @classmethod
    def _refuse_placeholder(cls, v: SecretStr) -> SecretStr:
        if v.get_secret_value().strip().lower() in _PLACEHOLDERS:
            raise ValueError("internal_token is a placeholder; set a real secret")
        return v

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, v: str) -> str:
        if not v.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
            raise ValueError("database_url must be a postgresql:// URL")
        return v
