"""Whole requester flows through boto3 against the running services: balance, HIT types and
HITs, a native worker accepting (in the project = HITTypeId) and submitting, assignments read
and parsed, approve, reject, override, bonuses, blocks, the paginators, and the errors clients
match on (services/tasks/mturk/operations/{hits,assignments,account,blocks}.py)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from xml.dom import minidom

import asyncpg
import httpx
import pytest
import xmltodict

from tests.conftest import LiveServices
from tests.services.tasks.mturk.conftest import MTurkRequester, NativeWorker
from tests.services.tasks.mturk.question_samples import HTML_QUESTION, QUESTION_FORM
from tests.services.tasks.mturk.test_door_idempotency_and_pages import post, signed

LOCALE = "00000000000000000071"
APPROVAL_RATE = "000000000000000000L0"
ANSWERS_NS = (
    "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/"
    "QuestionFormAnswers.xsd"
)

pytestmark = pytest.mark.usefixtures("live_services")


def hit_params(**overrides: Any) -> dict[str, Any]:
    return {
        "Title": f"Label pictures {uuid.uuid4().hex[:6]}",
        "Description": "Type what the picture shows.",
        "Keywords": "images, labels",
        "Reward": "0.50",
        "AssignmentDurationInSeconds": 600,
        "LifetimeInSeconds": 3600,
        "AutoApprovalDelayInSeconds": 86_400,
        "MaxAssignments": 1,
        "Question": HTML_QUESTION,
        **overrides,
    }


def balance(mturk: Any) -> tuple[Decimal, Decimal]:
    b = mturk.get_account_balance()
    return Decimal(b["AvailableBalance"]), Decimal(b["OnHoldBalance"])


def error_of(excinfo: pytest.ExceptionInfo[Any]) -> tuple[str, str, str]:
    err = excinfo.value.response["Error"]
    return err["Code"], err["Message"], excinfo.value.response.get("TurkErrorCode", "")


def worker_available(live_http: httpx.Client, worker: NativeWorker, payments_url: str) -> Decimal:
    resp = live_http.get(f"{payments_url}/v1/balance", headers=worker.headers)
    assert resp.status_code == 200, resp.text
    return Decimal(resp.json()["available"])


def wait_for_worker_available(
    live_http: httpx.Client, worker: NativeWorker, payments_url: str, expected: Decimal
) -> None:
    """Approval payouts leave through the tasks service's outbox just after the approval."""
    deadline = time.monotonic() + 15
    while True:
        got = worker_available(live_http, worker, payments_url)
        if got == expected or time.monotonic() > deadline:
            assert got == expected
            return
        time.sleep(0.1)


def work(worker: NativeWorker, hit_type_id: str, fields: dict[str, Any]) -> str:
    accepted = worker.accept(hit_type_id)
    worker.submit(accepted["assignment_id"], {"fields": fields})
    return accepted["assignment_id"]


