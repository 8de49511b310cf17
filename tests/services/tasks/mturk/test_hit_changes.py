"""boto3 flows of services/tasks/mturk/operations/hit_changes.py against the running services:
extend, add assignments (UniqueRequestToken, insufficient funds, MTurk's 10-assignment rule),
expire (ExpireAt 0), delete, and NotifyWorkers read back by a native worker."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.conftest import LiveServices
from tests.services.tasks.mturk.conftest import MTurkRequester, NativeWorker
from tests.services.tasks.mturk.question_samples import HTML_QUESTION

pytestmark = pytest.mark.usefixtures("live_services")


def hit_params(**overrides: Any) -> dict[str, Any]:
    return {
        "Title": "Cat or dog?",
        "Description": "Say what the picture shows.",
        "Keywords": "images",
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


def wait_for_balance(mturk: Any, expected: tuple[Decimal, Decimal]) -> None:
    """Releases leave through the tasks service's outbox just after the change commits."""
    deadline = time.monotonic() + 15
    while (got := balance(mturk)) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    assert got == expected


def request_error(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, str]:
    err = excinfo.value.response["Error"]
    return err["Code"], excinfo.value.response.get("TurkErrorCode", ""), err["Message"]


def test_extend_add_assignments_expire_and_delete(
    mturk: Any, mturk_requester: MTurkRequester, native_worker: NativeWorker
) -> None:
    hit = mturk.create_hit(**hit_params())["HIT"]
    hit_id = hit["HITId"]
    assert balance(mturk) == (Decimal("999.40"), Decimal("0.60"))

    # Extend: the new expiration is the HIT's.
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    assert mturk.update_expiration_for_hit(HITId=hit_id, ExpireAt=later) is not None
    assert mturk.get_hit(HITId=hit_id)["HIT"]["Expiration"] == later

    # Two more assignments, their money held at once; the token is single-use.
    mturk.create_additional_assignments_for_hit(
        HITId=hit_id, NumberOfAdditionalAssignments=2, UniqueRequestToken="more-1"
    )
    got = mturk.get_hit(HITId=hit_id)["HIT"]
    assert (got["MaxAssignments"], got["NumberOfAssignmentsAvailable"]) == (3, 3)
    assert balance(mturk) == (Decimal("998.20"), Decimal("1.80"))
    with pytest.raises(mturk.exceptions.RequestError) as excinfo:
        mturk.create_additional_assignments_for_hit(
            HITId=hit_id, NumberOfAdditionalAssignments=2, UniqueRequestToken="more-1"
        )
    assert request_error(excinfo)[:2] == (
        "RequestError",
        "AWS.MechanicalTurk.DuplicateRequest",
    )
    assert mturk.get_hit(HITId=hit_id)["HIT"]["MaxAssignments"] == 3
    # MTurk's rule: a HIT of fewer than 10 assignments never reaches 10.
    with pytest.raises(mturk.exceptions.RequestError) as excinfo:
        mturk.create_additional_assignments_for_hit(HITId=hit_id, NumberOfAdditionalAssignments=7)
    assert request_error(excinfo)[1] == "AWS.MechanicalTurk.InvalidMaximumAssignmentsIncrease"

    # A native worker answers; a HIT still offered cannot be deleted.
    work = native_worker.accept(hit["HITTypeId"])
    native_worker.submit(work["assignment_id"], {"fields": {"label": "cat"}})
    with pytest.raises(mturk.exceptions.RequestError) as excinfo:
        mturk.delete_hit(HITId=hit_id)
    _, turk_code, message = request_error(excinfo)
    assert turk_code == "AWS.MechanicalTurk.InvalidHITState"
    assert "This operation can be called with a status of: Reviewable" in message

    # ExpireAt 0: expired now; the two unused slots' money goes back, the answer's stays held.
    mturk.update_expiration_for_hit(HITId=hit_id, ExpireAt=datetime(1970, 1, 1, tzinfo=UTC))
    got = mturk.get_hit(HITId=hit_id)["HIT"]
    assert (got["HITStatus"], got["NumberOfAssignmentsAvailable"]) == ("Reviewable", 0)
    wait_for_balance(mturk, (Decimal("999.40"), Decimal("0.60")))
    with pytest.raises(mturk.exceptions.RequestError) as excinfo:  # a submitted answer waits
        mturk.delete_hit(HITId=hit_id)
    assert request_error(excinfo)[1] == "AWS.MechanicalTurk.InvalidHITState"

    mturk.approve_assignment(AssignmentId=work["assignment_id"])
    mturk.delete_hit(HITId=hit_id)
    assert mturk.get_hit(HITId=hit_id)["HIT"]["HITStatus"] == "Disposed"
    assert hit_id not in {h["HITId"] for h in mturk.list_hits()["HITs"]}
    assert mturk.list_assignments_for_hit(HITId=hit_id)["NumResults"] == 1  # answers stay
    with pytest.raises(mturk.exceptions.RequestError) as excinfo:
        mturk.delete_hit(HITId=hit_id)
    assert request_error(excinfo)[1] == "AWS.MechanicalTurk.InvalidHITState"
    with pytest.raises(mturk.exceptions.RequestError):
        mturk.update_expiration_for_hit(HITId=hit_id, ExpireAt=later)
    wait_for_balance(mturk, (Decimal("999.40"), Decimal("0.00")))


