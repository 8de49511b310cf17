from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from services.workers.accounts.schemas import CountryCode, LanguageCode

Skill = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]


def _dedupe_casefold(items: list[str]) -> list[str]:
    """Keep the first spelling of each item, compared case-insensitively, in the given order."""
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        if item.casefold() not in seen:
            seen.add(item.casefold())
            out.append(item)
    return out


class ProfileUpdate(BaseModel):
    """Only the fields sent change; `country: null` clears it, other nulls are refused."""

    model_config = ConfigDict(extra="forbid")

    display_name: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
        | None
    ) = None
    country: CountryCode | None = None
    languages: Annotated[list[LanguageCode], AfterValidator(_dedupe_casefold)] | None = Field(
        default=None, max_length=50
    )
    skills: Annotated[list[Skill], AfterValidator(_dedupe_casefold)] | None = Field(
        default=None, max_length=50
    )
    bio: str | None = Field(default=None, max_length=5000)

    @model_validator(mode="after")
    def _no_null_except_country(self) -> ProfileUpdate:
        for name in ("display_name", "languages", "skills", "bio"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


# A profile as stored (the repository's row); the API's shape adds the worker's stats.
class ProfileRow(BaseModel):
    worker_id: str
    display_name: str
    country: str | None
    languages: list[str]
    skills: list[str]
    bio: str
    created_at: datetime = Field(description="When the worker signed up.")
    updated_at: datetime = Field(description="Last profile change.")


class WorkerProfileRead(ProfileRow):
    submitted_count: int = Field(description="Assignments ever submitted (incl. reviewed ones).")
    approved_count: int
    rejected_count: int
    pending_review_count: int = Field(description="Submitted assignments awaiting review.")
    approval_rate: float | None = Field(
        description="Percent of decided (approved + rejected) assignments that were approved, "
        "2 decimals; null before the first decision."
    )
