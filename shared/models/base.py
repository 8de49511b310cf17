"""Declarative base with a naming convention, so constraint names are stable in migrations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Base(DeclarativeBase):
    metadata = metadata


def timestamp_column(**kw: Any) -> Mapped[Any]:
    """A point in time (timestamptz); nullable unless `nullable=False`."""
    return mapped_column(DateTime(timezone=True), **kw)


def created_at_column() -> Mapped[datetime]:
    return timestamp_column(nullable=False, server_default=func.now())


def id_column(*args: Any, **kw: Any) -> Mapped[Any]:
    """A column holding one of our ids (shared.ids; at most 64 characters): the key itself or
    a reference, e.g. `id_column(ForeignKey("accounts.id"), nullable=False)`."""
    return mapped_column(String(64), *args, **kw)
