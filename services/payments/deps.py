"""Dependencies of the payments routes: the service's settings and its providers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.payments.providers import PaymentProvider
from services.payments.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_payment_provider(request: Request) -> PaymentProvider:
    return request.app.state.payment_provider


SettingsDep = Annotated[Settings, Depends(get_settings)]
PaymentProviderDep = Annotated[PaymentProvider, Depends(get_payment_provider)]