def test_create_hit_with_requirements_then_native_work_review_and_money(
    mturk: Any,
    mturk_requester: MTurkRequester,
    new_native_worker: Callable[..., NativeWorker],
    live_http: httpx.Client,
    live_services: LiveServices,
) -> None:
    payments_url = live_services.urls["payments"]
    assert balance(mturk) == (Decimal("1000.00"), Decimal("0.00"))

    before = datetime.now(UTC)
    hit = mturk.create_hit(
        **hit_params(
            MaxAssignments=3,
            RequesterAnnotation="batch-7",
            QualificationRequirements=[
                {
                    "QualificationTypeId": LOCALE,
                    "Comparator": "In",
                    "LocaleValues": [{"Country": "US"}, {"Country": "CA"}],
                    "ActionsGuarded": "DiscoverPreviewAndAccept",
                },
                {
                    "QualificationTypeId": APPROVAL_RATE,
                    "Comparator": "GreaterThanOrEqualTo",
                    "IntegerValues": [90],
                },
            ],
        )
    )["HIT"]
    # 3 slots x (0.50 + 20% fee) held from the available balance: the native upload's money.
    assert balance(mturk) == (Decimal("998.20"), Decimal("1.80"))
    assert hit["HITStatus"] == "Assignable"
    assert (hit["MaxAssignments"], hit["Reward"], hit["Keywords"]) == (3, "0.50", "images, labels")
    assert hit["Question"] == HTML_QUESTION and hit["RequesterAnnotation"] == "batch-7"
    assert hit["HITGroupId"] == hit["HITTypeId"]
    assert hit["NumberOfAssignmentsAvailable"] == 3
    assert before + timedelta(seconds=3590) < hit["Expiration"] < before + timedelta(seconds=3700)
    assert hit["QualificationRequirements"][0]["LocaleValues"] == [
        {"Country": "US"},
        {"Country": "CA"},
    ]
    assert hit["QualificationRequirements"][0]["ActionsGuarded"] == "DiscoverPreviewAndAccept"
    assert hit["QualificationRequirements"][1]["IntegerValues"] == [90]

    # The locale requirement keeps a worker from France out; one from the US works natively
    # in the project whose id is the HITTypeId.
    french = new_native_worker(country="FR")
    refused = french.http.post(
        f"{french.tasks_url}/v1/work/projects/{hit['HITTypeId']}/accept", headers=french.headers
    )
    assert refused.status_code in (403, 404), refused.text
    worker = new_native_worker(country="US")
    accepted = worker.accept(hit["HITTypeId"])
    assert accepted["task_id"] == hit["HITId"]
    pending = mturk.get_hit(HITId=hit["HITId"])["HIT"]
    assert (pending["NumberOfAssignmentsPending"], pending["NumberOfAssignmentsAvailable"]) == (
        1,
        2,
    )
    worker.submit(accepted["assignment_id"], {"fields": {"label": "a cat", "tags": ["a", "b"]}})

    listed = mturk.list_assignments_for_hit(HITId=hit["HITId"])
    assert listed["NumResults"] == 1 and "NextToken" not in listed
    assignment = listed["Assignments"][0]
    assert assignment["AssignmentId"] == accepted["assignment_id"]
    assert assignment["WorkerId"] == worker.mturk_worker_id
    assert assignment["AssignmentStatus"] == "Submitted"
    assert assignment["Answer"].startswith('<?xml version="1.0" encoding="ASCII"?>')
    answers = xmltodict.parse(assignment["Answer"])["QuestionFormAnswers"]
    assert answers["@xmlns"] == ANSWERS_NS
    by_id = {a["QuestionIdentifier"]: a["FreeText"] for a in answers["Answer"]}
    assert by_id == {"label": "a cat", "tags": "a|b"}

    mturk.approve_assignment(AssignmentId=assignment["AssignmentId"], RequesterFeedback="Thanks")
    got = mturk.get_assignment(AssignmentId=assignment["AssignmentId"])
    assert got["Assignment"]["AssignmentStatus"] == "Approved"
    assert got["Assignment"]["RequesterFeedback"] == "Thanks"
    assert "ApprovalTime" in got["Assignment"]
    assert got["HIT"]["HITId"] == hit["HITId"]
    assert got["HIT"]["NumberOfAssignmentsCompleted"] == 1
    wait_for_worker_available(live_http, worker, payments_url, Decimal("0.50"))
    assert balance(mturk) == (Decimal("998.20"), Decimal("1.20"))

    # Approving an approved assignment is MTurk's error (natively it answers the assignment).
    with pytest.raises(mturk.exceptions.RequestError) as again:
        mturk.approve_assignment(AssignmentId=assignment["AssignmentId"])
    code, message, turk_code = error_of(again)
    assert code == "RequestError"
    assert message.startswith("This operation can be called with a status of: Submitted")
    assert turk_code == "AWS.MechanicalTurk.InvalidAssignmentState"
    with pytest.raises(mturk.exceptions.RequestError) as late_reject:
        mturk.reject_assignment(AssignmentId=assignment["AssignmentId"], RequesterFeedback="no")
    assert error_of(late_reject)[1].startswith("This operation can be called with a status of")


