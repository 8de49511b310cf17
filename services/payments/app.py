"""Payments service application factory."""

from __future__ import annotations

from fastapi import FastAPI

from services.payments.settings import Settings
from shared.app_factory import build_app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # type: ignore[call-arg]  # read from PAYMENTS_* env
    return build_app(
        service="payments",
        title="Marketplace payments service",
        description="Ledger, balances, deposits, bonuses, earnings and withdrawals.",
        settings=settings,
        routers=[],
    )
