from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class MTurkCredentialRead(BaseModel):
    access_key_id: str = Field(examples=["AKMTQ2Z7X4VBN5RT6YHA"])
    created_at: datetime
    last_used_at: datetime | None = None


class MTurkCredentialCreated(MTurkCredentialRead):
    secret_access_key: str = Field(
        description="Shown once, in this response only: it cannot be read again.",
        examples=["wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"],
    )


class MTurkCredentialList(BaseModel):
    items: list[MTurkCredentialRead]
