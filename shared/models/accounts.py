"""Accounts and API keys (owner: workers service; read by every service to authenticate)."""

from __future__ import annotations

import unicodedata
from datetime import datetime

from sqlalchemy import ARRAY, CheckConstraint, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, created_at_column, id_column, timestamp_column


def normalize_email(email: str) -> str:
    """The form two addresses must not share within a kind: Unicode NFKC (fullwidth `\uff45` is
    `e`, a decomposed `é` is the composed one), case-folded (`É` is `é`, `ß` is `ss`), NFKC
    again (folding can leave a string that is not normalised). Computed here, never by
    Postgres, so the answer does not depend on the cluster's locale or version. Migration 0009
    keeps a frozen copy of this rule for its backfill; change both or neither."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", email).casefold())


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = id_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    email: Mapped[str] = mapped_column(Text, nullable=False)  # as the user typed it
    # normalize_email(email), written by the application; COLLATE "C" compares bytes, so the
    # unique index below means the same on any cluster locale.
    email_normalized: Mapped[str] = mapped_column(Text(collation="C"), nullable=False)
    country: Mapped[str | None] = mapped_column(String(2))
    languages: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    created_at: Mapped[datetime] = created_at_column()

    __table_args__ = (
        CheckConstraint("kind IN ('requester', 'worker')", name="kind"),
        # Email is unique per kind: one person may both post work and do work.
        Index("uq_accounts_kind_email_normalized", "kind", "email_normalized", unique=True),
    )


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = id_column(primary_key=True)
    account_id: Mapped[str] = id_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    prefix: Mapped[str] = mapped_column(String(32), nullable=False)
    # sha256 of the whole key: keys carry 256 random bits, so a fast hash is enough and keeps
    # authentication to one indexed equality lookup.
    key_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False, unique=True)
    name: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    last_used_at: Mapped[datetime | None] = timestamp_column()
    revoked_at: Mapped[datetime | None] = timestamp_column()


class SignupIdempotencyKey(Base):
    """`Idempotency-Key` of sign-ups (`POST /v1/accounts`), which have no account to scope the
    shared `idempotency_keys` table by. The key is stored only as a digest; the replayable
    response's API key is sealed with a key derived from the Idempotency-Key itself
    (services.workers.accounts.replay), so these rows alone do not give the key away."""

    __tablename__ = "signup_idempotency_keys"

    key_digest: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    request_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    account_id: Mapped[str | None] = id_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = created_at_column()
