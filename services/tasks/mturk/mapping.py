"""How MTurk's requester objects map onto the native model, both ways (docs/mturk.md).

- A **HIT type** is a project. Its properties (Title, Description, Reward,
  AssignmentDurationInSeconds, AutoApprovalDelayInSeconds, Keywords, QualificationRequirements)
  are the project's columns; identical properties give the same HITTypeId because the door looks
  up the requester's live project with exactly those columns (`HitTypeProperties`) before it
  creates one.
- A **HIT** is a task of such a project: its own `max_assignments` (MaxAssignments), its own
  `expires_at` (LifetimeInSeconds), `external_id` (RequesterAnnotation), and an input carrying
  the question XML and its kind. HITStatus and the three NumberOfAssignments* counts are
  derived from the task, its project and its assignments (`hit_status`).
- An **assignment** is an assignment; AssignmentStatus is derived from the native status
  (submitted/approved/rejected; the others are not visible to MTurk clients).
- Money: MTurk amounts are dollar strings (`"0.25"`, `"5"`, `"5."`), native ones integer cents.

Everything here is pure (no I/O): the operation modules read and write through the native
service layer and hand rows to these functions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.tasks.mturk.errors import MTurkRequestError
from services.tasks.mturk.ids import to_mturk, worker_id_to_mturk
from shared.eligibility import (
    APPROVAL_RATE_TYPE_ID,
    APPROVED_COUNT_TYPE_ID,
    COUNTRY_TYPE_ID,
)

PARAMETER_OUT_OF_RANGE = "AWS.ParameterOutOfRange"

# --------------------------------------------------------------------------- limits

# MTurk's documented ranges, intersected with the native model's where the native one is
# narrower (the native bound is then the known difference, docs/mturk.md).
ASSIGNMENT_DURATION_RANGE = (30, 86_400)  # MTurk: 30 s - 1 year; native: at most 24 h
LIFETIME_RANGE = (30, 31_536_000)  # MTurk: 30 s - 1 year
AUTO_APPROVAL_DELAY_RANGE = (0, 2_592_000)  # MTurk: 0 - 30 days
DEFAULT_AUTO_APPROVAL_DELAY = 2_592_000  # MTurk's default when the caller sends none: 30 days
MAX_ASSIGNMENTS_RANGE = (1, 100)  # MTurk: 1 - 1,000,000,000; native: at most 100 per task
MAX_TITLE_CHARS = 128
MAX_DESCRIPTION_CHARS = 2_000
MAX_KEYWORDS_CHARS = 1_000
MAX_NATIVE_KEYWORDS = 20
MAX_NATIVE_KEYWORD_CHARS = 50
MAX_ANNOTATION_CHARS = 255
MAX_FEEDBACK_CHARS = 1_024
MAX_REQUIREMENTS = 10
MAX_INTEGER_VALUES = 15
MAX_LOCALE_VALUES = 30
HIT_TYPE_LIFETIME_SECONDS = LIFETIME_RANGE[1]
"""A HIT type's project `lifetime_seconds`: every HIT carries its own expiry, so the project's
(which only tasks uploaded into a draft inherit) is the longest MTurk allows."""

FEE_TIER_ASSIGNMENTS = 10
"""The native fee doubles (shared/fees.py) for projects asking 10+ assignments per task, as
MTurk's fee does for HITs with 10+ assignments: a HIT created with MaxAssignments >= 10 goes
into a HIT type whose project asks for 10 (its own HITTypeId), so it pays that fee."""


def out_of_range(message: str) -> MTurkRequestError:
    return MTurkRequestError(message, PARAMETER_OUT_OF_RANGE)


def integer_in_range(params: Mapping[str, Any], name: str, bounds: tuple[int, int]) -> int:
    value = params[name]
    low, high = bounds
    if not low <= value <= high:
        raise out_of_range(
            f"The value {value} is invalid for {name}. Valid values range from {low} to {high}."
        )
    return int(value)


# --------------------------------------------------------------------------- money

_AMOUNT = re.compile(r"^([0-9]+)(?:\.([0-9]{0,2}))?$")


def cents_from_amount(value: str, name: str) -> int:
    """An MTurk CurrencyAmount (`"5"`, `"5."`, `"5.5"`, `"0.25"`) as integer cents."""
    match = _AMOUNT.match(value)
    if match is None or len(value) > 20:
        raise out_of_range(f"{name} {value!r} is not a valid amount of US dollars.")
    dollars, fraction = match.group(1), (match.group(2) or "")
    return int(dollars) * 100 + int(fraction.ljust(2, "0") or "0")


def amount_from_cents(cents: int) -> str:
    """Integer cents as MTurk's 2-decimal string (`"0.25"`, `"12.00"`)."""
    return f"{cents // 100}.{cents % 100:02d}"