def test_reject_then_override_rejection_pays_from_available(
    mturk: Any,
    new_native_worker: Callable[..., NativeWorker],
    live_http: httpx.Client,
    live_services: LiveServices,
) -> None:
    hit = mturk.create_hit(**hit_params(Reward="1.00"))["HIT"]
    worker = new_native_worker(country="US")
    assignment_id = work(worker, hit["HITTypeId"], {"label": "dog"})

    mturk.reject_assignment(AssignmentId=assignment_id, RequesterFeedback="Not a dog.")
    rejected = mturk.get_assignment(AssignmentId=assignment_id)["Assignment"]
    assert rejected["AssignmentStatus"] == "Rejected"
    assert rejected["RequesterFeedback"] == "Not a dog."
    assert "RejectionTime" in rejected
    # The rejected slot reopens natively (its money stays held for another worker).
    reopened = mturk.get_hit(HITId=hit["HITId"])["HIT"]
    assert reopened["HITStatus"] == "Assignable" and reopened["NumberOfAssignmentsCompleted"] == 1
    assert [
        a["AssignmentStatus"]
        for a in mturk.list_assignments_for_hit(
            HITId=hit["HITId"], AssignmentStatuses=["Rejected"]
        )["Assignments"]
    ] == ["Rejected"]
    assert (
        mturk.list_assignments_for_hit(HITId=hit["HITId"], AssignmentStatuses=["Approved"])[
            "NumResults"
        ]
        == 0
    )

    for call in (
        lambda: mturk.reject_assignment(AssignmentId=assignment_id, RequesterFeedback="again"),
        lambda: mturk.approve_assignment(AssignmentId=assignment_id),
    ):
        with pytest.raises(mturk.exceptions.RequestError) as refused:
            call()
        assert error_of(refused)[1].startswith(
            "This operation can be called with a status of: Submitted"
        )

    available_before, held_before = balance(mturk)
    mturk.approve_assignment(
        AssignmentId=assignment_id, OverrideRejection=True, RequesterFeedback="Sorry, it is."
    )
    approved = mturk.get_assignment(AssignmentId=assignment_id)["Assignment"]
    assert approved["AssignmentStatus"] == "Approved"
    assert approved["RequesterFeedback"] == "Sorry, it is."
    # Paid now from the available balance (reward + 20% fee); the hold is untouched.
    assert balance(mturk) == (available_before - Decimal("1.20"), held_before)
    assert worker_available(live_http, worker, live_services.urls["payments"]) == Decimal("1.00")
    with pytest.raises(mturk.exceptions.RequestError) as twice:
        mturk.approve_assignment(AssignmentId=assignment_id, OverrideRejection=True)
    assert error_of(twice)[1].startswith(
        "This operation can be called with a status of: Submitted,Rejected"
    )


def test_bonus_with_and_without_unique_request_token(
    mturk: Any,
    new_native_worker: Callable[..., NativeWorker],
    live_http: httpx.Client,
    live_services: LiveServices,
) -> None:
    hit = mturk.create_hit(**hit_params())["HIT"]
    worker = new_native_worker(country="US")
    assignment_id = work(worker, hit["HITTypeId"], {"label": "x"})
    available, _ = balance(mturk)

    def bonus(**extra: Any) -> None:
        mturk.send_bonus(
            WorkerId=worker.mturk_worker_id,
            AssignmentId=assignment_id,
            BonusAmount="1.00",
            Reason="Great work",
            **extra,
        )

    # Without a token every call is a bonus (as on MTurk): 1.00 + 0.20 fee each.
    bonus()
    bonus()
    assert balance(mturk)[0] == available - Decimal("2.40")
    # With a token: exactly once; the second use is MTurk's duplicate-request error.
    bonus(UniqueRequestToken="bonus-token-1")
    with pytest.raises(mturk.exceptions.RequestError) as duplicate:
        bonus(UniqueRequestToken="bonus-token-1")
    _, message, turk_code = error_of(duplicate)
    assert turk_code == "AWS.MechanicalTurk.DuplicateRequest"
    assert "bonus-token-1" in message
    assert balance(mturk)[0] == available - Decimal("3.60")
    assert worker_available(live_http, worker, live_services.urls["payments"]) == Decimal("3.00")

    with pytest.raises(mturk.exceptions.RequestError) as wrong_worker:
        mturk.send_bonus(
            WorkerId="A" + new_native_worker().id,
            AssignmentId=assignment_id,
            BonusAmount="1.00",
            Reason="x",
        )
    assert "did not work on assignment" in error_of(wrong_worker)[1]
    with pytest.raises(mturk.exceptions.RequestError) as missing:
        mturk.send_bonus(
            WorkerId=worker.mturk_worker_id,
            AssignmentId="0NOSUCHASSIGNMENT",
            BonusAmount="1.00",
            Reason="x",
        )
    assert error_of(missing)[1:] == (
        "Assignment 0NOSUCHASSIGNMENT does not exist.",
        "AWS.MechanicalTurk.AssignmentDoesNotExist",
    )
    with pytest.raises(mturk.exceptions.RequestError) as too_much:
        mturk.send_bonus(
            WorkerId=worker.mturk_worker_id,
            AssignmentId=assignment_id,
            BonusAmount="99999.00",
            Reason="x",
        )
    assert error_of(too_much)[2] == "AWS.MechanicalTurk.InsufficientFunds"
    assert balance(mturk)[0] == available - Decimal("3.60")


