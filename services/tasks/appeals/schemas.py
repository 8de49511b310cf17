"""Appeal request and response models (contract: "Fair review" in docs/api.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from typing_extensions import TypeAliasType

from services.tasks.review.schemas import Feedback

# Named: one `AppealStatus` component in the OpenAPI document (docs/api.md).
AppealStatus = TypeAliasType("AppealStatus", Literal["open", "overturned", "upheld"])

APPEAL_WINDOW_DAYS = 14
"""A rejection can be appealed this long after it was made."""
ANSWER_WITHIN_DAYS = 7
"""An appeal unanswered this long counts as overturned in the requester's scorecard."""

AppealText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=10, max_length=10_000)
]


class AppealBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: AppealText = Field(
        description="Why the rejection is wrong, for the requester (at least 10 characters)."
    )


class OverturnBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    feedback: Feedback | None = Field(
        default=None, description="For the worker; replaces the rejection's feedback if given."
    )


class UpholdBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: AppealText = Field(
        description="Why the rejection stands, for the worker (at least 10 characters)."
    )


class AppealRead(BaseModel):
    id: str
    assignment_id: str
    project_id: str
    worker_id: str
    status: AppealStatus = Field(
        description="open: awaiting the requester; overturned: the rejection became a paid "
        "approval; upheld: the rejection stands (see `reason`)."
    )
    message: str = Field(description="The worker's appeal.")
    reason: str | None = Field(
        description="The requester's answer: why it was upheld, or the feedback given with the "
        "overturn (may be null)."
    )
    created_at: datetime
    answer_by: datetime = Field(
        description="created_at + 7 days: an appeal still open then counts as overturned in the "
        "requester's scorecard (nothing is paid until the requester overturns it)."
    )
    decided_at: datetime | None