# --------------------------------------------------------------------------- keywords


def keywords_to_native(text: str | None) -> list[str]:
    """MTurk's comma-separated Keywords as the project's keyword list (order kept, blanks and
    repeats dropped)."""
    if not text:
        return []
    if len(text) > MAX_KEYWORDS_CHARS:
        raise out_of_range(f"Keywords must be at most {MAX_KEYWORDS_CHARS} characters long.")
    keywords: list[str] = []
    for part in text.split(","):
        keyword = part.strip()
        if keyword and keyword not in keywords:
            keywords.append(keyword)
    if len(keywords) > MAX_NATIVE_KEYWORDS:
        raise out_of_range(f"Keywords may list at most {MAX_NATIVE_KEYWORDS} keywords.")
    long_ones = [k for k in keywords if len(k) > MAX_NATIVE_KEYWORD_CHARS]
    if long_ones:
        raise out_of_range(
            f"Each keyword must be at most {MAX_NATIVE_KEYWORD_CHARS} characters long: "
            f"{long_ones[0]!r} is longer."
        )
    return keywords


def keywords_to_mturk(keywords: Sequence[str]) -> str:
    return ", ".join(keywords)


# --------------------------------------------------------------------------- requirements

COMPARATORS: dict[str, str] = {
    "LessThan": "lt",
    "LessThanOrEqualTo": "lte",
    "GreaterThan": "gt",
    "GreaterThanOrEqualTo": "gte",
    "EqualTo": "eq",
    "NotEqualTo": "ne",
    "Exists": "exists",
    "DoesNotExist": "not_exists",
    "In": "in",
    "NotIn": "not_in",
}
COMPARATORS_BACK = {native: mturk for mturk, native in COMPARATORS.items()}
GUARDS: dict[str, str] = {
    "Accept": "accept",
    "PreviewAndAccept": "preview",
    "DiscoverPreviewAndAccept": "discover",
}
GUARDS_BACK = {native: mturk for mturk, native in GUARDS.items()}
_SINGLE_VALUE = {"lt", "lte", "gt", "gte", "eq", "ne"}
_SET_VALUE = {"in", "not_in"}
_LOCALE_COMPARATORS = {"eq", "ne", "in", "not_in", "exists", "not_exists"}
SYSTEM_QUALIFICATION_TYPE_IDS = frozenset(
    {APPROVAL_RATE_TYPE_ID, APPROVED_COUNT_TYPE_ID, COUNTRY_TYPE_ID}
)
"""MTurk's system ids Worker_PercentAssignmentsApproved, Worker_NumberHITsApproved and
Worker_Locale are the native system types' ids (shared/eligibility.py): the same strings."""