def test_identical_properties_give_the_same_hit_type(mturk: Any) -> None:
    props = {
        "Title": "Transcribe receipts",
        "Description": "Type the total.",
        "Reward": "0.25",
        "AssignmentDurationInSeconds": 300,
        "Keywords": "receipts, ocr",
        "QualificationRequirements": [
            {
                "QualificationTypeId": LOCALE,
                "Comparator": "EqualTo",
                "LocaleValues": [{"Country": "US"}],
            }
        ],
    }
    first = mturk.create_hit_type(**props)["HITTypeId"]
    assert mturk.create_hit_type(**{**props, "Keywords": "receipts,ocr"})["HITTypeId"] == first
    assert mturk.create_hit_type(**{**props, "Reward": "0.26"})["HITTypeId"] != first
    assert mturk.create_hit_type(**{**props, "QualificationRequirements": []})["HITTypeId"] != first
    # CreateHIT with the same properties lands in the same HIT type; 10+ assignments is the
    # higher fee tier, so another type.
    hit = mturk.create_hit(**props, LifetimeInSeconds=600, Question=HTML_QUESTION)["HIT"]
    assert hit["HITTypeId"] == first
    big = mturk.create_hit(
        **props, LifetimeInSeconds=600, Question=HTML_QUESTION, MaxAssignments=10
    )["HIT"]
    assert big["HITTypeId"] != first
    typed = mturk.create_hit_with_hit_type(
        HITTypeId=first, LifetimeInSeconds=120, MaxAssignments=2, Question=HTML_QUESTION
    )["HIT"]
    assert typed["HITTypeId"] == first and typed["MaxAssignments"] == 2
    assert typed["Title"] == "Transcribe receipts" and typed["Reward"] == "0.25"
    assert typed["AutoApprovalDelayInSeconds"] == 2_592_000  # MTurk's default: 30 days
    with pytest.raises(mturk.exceptions.RequestError) as unknown:
        mturk.create_hit_with_hit_type(
            HITTypeId="0NOSUCHTYPE", LifetimeInSeconds=120, Question=HTML_QUESTION
        )
    assert error_of(unknown)[1] == "Hit type 0NOSUCHTYPE does not exist."


def test_hit_unique_request_token(mturk: Any) -> None:
    first = mturk.create_hit(**hit_params(UniqueRequestToken="hit-token-1"))["HIT"]
    available, held = balance(mturk)
    with pytest.raises(mturk.exceptions.RequestError) as duplicate:
        mturk.create_hit(**hit_params(UniqueRequestToken="hit-token-1"))
    _, message, turk_code = error_of(duplicate)
    assert turk_code == "AWS.MechanicalTurk.DuplicateRequest"
    assert first["HITId"] in message
    assert balance(mturk) == (available, held)
    assert mturk.list_hits()["NumResults"] == 1


