"""Review request and response models (contract: approve, reject, bulk review)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from typing_extensions import TypeAliasType

from services.tasks.assignments.schemas import AssignmentStatus

MAX_REVIEW_ITEMS = 1_000

AssignmentId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Feedback = Annotated[str, StringConstraints(strip_whitespace=True, max_length=10_000)]
RejectFeedback = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=10, max_length=10_000)
]


class ApproveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    feedback: Feedback | None = None


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    feedback: RejectFeedback = Field(description="Why, for the worker (at least 10 characters).")


class BulkApproveItem(ApproveBody):
    id: AssignmentId


class BulkRejectItem(RejectBody):
    id: AssignmentId


class BulkReviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approve: list[BulkApproveItem] = Field(default_factory=list, max_length=MAX_REVIEW_ITEMS)
    reject: list[BulkRejectItem] = Field(default_factory=list, max_length=MAX_REVIEW_ITEMS)

    @model_validator(mode="after")
    def _size(self) -> BulkReviewBody:
        total = len(self.approve) + len(self.reject)
        if total == 0:
            raise ValueError("give at least one assignment to approve or reject")
        if total > MAX_REVIEW_ITEMS:
            raise ValueError(f"at most {MAX_REVIEW_ITEMS} items per call ({total} given)")
        return self


ReviewAction = TypeAliasType("ReviewAction", Literal["approve", "reject"])
ReviewItemStatus = TypeAliasType("ReviewItemStatus", Literal["ok", "error"])


class ReviewItemResult(BaseModel):
    id: str
    action: ReviewAction
    status: ReviewItemStatus
    assignment_status: AssignmentStatus | None = Field(
        default=None, description="The assignment's status after this call (when it exists)."
    )
    code: str | None = None
    detail: str | None = None


class BulkReviewResult(BaseModel):
    results: list[ReviewItemResult] = Field(description="One per item, in request order.")
