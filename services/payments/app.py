"""Payments service application factory.

Its lifespan runs the test payout provider's background loop (withdrawals/runner.py) next to
the kit's database pools and HTTP client; every replica may run it (SKIP LOCKED shares the work).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.payments.balances.routes import router as balances_router
from services.payments.bonuses.routes import router as bonuses_router
from services.payments.deposits.routes import router as deposits_router
from services.payments.earnings.routes import router as earnings_router
from services.payments.ledger.monitor import ledger_check_lifespan
from services.payments.ledger.routes import router as ledger_router
from services.payments.payouts.routes import router as payouts_router
from services.payments.providers import TestPaymentProvider, TestPayoutProvider
from services.payments.reservations.routes import router as reservations_router
from services.payments.settings import Settings
from services.payments.withdrawals.routes import router as withdrawals_router
from services.payments.withdrawals.runner import run_payouts_forever
from shared.app_factory import build_app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # type: ignore[call-arg]  # read from PAYMENTS_* env

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runner: asyncio.Task[None] | None = None
        if settings.payout_runner_enabled:
            runner = asyncio.create_task(
                run_payouts_forever(
                    app.state.database,
                    settings=settings,
                    provider=app.state.payout_provider,
                ),
                name="payments-payout-runner",
            )
        try:
            async with ledger_check_lifespan(app):
                yield
        finally:
            if runner is not None:
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner

    app = build_app(
        service="payments",
        title="Marketplace payments service",
        description="Ledger, balances, deposits, bonuses, earnings and withdrawals.",
        settings=settings,
        routers=[
            balances_router,
            deposits_router,
            bonuses_router,
            earnings_router,
            withdrawals_router,
            reservations_router,
            payouts_router,
            ledger_router,
        ],
        lifespan=lifespan,
    )
    app.state.payment_provider = TestPaymentProvider()
    app.state.payout_provider = TestPayoutProvider()
    return app