def test_paginators_walk_hits_and_assignments_over_pages(
    mturk: Any, new_native_worker: Callable[..., NativeWorker]
) -> None:
    hit_type = mturk.create_hit_type(
        Title="Paged", Description="Pages", Reward="0.05", AssignmentDurationInSeconds=300
    )["HITTypeId"]
    created = [
        mturk.create_hit_with_hit_type(
            HITTypeId=hit_type, LifetimeInSeconds=600, Question=HTML_QUESTION, MaxAssignments=7
        )["HIT"]["HITId"]
        for _ in range(7)
    ]
    pages = list(mturk.get_paginator("list_hits").paginate(PaginationConfig={"PageSize": 3}))
    assert [p["NumResults"] for p in pages] == [3, 3, 1]
    assert "NextToken" not in pages[-1]
    assert [h["HITId"] for p in pages for h in p["HITs"]] == sorted(created, reverse=True)

    # One HIT of its own type (a unique title) takes 7 answers: ListAssignmentsForHIT's pages.
    hit = mturk.create_hit(**hit_params(MaxAssignments=7))["HIT"]
    submitted = [work(new_native_worker(), hit["HITTypeId"], {"n": str(i)}) for i in range(7)]
    pages = list(
        mturk.get_paginator("list_assignments_for_hit").paginate(
            HITId=hit["HITId"], PaginationConfig={"PageSize": 3}
        )
    )
    assert [p["NumResults"] for p in pages] == [3, 3, 1]
    assert [a["AssignmentId"] for p in pages for a in p["Assignments"]] == sorted(submitted)
    assert {a["AssignmentStatus"] for p in pages for a in p["Assignments"]} == {"Submitted"}
    assert mturk.get_hit(HITId=hit["HITId"])["HIT"]["HITStatus"] == "Reviewable"

    with pytest.raises(mturk.exceptions.RequestError) as forged:
        mturk.list_hits(NextToken="not-a-token", MaxResults=3)
    assert error_of(forged)[2] == "AWS.ParameterOutOfRange"


def test_worker_blocks_keep_a_worker_out_and_paginate(
    mturk: Any, new_native_worker: Callable[..., NativeWorker]
) -> None:
    hit = mturk.create_hit(**hit_params())["HIT"]
    workers = [new_native_worker() for _ in range(5)]
    for w in workers:
        mturk.create_worker_block(WorkerId=w.mturk_worker_id, Reason=f"spam {w.id}")
    blocked = workers[0]
    refused = blocked.http.post(
        f"{blocked.tasks_url}/v1/work/projects/{hit['HITTypeId']}/accept", headers=blocked.headers
    )
    assert refused.status_code in (403, 404), refused.text

    pages = list(
        mturk.get_paginator("list_worker_blocks").paginate(PaginationConfig={"PageSize": 2})
    )
    assert [p["NumResults"] for p in pages] == [2, 2, 1]
    listed = {b["WorkerId"]: b["Reason"] for p in pages for b in p["WorkerBlocks"]}
    assert listed == {w.mturk_worker_id: f"spam {w.id}" for w in workers}

    mturk.delete_worker_block(WorkerId=blocked.mturk_worker_id, Reason="appealed")
    mturk.delete_worker_block(WorkerId=blocked.mturk_worker_id)  # not blocked: still fine
    assert blocked.mturk_worker_id not in {
        b["WorkerId"] for b in mturk.list_worker_blocks(MaxResults=100)["WorkerBlocks"]
    }
    blocked.accept(hit["HITTypeId"])

    with pytest.raises(mturk.exceptions.RequestError) as unknown:
        mturk.create_worker_block(WorkerId="A0NOSUCHWORKER", Reason="x")
    assert error_of(unknown)[1] == "Worker A0NOSUCHWORKER does not exist."
    with pytest.raises(mturk.exceptions.RequestError) as malformed:
        mturk.create_worker_block(WorkerId="W123", Reason="x")
    assert error_of(malformed)[2] == "AWS.ParameterOutOfRange"