def requirement_to_native(requirement: Mapping[str, Any], index: int) -> dict[str, Any]:
    """One QualificationRequirement as the project stores it (shared.eligibility's shape).

    Worker_Locale compares the worker's country (ISO 3166-1 alpha-2); a Subdivision cannot be
    checked natively (profiles hold no region) and is refused rather than ignored."""
    where = f"QualificationRequirements[{index}]"
    type_id = requirement["QualificationTypeId"]
    comparator = COMPARATORS[requirement["Comparator"]]
    integers = requirement.get("IntegerValues")
    locales = requirement.get("LocaleValues")
    if integers is not None and locales is not None:
        raise out_of_range(f"{where}: give IntegerValues or LocaleValues, not both.")
    if type_id == COUNTRY_TYPE_ID:
        if integers is not None:
            raise out_of_range(
                f"{where}: IntegerValue cannot be used with the Worker_Locale QualificationType ID."
            )
        if comparator not in _LOCALE_COMPARATORS:
            raise out_of_range(
                f"{where}: the Worker_Locale QualificationType compares with EqualTo, "
                "NotEqualTo, In, NotIn, Exists or DoesNotExist."
            )
        for locale in locales or []:
            if locale.get("Subdivision"):
                raise out_of_range(
                    f"{where}: LocaleValue Subdivision is not supported here: workers' "
                    "locales are countries only."
                )
        values: list[Any] = [str(locale["Country"]).upper() for locale in locales or []]
        limit = MAX_LOCALE_VALUES
    else:
        if locales is not None:
            raise out_of_range(
                f"{where}: LocaleValue can only be used with the Worker_Locale "
                "QualificationType ID."
            )
        values = list(integers or [])
        limit = MAX_INTEGER_VALUES
    if comparator in ("exists", "not_exists") and values:
        raise out_of_range(
            f"{where}: a value must not be present when the Comparator is "
            f"{requirement['Comparator']}."
        )
    if comparator in _SINGLE_VALUE and len(values) != 1:
        raise out_of_range(
            f"{where}: the Comparator {requirement['Comparator']} takes exactly one value."
        )
    if comparator in _SET_VALUE and not 1 <= len(values) <= limit:
        raise out_of_range(
            f"{where}: the Comparator {requirement['Comparator']} takes 1 to {limit} values."
        )
    actions = requirement.get("ActionsGuarded")
    required_to_preview = requirement.get("RequiredToPreview")
    if actions is not None and required_to_preview is not None:
        raise out_of_range(
            f"{where}: ActionsGuarded should not be used in combination with RequiredToPreview."
        )
    if actions is not None:
        guard = GUARDS[actions]
    else:
        guard = "preview" if required_to_preview else "accept"
    return {
        "qualification_type_id": type_id,
        "comparator": comparator,
        "values": values,
        "guard": guard,
    }


def requirements_to_native(requirements: Sequence[Mapping[str, Any]] | None) -> list[dict]:
    if not requirements:
        return []
    if len(requirements) > MAX_REQUIREMENTS:
        raise out_of_range(f"A HIT can have at most {MAX_REQUIREMENTS} QualificationRequirements.")
    return [requirement_to_native(r, i) for i, r in enumerate(requirements)]


def requirement_to_mturk(stored: Mapping[str, Any]) -> dict[str, Any]:
    comparator = stored["comparator"]
    out: dict[str, Any] = {
        "QualificationTypeId": stored["qualification_type_id"],
        "Comparator": COMPARATORS_BACK[comparator],
    }
    values = stored.get("values") or []
    if stored["qualification_type_id"] == COUNTRY_TYPE_ID:
        if values:
            out["LocaleValues"] = [{"Country": v} for v in values]
    elif values:
        out["IntegerValues"] = list(values)
    guard = stored.get("guard", "accept")
    out["RequiredToPreview"] = guard in ("preview", "discover")
    out["ActionsGuarded"] = GUARDS_BACK[guard]
    return out


# --------------------------------------------------------------------------- HIT types


@dataclass(frozen=True, slots=True)
class HitTypeProperties:
    """What makes two HIT types the same: the project columns they map to. Two calls with
    equal properties (after normalisation: keywords split and trimmed, amounts in cents,
    the default auto-approval delay filled in) get the same project."""

    title: str
    description: str
    keywords: tuple[str, ...]
    reward_cents: int
    assignment_duration_seconds: int
    auto_approve_seconds: int
    qualification_requirements: tuple[tuple[tuple[str, Any], ...], ...]
    assignments_per_task: int
    """1, or FEE_TIER_ASSIGNMENTS for HITs of 10+ assignments (the fee tier)."""

    def requirements(self) -> list[dict[str, Any]]:
        return [
            {k: (list(v) if isinstance(v, tuple) else v) for k, v in req}
            for req in self.qualification_requirements
        ]