def test_expired_hit_extended_again_and_errors_clients_match(
    mturk: Any,
    new_mturk_requester: Callable[..., MTurkRequester],
    live_http: httpx.Client,
    live_services: LiveServices,
) -> None:
    hit_id = mturk.create_hit(**hit_params(MaxAssignments=2))["HIT"]["HITId"]
    mturk.update_expiration_for_hit(HITId=hit_id, ExpireAt=0)
    wait_for_balance(mturk, (Decimal("1000.00"), Decimal("0.00")))
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    mturk.update_expiration_for_hit(HITId=hit_id, ExpireAt=later)  # Assignable again
    got = mturk.get_hit(HITId=hit_id)["HIT"]
    assert (got["HITStatus"], got["NumberOfAssignmentsAvailable"]) == ("Assignable", 2)
    assert balance(mturk) == (Decimal("998.80"), Decimal("1.20"))

    missing = "3" + hit_id[1:] if hit_id[0] != "3" else "4" + hit_id[1:]
    for call in (
        lambda: mturk.update_expiration_for_hit(HITId=missing, ExpireAt=later),
        lambda: mturk.create_additional_assignments_for_hit(
            HITId=missing, NumberOfAdditionalAssignments=1
        ),
        lambda: mturk.delete_hit(HITId=missing),
    ):
        with pytest.raises(mturk.exceptions.RequestError) as excinfo:
            call()
        assert request_error(excinfo)[1] == "AWS.MechanicalTurk.HITDoesNotExist"
    # Someone else's HIT is as missing as a missing one.
    other = new_mturk_requester()
    with pytest.raises(other.client.exceptions.RequestError) as excinfo:
        other.client.delete_hit(HITId=hit_id)
    assert request_error(excinfo)[1] == "AWS.MechanicalTurk.HITDoesNotExist"
    with pytest.raises(mturk.exceptions.RequestError):
        mturk.create_additional_assignments_for_hit(HITId=hit_id, NumberOfAdditionalAssignments=0)
    with pytest.raises(mturk.exceptions.RequestError):
        mturk.update_expiration_for_hit(HITId=hit_id, ExpireAt=later + timedelta(days=400))

    # Too little money: MTurk's insufficient-funds error, and nothing changes.
    poor = new_mturk_requester(funds="0.60")
    poor_hit = poor.client.create_hit(**hit_params())["HIT"]["HITId"]
    with pytest.raises(poor.client.exceptions.RequestError) as excinfo:
        poor.client.create_additional_assignments_for_hit(
            HITId=poor_hit, NumberOfAdditionalAssignments=1, UniqueRequestToken="t-1"
        )
    assert request_error(excinfo)[1] == "AWS.MechanicalTurk.InsufficientFunds"
    assert poor.client.get_hit(HITId=poor_hit)["HIT"]["MaxAssignments"] == 1
    # The refusal did not burn the token: with money, the same token acts.
    resp = live_http.post(
        f"{live_services.urls['payments']}/v1/deposits",
        json={"amount": "0.60"},
        headers=poor.headers,
    )
    assert resp.status_code == 201, resp.text
    poor.client.create_additional_assignments_for_hit(
        HITId=poor_hit, NumberOfAdditionalAssignments=1, UniqueRequestToken="t-1"
    )
    assert poor.client.get_hit(HITId=poor_hit)["HIT"]["MaxAssignments"] == 2
    assert balance(poor.client) == (Decimal("0.00"), Decimal("1.20"))