def test_errors_clients_match_on(
    new_mturk_requester: Callable[..., MTurkRequester], mturk: Any
) -> None:
    with pytest.raises(mturk.exceptions.RequestError) as missing:
        mturk.get_hit(HITId="0NOSUCHHIT")
    assert error_of(missing) == (
        "RequestError",
        "HIT 0NOSUCHHIT does not exist.",
        "AWS.MechanicalTurk.HITDoesNotExist",
    )
    with pytest.raises(mturk.exceptions.RequestError) as no_assignment:
        mturk.get_assignment(AssignmentId="0NOSUCH")
    assert error_of(no_assignment)[2] == "AWS.MechanicalTurk.AssignmentDoesNotExist"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"AssignmentDurationInSeconds": 100_000}, "Valid values range from 30 to 86400"),
        ({"LifetimeInSeconds": 10}, "Valid values range from 30 to 31536000"),
        ({"MaxAssignments": 101}, "Valid values range from 1 to 100"),
        ({"HITLayoutId": "ABC"}, "HITLayoutId is not supported"),
        ({"Question": "<HTMLQuestion>"}, "There was an error parsing the XML question"),
        (
            {
                "QualificationRequirements": [
                    {
                        "QualificationTypeId": LOCALE,
                        "Comparator": "EqualTo",
                        "LocaleValues": [{"Country": "US", "Subdivision": "WA"}],
                    }
                ]
            },
            "Subdivision is not supported",
        ),
        (
            {
                "QualificationRequirements": [
                    {"QualificationTypeId": "3NOSUCHTYPE", "Comparator": "Exists"}
                ]
            },
            "QualificationType 3NOSUCHTYPE does not exist.",
        ),
    ]
    for overrides, message in cases:
        with pytest.raises(mturk.exceptions.RequestError) as bad:
            mturk.create_hit(**hit_params(**overrides))
        assert message in error_of(bad)[1], (overrides, error_of(bad))
    assert mturk.list_hits()["NumResults"] == 0  # nothing was created by any of them

    poor = new_mturk_requester(funds="0").client
    with pytest.raises(poor.exceptions.RequestError) as broke:
        poor.create_hit(**hit_params())
    assert error_of(broke)[1:] == (
        "This Requester has insufficient funds in their account to complete this transaction. "
        "Please visit https://requester.mturk.com/account to purchase more prepaid HITs.",
        "AWS.MechanicalTurk.InsufficientFunds",
    )
    assert poor.list_hits()["NumResults"] == 0
    assert balance(poor) == (Decimal("0.00"), Decimal("0.00"))


def test_concurrent_identical_hit_types_are_one(mturk_requester: MTurkRequester) -> None:
    """Requests racing to register one HIT type get one HITTypeId (an advisory lock on the
    requester and the properties orders them: the later finds the earlier's project)."""
    clients = [mturk_requester.client_with() for _ in range(6)]
    props = {
        "Title": "Race",
        "Description": "Same properties at once",
        "Reward": "0.10",
        "AssignmentDurationInSeconds": 120,
    }
    with ThreadPoolExecutor(max_workers=6) as pool:
        ids = list(pool.map(lambda c: c.create_hit_type(**props)["HITTypeId"], clients))
    assert len(set(ids)) == 1


