"""The MTurk <-> native mapping's pure rules (services/tasks/mturk/mapping.py): money, keywords,
qualification requirements, HIT type identity, and the statuses derived from native states."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.tasks.mturk import mapping
from services.tasks.mturk.errors import MTurkRequestError
from services.tasks.mturk.mapping import AssignmentCounts, AssignmentView, HitView

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "cents"),
    [("0.25", 25), ("5", 500), ("5.", 500), ("5.5", 550), ("101.42", 10142), ("0", 0)],
)
def test_amounts_parse_as_mturk_writes_them(text: str, cents: int) -> None:
    assert mapping.cents_from_amount(text, "Reward") == cents


@pytest.mark.parametrize("text", ["", ".5", "1.234", "-1", "1e3", "1,00", " 1"])
def test_amounts_refused(text: str) -> None:
    with pytest.raises(MTurkRequestError) as err:
        mapping.cents_from_amount(text, "Reward")
    assert err.value.turk_error_code == "AWS.ParameterOutOfRange"


@pytest.mark.parametrize(("cents", "text"), [(0, "0.00"), (5, "0.05"), (1250, "12.50")])
def test_amounts_render_with_two_decimals(cents: int, text: str) -> None:
    assert mapping.amount_from_cents(cents) == text


def test_keywords_split_trim_and_dedupe() -> None:
    assert mapping.keywords_to_native(" image, label ,,image,cats ") == ["image", "label", "cats"]
    assert mapping.keywords_to_mturk(["image", "label"]) == "image, label"
    assert mapping.keywords_to_native(None) == []
    with pytest.raises(MTurkRequestError, match="at most 20 keywords"):
        mapping.keywords_to_native(",".join(f"k{i}" for i in range(21)))
    with pytest.raises(MTurkRequestError, match="at most 50 characters"):
        mapping.keywords_to_native("x" * 51)


LOCALE = "00000000000000000071"
APPROVAL_RATE = "000000000000000000L0"


def test_requirements_map_both_ways() -> None:
    sent = [
        {
            "QualificationTypeId": LOCALE,
            "Comparator": "In",
            "LocaleValues": [{"Country": "US"}, {"Country": "ca"}],
            "ActionsGuarded": "DiscoverPreviewAndAccept",
        },
        {
            "QualificationTypeId": APPROVAL_RATE,
            "Comparator": "GreaterThanOrEqualTo",
            "IntegerValues": [95],
        },
        {"QualificationTypeId": "3ABC", "Comparator": "Exists", "RequiredToPreview": True},
    ]
    native = mapping.requirements_to_native(sent)
    assert native == [
        {
            "qualification_type_id": LOCALE,
            "comparator": "in",
            "values": ["US", "CA"],
            "guard": "discover",
        },
        {
            "qualification_type_id": APPROVAL_RATE,
            "comparator": "gte",
            "values": [95],
            "guard": "accept",
        },
        {"qualification_type_id": "3ABC", "comparator": "exists", "values": [], "guard": "preview"},
    ]
    back = [mapping.requirement_to_mturk(r) for r in native]
    assert back[0] == {
        "QualificationTypeId": LOCALE,
        "Comparator": "In",
        "LocaleValues": [{"Country": "US"}, {"Country": "CA"}],
        "RequiredToPreview": True,
        "ActionsGuarded": "DiscoverPreviewAndAccept",
    }
    assert back[1]["IntegerValues"] == [95] and back[1]["ActionsGuarded"] == "Accept"
    assert back[2]["RequiredToPreview"] is True and "IntegerValues" not in back[2]


@pytest.mark.parametrize(
    ("requirement", "message"),
    [
        (
            {"QualificationTypeId": LOCALE, "Comparator": "EqualTo", "IntegerValues": [1]},
            "IntegerValue cannot be used with the Worker_Locale",
        ),
        (
            {
                "QualificationTypeId": LOCALE,
                "Comparator": "EqualTo",
                "LocaleValues": [{"Country": "US", "Subdivision": "WA"}],
            },
            "Subdivision is not supported",
        ),
        (
            {"QualificationTypeId": LOCALE, "Comparator": "GreaterThan", "LocaleValues": []},
            "Worker_Locale QualificationType compares with",
        ),
        (
            {"QualificationTypeId": "3ABC", "Comparator": "EqualTo", "IntegerValues": [1, 2]},
            "takes exactly one value",
        ),
        (
            {"QualificationTypeId": "3ABC", "Comparator": "Exists", "IntegerValues": [1]},
            "must not be present",
        ),
        (
            {"QualificationTypeId": "3ABC", "Comparator": "In", "IntegerValues": list(range(16))},
            "takes 1 to 15 values",
        ),
        (
            {
                "QualificationTypeId": "3ABC",
                "Comparator": "Exists",
                "RequiredToPreview": True,
                "ActionsGuarded": "Accept",
            },
            "should not be used in combination",
        ),
    ],
)
def test_requirements_refused_as_mturk_does(requirement: dict, message: str) -> None:
    with pytest.raises(MTurkRequestError, match=message):
        mapping.requirements_to_native([requirement])


def _params(**overrides: object) -> dict:
    return {
        "Title": "Label cats",
        "Description": "Say what the picture shows",
        "Reward": "0.50",
        "AssignmentDurationInSeconds": 600,
        **overrides,
    }


def test_hit_type_properties_normalise_so_equal_types_compare_equal() -> None:
    one = mapping.hit_type_properties(_params(Keywords="cats, images", Reward="0.5"))
    two = mapping.hit_type_properties(_params(Keywords="cats,images ", Reward="0.50"))
    assert one == two
    assert one.auto_approve_seconds == mapping.DEFAULT_AUTO_APPROVAL_DELAY
    assert one.assignments_per_task == 1
    assert mapping.hit_type_properties(_params(), max_assignments=10).assignments_per_task == 10
    assert mapping.hit_type_properties(_params(Reward="0.51")) != one


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"AssignmentDurationInSeconds": 86_401}, "Valid values range from 30 to 86400"),
        ({"AssignmentDurationInSeconds": 29}, "Valid values range from 30 to 86400"),
        ({"AutoApprovalDelayInSeconds": 2_592_001}, "AutoApprovalDelayInSeconds"),
        ({"Reward": "0.00"}, "at least 0.01"),
        ({"Title": "   "}, "Title must not be empty"),
        ({"Title": "x" * 129}, "at most 128"),
    ],
)
def test_hit_type_properties_refused(overrides: dict, message: str) -> None:
    with pytest.raises(MTurkRequestError, match=message):
        mapping.hit_type_properties(_params(**overrides))


def _hit(**overrides: object) -> HitView:
    values: dict = {
        "task_id": "01TASK",
        "project_id": "01PROJECT",
        "project_status": "published",
        "created_at": NOW - timedelta(hours=1),
        "title": "t",
        "description": "d",
        "keywords": ["a", "b"],
        "reward_cents": 50,
        "assignment_duration_seconds": 600,
        "auto_approve_seconds": 3600,
        "qualification_requirements": [],
        "task_input": {"question": "<q/>", "question_type": "HTMLQuestion"},
        "external_id": None,
        "task_status": "open",
        "max_assignments": 3,
        "open_slots": 2,
        "expires_at": NOW + timedelta(hours=1),
        "disposed": False,
        "counts": AssignmentCounts(accepted=1),
    }
    values.update(overrides)
    return HitView(**values)


@pytest.mark.parametrize(
    ("overrides", "status"),
    [
        ({}, "Assignable"),
        ({"open_slots": 0}, "Unassignable"),
        ({"open_slots": 0, "counts": AssignmentCounts(submitted=3)}, "Reviewable"),
        ({"expires_at": NOW, "counts": AssignmentCounts()}, "Reviewable"),
        ({"expires_at": NOW - timedelta(seconds=1)}, "Unassignable"),
        ({"task_status": "expired", "counts": AssignmentCounts(approved=1)}, "Reviewable"),
        ({"project_status": "paused", "counts": AssignmentCounts()}, "Unassignable"),
        ({"project_status": "closed", "counts": AssignmentCounts()}, "Reviewable"),
        (
            {"project_status": "draft", "expires_at": None, "counts": AssignmentCounts()},
            "Unassignable",
        ),
        (
            {"project_status": "paused", "expires_at": NOW, "counts": AssignmentCounts()},
            "Reviewable",
        ),
        ({"disposed": True}, "Disposed"),
    ],
)
def test_hit_status_from_native_state(overrides: dict, status: str) -> None:
    assert mapping.hit_status(_hit(**overrides), NOW) == status


def test_hit_shape_counts_and_fields() -> None:
    shape = mapping.hit_shape(
        _hit(
            counts=AssignmentCounts(accepted=1, submitted=1, approved=2, rejected=1),
            external_id="batch-7",
        ),
        NOW,
    )
    assert shape["HITId"] == "01TASK" and shape["HITTypeId"] == "01PROJECT"
    assert shape["Reward"] == "0.50" and shape["Keywords"] == "a, b"
    assert shape["NumberOfAssignmentsPending"] == 1
    assert shape["NumberOfAssignmentsAvailable"] == 2
    assert shape["NumberOfAssignmentsCompleted"] == 3
    assert shape["RequesterAnnotation"] == "batch-7"
    assert shape["Question"] == "<q/>"
    expired = mapping.hit_shape(_hit(expires_at=NOW), NOW)
    assert expired["NumberOfAssignmentsAvailable"] == 0


def test_assignment_shape_by_status() -> None:
    base = {
        "id": "01ASSIGN",
        "task_id": "01TASK",
        "worker_id": "01WORKER",
        "answer_xml": "<x/>",
        "feedback": None,
        "accepted_at": NOW - timedelta(minutes=5),
        "deadline": NOW + timedelta(minutes=5),
        "submitted_at": NOW - timedelta(minutes=1),
        "reviewed_at": NOW,
        "auto_approve_at": NOW + timedelta(days=1),
    }
    submitted = mapping.assignment_shape(AssignmentView(status="submitted", **base))
    assert submitted["WorkerId"] == "A01WORKER"
    assert submitted["AssignmentStatus"] == "Submitted"
    assert "ApprovalTime" not in submitted and "RejectionTime" not in submitted
    rejected = mapping.assignment_shape(
        AssignmentView(status="rejected", **{**base, "feedback": "blurry"})
    )
    assert rejected["RejectionTime"] == NOW and rejected["RequesterFeedback"] == "blurry"
    approved = mapping.assignment_shape(AssignmentView(status="approved", **base))
    assert approved["ApprovalTime"] == NOW and "RejectionTime" not in approved
