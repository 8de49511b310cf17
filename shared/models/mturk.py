"""The MTurk door's tables (migration 0020).

- `mturk_credentials` (owner: workers service, which issues and revokes them; read by the tasks
  service's door to verify SigV4 signatures): an access key id and its secret, AES-GCM
  encrypted (shared.mturk_credentials), since SigV4 verification needs the plaintext secret.
- `mturk_request_tokens` (owner: tasks): `UniqueRequestToken`s seen in the last 24 hours.
- `mturk_invocations` (owner: tasks): the first response to a write, by the client's
  `amz-sdk-invocation-id`, replayed to botocore's retries of the same call.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, created_at_column, id_column, timestamp_column


class MTurkCredential(Base):
    __tablename__ = "mturk_credentials"

    access_key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = id_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    # nonce (12 bytes) || AES-256-GCM ciphertext+tag of the secret access key; the access key
    # id is the associated data, so a ciphertext moved to another row does not decrypt.
    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    last_used_at: Mapped[datetime | None] = timestamp_column()
    revoked_at: Mapped[datetime | None] = timestamp_column()


class MTurkRequestToken(Base):
    __tablename__ = "mturk_request_tokens"

    requester_id: Mapped[str] = id_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    # Which operations share a token space ("HIT" for CreateHIT and CreateHITWithHITType,
    # "Bonus" for SendBonus, ...): chosen by the op.
    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource_id: Mapped[str | None] = id_column()
    created_at: Mapped[datetime] = created_at_column()

    __table_args__ = (Index("ix_mturk_request_tokens_created_at", "created_at"),)


class MTurkInvocation(Base):
    __tablename__ = "mturk_invocations"

    requester_id: Mapped[str] = id_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    invocation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = created_at_column()

    __table_args__ = (Index("ix_mturk_invocations_created_at", "created_at"),)
