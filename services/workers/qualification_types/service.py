"""Qualification type rules: owned by requesters, searchable by anyone, answer keys owner-only.

Visibility: the owner sees its types in any status with the answer key; anyone else sees active
types without it (the contract lists active types to everyone); an inactive type of someone else
is 404, like a missing one. System types are visible to all and managed by nobody (403).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi.encoders import jsonable_encoder

from services.workers.qualification_types import repository
from services.workers.qualification_types.repository import QualificationTypeRow
from services.workers.qualification_types.schemas import (
    AnswerKey,
    QualificationTypeCreate,
    QualificationTypeOwnerRead,
    QualificationTypeRead,
    QualificationTypeUpdate,
    Test,
    consistency_errors,
)
from shared.auth import Caller
from shared.database import Db, Writable, WriteDb
from shared.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from shared.ids import new_id
from shared.pagination import Page, PageParams


class QualificationTypeNotFound(NotFound):
    code = "qualification_type_not_found"


class NameTaken(Conflict):
    code = "name_taken"


class SystemQualificationType(Forbidden):
    code = "system_qualification_type"


def to_read(row: QualificationTypeRow) -> QualificationTypeRead:
    data = asdict(row)
    data.pop("answer_key", None)
    return QualificationTypeRead(**data, has_test=row.test is not None)


def to_owner_read(row: QualificationTypeRow) -> QualificationTypeOwnerRead:
    return QualificationTypeOwnerRead(**asdict(row), has_test=row.test is not None)


async def get_owned_type(
    db: Db, *, type_id: str, owner_id: str, for_update: bool = False
) -> QualificationTypeRow:
    """The type if `owner_id` owns it; 403 for system types; 404 for anyone else's or none.
    `for_update` locks it until commit (a WriteDb's)."""
    row = await repository.get_type(db, type_id, for_update=for_update)
    if row is None:
        raise QualificationTypeNotFound("Qualification type not found.")
    if row.is_system:
        raise SystemQualificationType(
            "System qualification types are computed from real data and cannot be managed."
        )
    if row.owner_id != owner_id:
        raise QualificationTypeNotFound("Qualification type not found.")
    return row


async def get_visible_type(db: Db, *, type_id: str, caller_id: str | None) -> QualificationTypeRow:
    """The type if the caller owns it or it is active; otherwise 404."""
    row = await repository.get_type(db, type_id)
    is_owner = caller_id is not None and row is not None and row.owner_id == caller_id
    if row is None or (not is_owner and row.status != "active"):
        raise QualificationTypeNotFound("Qualification type not found.")
    return row


async def create_type(
    db: Writable, *, owner_id: str, data: QualificationTypeCreate
) -> QualificationTypeOwnerRead:
    return to_owner_read(await insert_type(db, owner_id=owner_id, data=data))


async def insert_type(
    db: Writable,
    *,
    owner_id: str,
    data: QualificationTypeCreate,
    mturk_test: str | None = None,
    mturk_answer_key: str | None = None,
) -> QualificationTypeRow:
    """The new type's row; `mturk_*`: the MTurk XML it was converted from (the door)."""
    values: dict[str, Any] = {
        "id": new_id(),
        "owner_id": owner_id,
        "is_system": False,
        **jsonable_encoder(data, exclude_none=False),
        "mturk_test": mturk_test,
        "mturk_answer_key": mturk_answer_key,
    }
    row = await repository.insert_type(db, values)
    if row is None:
        raise NameTaken("You already have a qualification type with this name.")
    return row


async def get_type(
    db: Db, *, type_id: str, caller: Caller | None
) -> QualificationTypeOwnerRead | QualificationTypeRead:
    caller_id = caller.account_id if caller else None
    row = await get_visible_type(db, type_id=type_id, caller_id=caller_id)
    return to_owner_read(row) if caller_id and row.owner_id == caller_id else to_read(row)


async def search_types(
    db: Db,
    *,
    caller: Caller | None,
    query: str | None,
    mine: bool,
    page: PageParams,
) -> Page[QualificationTypeRead]:
    if mine and caller is None:
        raise Unauthorized("mine=true lists the caller's own types: send an API key.")
    if mine and caller is not None and caller.kind != "requester":
        raise Forbidden("Only requesters own qualification types.", code="wrong_role")
    rows = await repository.search_types(
        db,
        query=(query or "").strip() or None,
        owner_id=caller.account_id if mine and caller is not None else None,
        before_id=page.before,
        limit=page.fetch,
    )
    items, next_cursor = page.page_by_id(rows)
    return Page(items=[to_read(r) for r in items], next_cursor=next_cursor)


async def update_type(
    db: WriteDb, *, owner_id: str, type_id: str, data: QualificationTypeUpdate
) -> QualificationTypeOwnerRead:
    row = await get_owned_type(db, type_id=type_id, owner_id=owner_id, for_update=True)
    changes = {name: getattr(data, name) for name in data.model_fields_set}
    merged = {**asdict(row), **changes}
    test = _as_model(Test, merged["test"])
    answer_key = _as_model(AnswerKey, merged["answer_key"])
    errors = consistency_errors(test, answer_key, bool(merged["auto_grant"]))
    if errors:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        raise ValidationFailed(detail, errors=errors)
    if not changes:
        return to_owner_read(row)
    values = jsonable_encoder(changes)
    # The MTurk XML (migration 0021) describes the test it was converted into: a changed test
    # or answer key no longer matches it.
    if "test" in changes:
        values["mturk_test"] = None
    if "answer_key" in changes or ("test" in changes and changes["test"] is None):
        values["mturk_answer_key"] = None
    return to_owner_read(await repository.update_type(db, type_id, values))


def _as_model(model: type[Test] | type[AnswerKey], value: Any) -> Any:
    if value is None or isinstance(value, model):
        return value
    return model.model_validate(value)