def test_someone_elses_and_unfinished_objects(
    mturk: Any,
    new_mturk_requester: Callable[..., MTurkRequester],
    new_native_worker: Callable[..., NativeWorker],
) -> None:
    """Another requester's HIT type, HIT and assignments do not exist for a requester; an
    assignment still being worked on is not a result yet."""
    hit = mturk.create_hit(**hit_params(MaxAssignments=2))["HIT"]
    worker = new_native_worker()
    done = work(worker, hit["HITTypeId"], {"label": "x"})
    holder = new_native_worker()
    in_progress = holder.accept(hit["HITTypeId"])["assignment_id"]

    with pytest.raises(mturk.exceptions.RequestError) as unfinished:
        mturk.get_assignment(AssignmentId=in_progress)
    assert error_of(unfinished)[1:] == (
        "This operation can be called with a status of: Reviewable,Approved,Rejected",
        "AWS.MechanicalTurk.InvalidAssignmentState",
    )
    for call in (
        lambda: mturk.approve_assignment(AssignmentId=in_progress),
        lambda: mturk.reject_assignment(AssignmentId=in_progress, RequesterFeedback="no"),
        lambda: mturk.send_bonus(
            WorkerId=holder.mturk_worker_id,
            AssignmentId=in_progress,
            BonusAmount="0.10",
            Reason="early",
        ),
    ):
        with pytest.raises(mturk.exceptions.RequestError) as refused:
            call()
        assert error_of(refused)[2] == "AWS.MechanicalTurk.InvalidAssignmentState"
    listed = mturk.list_assignments_for_hit(HITId=hit["HITId"])["Assignments"]
    assert [a["AssignmentId"] for a in listed] == [done]

    other = new_mturk_requester().client
    assert other.list_hits()["NumResults"] == 0
    for call, message in (
        (lambda: other.get_hit(HITId=hit["HITId"]), f"HIT {hit['HITId']} does not exist."),
        (
            lambda: other.list_assignments_for_hit(HITId=hit["HITId"]),
            f"HIT {hit['HITId']} does not exist.",
        ),
        (
            lambda: other.get_assignment(AssignmentId=done),
            f"Assignment {done} does not exist.",
        ),
        (
            lambda: other.approve_assignment(AssignmentId=done),
            f"Assignment {done} does not exist.",
        ),
        (
            lambda: other.reject_assignment(AssignmentId=done, RequesterFeedback="x"),
            f"Assignment {done} does not exist.",
        ),
        (
            lambda: other.send_bonus(
                WorkerId=worker.mturk_worker_id,
                AssignmentId=done,
                BonusAmount="0.10",
                Reason="x",
            ),
            f"Assignment {done} does not exist.",
        ),
        (
            lambda: other.create_hit_with_hit_type(
                HITTypeId=hit["HITTypeId"], LifetimeInSeconds=60, Question=HTML_QUESTION
            ),
            f"Hit type {hit['HITTypeId']} does not exist.",
        ),
    ):
        with pytest.raises(other.exceptions.RequestError) as hidden:
            call()
        assert error_of(hidden)[1] == message
    # Nothing of the owner's changed.
    assert mturk.get_assignment(AssignmentId=done)["Assignment"]["AssignmentStatus"] == "Submitted"


def test_question_form_hit_answers_come_back_in_form_order(
    mturk: Any, new_native_worker: Callable[..., NativeWorker]
) -> None:
    """A QuestionForm HIT answered natively per question; the Answer XML (read with minidom)
    lists the answers in the form's question order, whatever order they were sent in."""
    hit = mturk.create_hit(**hit_params(Question=QUESTION_FORM))["HIT"]
    worker = new_native_worker()
    accepted = worker.accept(hit["HITTypeId"])
    assert accepted["input"]["question_type"] == "QuestionForm"
    worker.submit(
        accepted["assignment_id"],
        {
            "answers": {
                "count": {"free_text": "7"},
                "shapes": {"selection_identifiers": ["circle"], "other_selection_text": "oval"},
                "colour": {"selection_identifiers": ["blue"]},
            }
        },
    )
    answer = mturk.get_assignment(AssignmentId=accepted["assignment_id"])["Assignment"]["Answer"]
    document = minidom.parseString(answer.encode("ascii"))
    answers = document.getElementsByTagName("Answer")

    def text(node: Any, tag: str) -> list[str]:
        return [e.firstChild.data for e in node.getElementsByTagName(tag)]

    assert [text(a, "QuestionIdentifier")[0] for a in answers] == ["colour", "shapes", "count"]
    assert text(answers[0], "SelectionIdentifier") == ["blue"]
    assert text(answers[1], "OtherSelectionText") == ["oval"]
    assert text(answers[2], "FreeText") == ["7"]


