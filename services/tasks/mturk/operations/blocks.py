"""Worker blocks: CreateWorkerBlock, DeleteWorkerBlock, ListWorkerBlocks, on the workers
service's blocks (`/internal/requesters/{id}/blocks`: the native `POST/DELETE/GET /v1/blocks`
rules, the requester named by the door). A blocked worker can no longer discover, preview or
accept any of the requester's HITs (shared/eligibility.py).
"""

from __future__ import annotations

from typing import Any

from services.tasks.mturk import mapping
from services.tasks.mturk.errors import DOES_NOT_EXIST, MTurkRequestError
from services.tasks.mturk.ids import worker_id_from_mturk, worker_id_to_mturk
from services.tasks.mturk.pagination import page_request, page_result
from services.tasks.mturk.registry import MTurkCall, mturk_operation
from shared.errors import AppError
from shared.http import InternalClient

MAX_REASON_CHARS = 1_000  # the native block reason's


def _workers(call: MTurkCall) -> InternalClient:
    return call.request.app.state.peers["workers"]


def _blocks_path(call: MTurkCall) -> str:
    return f"/internal/requesters/{call.requester_id}/blocks"


@mturk_operation("CreateWorkerBlock")
async def create_worker_block(call: MTurkCall) -> dict[str, Any]:
    worker_id = worker_id_from_mturk(call.params["WorkerId"])
    reason = call.params["Reason"].strip()
    if not reason:
        raise mapping.out_of_range("Reason must not be empty.")
    if len(reason) > MAX_REASON_CHARS:
        raise mapping.out_of_range(f"Reason must be at most {MAX_REASON_CHARS} characters long.")
    try:
        await _workers(call).post(
            _blocks_path(call), json={"worker_id": worker_id, "reason": reason}
        )
    except AppError as exc:
        if exc.status == 404:
            raise MTurkRequestError(
                f"Worker {call.params['WorkerId']} does not exist.", DOES_NOT_EXIST
            ) from exc
        raise
    return {}


@mturk_operation("DeleteWorkerBlock")
async def delete_worker_block(call: MTurkCall) -> dict[str, Any]:
    """Unblocking a worker who is not blocked succeeds and changes nothing (the call's effect,
    "not blocked", holds either way). The Reason is not stored: the native block keeps none
    for its removal."""
    worker_id = worker_id_from_mturk(call.params["WorkerId"])
    try:
        await _workers(call).request("DELETE", f"{_blocks_path(call)}/{worker_id}")
    except AppError as exc:
        if exc.status != 404:
            raise
    return {}


@mturk_operation("ListWorkerBlocks")
async def list_worker_blocks(call: MTurkCall) -> dict[str, Any]:
    """Newest first. The position in a NextToken is the workers service's own cursor (signed
    there too)."""
    page = page_request(call)
    params: dict[str, Any] = {"limit": page.limit}
    if isinstance(page.after, str):
        params["cursor"] = page.after
    listed = await _workers(call).get(_blocks_path(call), params=params)
    rows: list[dict[str, Any]] = list(listed["items"])
    next_cursor = listed.get("next_cursor")
    # page_result shows `limit` rows and a NextToken when there are more: one stand-in row
    # past the page carries the native cursor.
    if next_cursor:
        rows.append({"next_cursor": next_cursor})
    return page_result(
        call,
        "WorkerBlocks",
        rows,
        page,
        position=lambda _row: next_cursor,
        render=lambda row: {
            "WorkerId": worker_id_to_mturk(row["worker_id"]),
            "Reason": row["reason"],
        },
    )