def test_notify_workers_reaches_workers_it_has_worked_with(
    mturk: Any,
    new_native_worker: Callable[..., NativeWorker],
    live_http: httpx.Client,
    live_services: LiveServices,
) -> None:
    hit = mturk.create_hit(**hit_params(MaxAssignments=2))["HIT"]
    helper, idle = new_native_worker(), new_native_worker()
    work = helper.accept(hit["HITTypeId"])
    helper.submit(work["assignment_id"], {"fields": {"label": "dog"}})
    mturk.approve_assignment(AssignmentId=work["assignment_id"])

    unknown = "A" + "0" * 26
    answer = mturk.notify_workers(
        Subject="More work soon",
        MessageText="Thanks for the labels; a new batch comes tomorrow.",
        WorkerIds=[helper.mturk_worker_id, idle.mturk_worker_id, unknown],
    )
    failures = {
        f["WorkerId"]: (f["NotifyWorkersFailureCode"], f["NotifyWorkersFailureMessage"])
        for f in answer["NotifyWorkersFailureStatuses"]
    }
    assert set(failures) == {idle.mturk_worker_id, unknown}
    assert {code for code, _ in failures.values()} == {"HardFailure"}

    inbox = live_http.get(
        f"{live_services.urls['workers']}/v1/workers/me/messages", headers=helper.headers
    ).json()["items"]
    assert [(m["subject"], m["body"]) for m in inbox] == [
        ("More work soon", "Thanks for the labels; a new batch comes tomorrow.")
    ]
    idle_inbox = live_http.get(
        f"{live_services.urls['workers']}/v1/workers/me/messages", headers=idle.headers
    ).json()["items"]
    assert idle_inbox == []

    for kwargs in (
        {"Subject": "s" * 201, "MessageText": "m", "WorkerIds": [helper.mturk_worker_id]},
        {"Subject": "s", "MessageText": "m" * 4097, "WorkerIds": [helper.mturk_worker_id]},
        {"Subject": "s", "MessageText": "m", "WorkerIds": [helper.mturk_worker_id] * 101},
        {"Subject": "s", "MessageText": "m", "WorkerIds": []},
    ):
        with pytest.raises(ClientError) as excinfo:
            mturk.notify_workers(**kwargs)
        assert excinfo.value.response["Error"]["Code"] in ("RequestError", "ValidationException")
    with pytest.raises(ClientError):  # not MTurk's WorkerId form
        mturk.notify_workers(Subject="s", MessageText="m", WorkerIds=[helper.id])


def test_one_token_raced_extends_once(mturk: Any, mturk_requester: MTurkRequester) -> None:
    """Four clients send CreateAdditionalAssignmentsForHIT with one UniqueRequestToken at the
    same moment: one extends the HIT and holds the money, the others get DuplicateRequest."""
    hit_id = mturk.create_hit(**hit_params())["HIT"]["HITId"]
    clients = [mturk_requester.client_with() for _ in range(4)]

    def extend(client: Any) -> str:
        try:
            client.create_additional_assignments_for_hit(
                HITId=hit_id, NumberOfAdditionalAssignments=3, UniqueRequestToken="race-1"
            )
        except client.exceptions.RequestError as exc:
            return exc.response.get("TurkErrorCode", "")
        return "ok"

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = sorted(pool.map(extend, clients))
    assert outcomes == ["AWS.MechanicalTurk.DuplicateRequest"] * 3 + ["ok"]
    assert mturk.get_hit(HITId=hit_id)["HIT"]["MaxAssignments"] == 4
    assert balance(mturk) == (Decimal("997.60"), Decimal("2.40"))