def _text(params: Mapping[str, Any], name: str, limit: int) -> str:
    value = params[name].strip()
    if not value:
        raise out_of_range(f"{name} must not be empty.")
    if len(value) > limit:
        raise out_of_range(f"{name} must be at most {limit} characters long.")
    return value


def hit_type_properties(
    params: Mapping[str, Any], *, max_assignments: int | None = None
) -> HitTypeProperties:
    """CreateHITType's (or CreateHIT's) HIT type properties, validated and normalised."""
    reward = cents_from_amount(params["Reward"], "Reward")
    if reward < 1:
        raise out_of_range("Reward must be at least 0.01.")
    if reward > 10_000_000:
        raise out_of_range("Reward must be at most 100000.00.")
    auto_approve = (
        integer_in_range(params, "AutoApprovalDelayInSeconds", AUTO_APPROVAL_DELAY_RANGE)
        if params.get("AutoApprovalDelayInSeconds") is not None
        else DEFAULT_AUTO_APPROVAL_DELAY
    )
    requirements = requirements_to_native(params.get("QualificationRequirements"))
    return HitTypeProperties(
        title=_text(params, "Title", MAX_TITLE_CHARS),
        description=_text(params, "Description", MAX_DESCRIPTION_CHARS),
        keywords=tuple(keywords_to_native(params.get("Keywords"))),
        reward_cents=reward,
        assignment_duration_seconds=integer_in_range(
            params, "AssignmentDurationInSeconds", ASSIGNMENT_DURATION_RANGE
        ),
        auto_approve_seconds=auto_approve,
        qualification_requirements=tuple(
            tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in req.items())
            for req in requirements
        ),
        assignments_per_task=fee_tier(max_assignments or 1),
    )


def fee_tier(max_assignments: int) -> int:
    return FEE_TIER_ASSIGNMENTS if max_assignments >= FEE_TIER_ASSIGNMENTS else 1


# --------------------------------------------------------------------------- HITs

QUESTION_KEY = "question"
QUESTION_KIND_KEY = "question_type"


def question_of(task_input: Mapping[str, Any]) -> str | None:
    """The question XML a task carries (None for a task made natively without one)."""
    value = task_input.get(QUESTION_KEY)
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class AssignmentCounts:
    accepted: int = 0
    submitted: int = 0
    approved: int = 0
    rejected: int = 0


@dataclass(frozen=True, slots=True)
class HitView:
    """Everything a HIT is derived from: a task with its project's properties and its
    assignments' counts (the operation modules fill it from the native rows)."""

    task_id: str
    project_id: str
    project_status: str
    created_at: datetime
    title: str
    description: str
    keywords: Sequence[str]
    reward_cents: int
    assignment_duration_seconds: int
    auto_approve_seconds: int
    qualification_requirements: Sequence[Mapping[str, Any]]
    task_input: Mapping[str, Any]
    external_id: str | None
    task_status: str
    max_assignments: int
    open_slots: int
    expires_at: datetime | None
    disposed: bool
    counts: AssignmentCounts


def hit_is_live(hit: HitView, now: datetime) -> bool:
    """Still offered: not expired, not disposed, its project accepting work."""
    return (
        not hit.disposed
        and hit.task_status == "open"
        and hit.project_status == "published"
        and hit.expires_at is not None
        and hit.expires_at > now
    )