def test_native_projects_show_through_the_door(
    mturk: Any,
    mturk_requester: MTurkRequester,
    new_native_worker: Callable[..., NativeWorker],
    live_http: httpx.Client,
    live_services: LiveServices,
) -> None:
    """One set of ids: a task made through the native API is a HIT of HIT type = its project,
    its native answers come back as QuestionFormAnswers, and the door reviews them."""
    tasks_url = live_services.urls["tasks"]
    headers = mturk_requester.headers
    project = live_http.post(
        f"{tasks_url}/v1/projects",
        json={
            "title": "Native sentiment",
            "task_type": "sentiment",
            "reward": "0.20",
            "assignment_duration_seconds": 300,
            "lifetime_seconds": 3600,
            "keywords": ["reviews"],
        },
        headers=headers,
    ).json()
    added = live_http.post(
        f"{tasks_url}/v1/projects/{project['id']}/tasks",
        json={"tasks": [{"input": {"text": "Great!"}, "external_id": "row-1"}]},
        headers=headers,
    )
    assert added.status_code == 201, added.text
    task_id = added.json()["task_ids"][0]
    # A draft's task: not offered yet.
    assert mturk.get_hit(HITId=task_id)["HIT"]["HITStatus"] == "Unassignable"
    published = live_http.post(f"{tasks_url}/v1/projects/{project['id']}/publish", headers=headers)
    assert published.status_code == 200, published.text

    hit = mturk.get_hit(HITId=task_id)["HIT"]
    assert (hit["HITTypeId"], hit["HITStatus"], hit["Reward"]) == (
        project["id"],
        "Assignable",
        "0.20",
    )
    assert hit["RequesterAnnotation"] == "row-1" and "Question" not in hit
    assert [h["HITId"] for h in mturk.list_hits()["HITs"]] == [task_id]

    worker = new_native_worker()
    accepted = worker.accept(project["id"])
    worker.submit(accepted["assignment_id"], {"label": "positive"})
    listed = mturk.list_assignments_for_hit(HITId=task_id)["Assignments"]
    answer = xmltodict.parse(listed[0]["Answer"])["QuestionFormAnswers"]["Answer"]
    assert answer == {"QuestionIdentifier": "answer", "FreeText": '{"label":"positive"}'}
    mturk.approve_assignment(AssignmentId=accepted["assignment_id"])
    native_view = live_http.get(f"{tasks_url}/v1/tasks/{task_id}", headers=headers).json()[
        "assignments"
    ][0]
    assert native_view["status"] == "approved"

    with pytest.raises(mturk.exceptions.RequestError) as not_a_type:
        mturk.create_hit_with_hit_type(
            HITTypeId=project["id"], LifetimeInSeconds=60, Question=HTML_QUESTION
        )
    assert error_of(not_a_type)[1] == f"Hit type {project['id']} does not exist."


def test_a_bonus_retried_after_its_answer_was_lost_pays_once(
    mturk: Any,
    mturk_requester: MTurkRequester,
    new_native_worker: Callable[..., NativeWorker],
    live_http: httpx.Client,
    live_services: LiveServices,
    database_url: str,
) -> None:
    """The door stores a write's answer in a commit after the operation's own: should the
    process die between them, botocore's retry (same amz-sdk-invocation-id) runs SendBonus
    again. The payments key derives from the invocation id, so the worker is paid once."""
    hit = mturk.create_hit(**hit_params())["HIT"]
    worker = new_native_worker()
    assignment_id = work(worker, hit["HITTypeId"], {"label": "x"})
    params = {
        "WorkerId": worker.mturk_worker_id,
        "AssignmentId": assignment_id,
        "BonusAmount": "0.70",
        "Reason": "Thanks",
    }
    invocation = str(uuid.uuid4())
    assert post(signed(mturk_requester, "SendBonus", params, invocation)).status_code == 200

    async def forget_the_answer() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                "DELETE FROM mturk_invocations WHERE requester_id = $1 AND invocation_id = $2",
                mturk_requester.id,
                invocation,
            )
        finally:
            await conn.close()

    asyncio.run(forget_the_answer())
    retry = post(signed(mturk_requester, "SendBonus", params, invocation))
    assert retry.status_code == 200, retry.text
    assert worker_available(live_http, worker, live_services.urls["payments"]) == Decimal("0.70")
    # A new call (a new invocation id) is a new bonus, as on MTurk.
    assert post(signed(mturk_requester, "SendBonus", params, str(uuid.uuid4()))).is_success
    assert worker_available(live_http, worker, live_services.urls["payments"]) == Decimal("1.40")
