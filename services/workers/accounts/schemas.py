from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field
from typing_extensions import TypeAliasType

from shared import auth
from shared.iso import normalize_country, normalize_language

CountryCode = Annotated[str, Field(min_length=2, max_length=2), AfterValidator(normalize_country)]
LanguageCode = Annotated[str, Field(min_length=2, max_length=2), AfterValidator(normalize_language)]
# Named: one `AccountKind` component in the OpenAPI document (docs/api.md: stable name).
AccountKind = TypeAliasType("AccountKind", auth.AccountKind)


class AccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: AccountKind
    name: str = Field(min_length=1, max_length=200)
    email: EmailStr = Field(max_length=254)
    country: CountryCode | None = None
    languages: list[LanguageCode] = Field(default_factory=list, max_length=50)


class AccountRead(BaseModel):
    id: str
    kind: AccountKind
    name: str
    email: str
    country: str | None
    languages: list[str]
    created_at: datetime


class AccountCreated(BaseModel):
    account: AccountRead
    api_key: str = Field(description="Shown once; only its hash is stored.")


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)


class ApiKeyRead(BaseModel):
    id: str
    prefix: str
    name: str | None
    created_at: datetime
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    api_key: str = Field(description="Shown once; only its hash is stored.")