def hit_status(hit: HitView, now: datetime) -> str:
    """MTurk's HITStatus from the native state.

    Assignable: offered and a slot is open. Unassignable: not assignable, but a worker is
    still working on it (an accepted assignment), or its project is paused (or, for a task
    made natively, still a draft) with slots open: it may become assignable again.
    Reviewable: nothing is pending and nothing more will be accepted (every slot used,
    expired, or its project closed): its answers await (or had) review. Disposed: deleted
    (DeleteHIT). Reviewing is only ever set by UpdateHITReviewStatus, which the door does not
    serve.
    """
    if hit.disposed:
        return "Disposed"
    live = hit_is_live(hit, now)
    if live and hit.open_slots > 0:
        return "Assignable"
    if hit.counts.accepted > 0:
        return "Unassignable"
    if (
        hit.project_status in ("paused", "draft")
        and hit.task_status == "open"
        and hit.open_slots > 0
        and (hit.expires_at is None or hit.expires_at > now)
    ):
        return "Unassignable"
    return "Reviewable"


def hit_shape(hit: HitView, now: datetime) -> dict[str, Any]:
    """The model's `HIT` structure."""
    live = hit_is_live(hit, now)
    shape: dict[str, Any] = {
        "HITId": to_mturk(hit.task_id),
        "HITTypeId": to_mturk(hit.project_id),
        "HITGroupId": to_mturk(hit.project_id),
        "CreationTime": hit.created_at,
        "Title": hit.title,
        "Description": hit.description,
        "Keywords": keywords_to_mturk(hit.keywords),
        "HITStatus": hit_status(hit, now),
        "MaxAssignments": hit.max_assignments,
        "Reward": amount_from_cents(hit.reward_cents),
        "AutoApprovalDelayInSeconds": hit.auto_approve_seconds,
        "AssignmentDurationInSeconds": hit.assignment_duration_seconds,
        "QualificationRequirements": [
            requirement_to_mturk(r) for r in hit.qualification_requirements
        ],
        "HITReviewStatus": "NotReviewed",
        "NumberOfAssignmentsPending": hit.counts.accepted,
        "NumberOfAssignmentsAvailable": hit.open_slots if live else 0,
        "NumberOfAssignmentsCompleted": hit.counts.approved + hit.counts.rejected,
    }
    question = question_of(hit.task_input)
    if question is not None:
        shape["Question"] = question
    if hit.expires_at is not None:
        shape["Expiration"] = hit.expires_at
    if hit.external_id is not None:
        shape["RequesterAnnotation"] = hit.external_id
    return shape


# --------------------------------------------------------------------------- assignments

ASSIGNMENT_STATUSES: dict[str, str] = {
    "submitted": "Submitted",
    "approved": "Approved",
    "rejected": "Rejected",
}
"""The native statuses an MTurk client sees; accepted, returned and expired assignments are
not results (MTurk lists only Submitted, Approved and Rejected ones)."""
ASSIGNMENT_STATUSES_BACK = {mturk: native for native, mturk in ASSIGNMENT_STATUSES.items()}


@dataclass(frozen=True, slots=True)
class AssignmentView:
    id: str
    task_id: str
    worker_id: str
    status: str
    answer_xml: str | None
    feedback: str | None
    accepted_at: datetime
    deadline: datetime
    submitted_at: datetime | None
    reviewed_at: datetime | None
    auto_approve_at: datetime | None


def assignment_shape(view: AssignmentView) -> dict[str, Any]:
    """The model's `Assignment` structure (only for submitted, approved, rejected)."""
    shape: dict[str, Any] = {
        "AssignmentId": to_mturk(view.id),
        "WorkerId": worker_id_to_mturk(view.worker_id),
        "HITId": to_mturk(view.task_id),
        "AssignmentStatus": ASSIGNMENT_STATUSES[view.status],
        "AcceptTime": view.accepted_at,
        "Deadline": view.deadline,
    }
    if view.submitted_at is not None:
        shape["SubmitTime"] = view.submitted_at
        if view.auto_approve_at is not None:
            shape["AutoApprovalTime"] = view.auto_approve_at
    if view.status == "approved" and view.reviewed_at is not None:
        shape["ApprovalTime"] = view.reviewed_at
    if view.status == "rejected" and view.reviewed_at is not None:
        shape["RejectionTime"] = view.reviewed_at
    if view.answer_xml is not None:
        shape["Answer"] = view.answer_xml
    if view.feedback is not None:
        shape["RequesterFeedback"] = view.feedback
    return shape
