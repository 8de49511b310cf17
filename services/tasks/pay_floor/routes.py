"""The pay floor of one of the caller's projects: terms, money held and paid, settlements."""

from __future__ import annotations

from fastapi import APIRouter

from services.tasks.pay_floor import service
from services.tasks.pay_floor.schemas import PayFloorRead
from shared.auth import RequesterDep
from shared.database import ReadDbDep
from shared.errors import Forbidden, NotFound, Unauthorized, error_responses

router = APIRouter(prefix="/v1/projects", tags=["projects"])


@router.get(
    "/{project_id}/pay-floor",
    operation_id="get_project_pay_floor",
    response_model=PayFloorRead,
    responses=error_responses(Unauthorized, Forbidden, NotFound),
    summary="The project's pay floor: worst case reserved, top-ups paid, settlements by week",
)
async def get_pay_floor(project_id: str, caller: RequesterDep, db: ReadDbDep) -> PayFloorRead:
    return await service.get_pay_floor(db, requester_id=caller.account_id, project_id=project_id)
