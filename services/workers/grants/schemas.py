from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypeAliasType

from services.workers.qualification_types.schemas import QualificationValue

GrantStatus = TypeAliasType("GrantStatus", Literal["granted", "revoked"])


class GrantSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: QualificationValue = 1


class GrantRevoke(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=1000)


class GrantRead(BaseModel):
    qualification_type_id: str
    worker_id: str
    value: int
    status: GrantStatus
    granted_at: datetime
    updated_at: datetime
    revoked_at: datetime | None
    revoke_reason: str | None


class WorkerQualificationRead(BaseModel):
    qualification_type_id: str
    name: str
    value: int | str = Field(description="An integer; an ISO country code for system.country.")
    is_system: bool
    granted_at: datetime | None = Field(description="null for system qualifications")
    updated_at: datetime | None
