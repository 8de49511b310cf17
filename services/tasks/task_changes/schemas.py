"""What a requester sends to change a live task: more assignments, a new expiry."""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

MAX_ASSIGNMENTS_PER_TASK = 100
"""The native cap on a task's assignments (the `tasks.max_assignments` CHECK): more answers per
item is a batch of tasks, not one task."""


class AdditionalAssignments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(
        strict=True,
        ge=1,
        le=MAX_ASSIGNMENTS_PER_TASK - 1,
        description="Slots to add; the task's max_assignments may reach 100 at most.",
    )


class TaskChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expires_at: AwareDatetime = Field(
        description="When the task stops being offered (RFC 3339 with an offset). Now or in "
        "the past: it expires at once. At most 365 days ahead."
    )

    @field_validator("expires_at", mode="before")
    @classmethod
    def _rfc3339_text(cls, value: Any) -> Any:
        """Time is RFC 3339 text in this API; a bare number would be read as epoch seconds."""
        if not isinstance(value, str):
            raise ValueError("must be an RFC 3339 date-time string")
        return value
