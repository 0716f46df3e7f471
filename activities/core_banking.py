"""Core banking: the accounts customers hold, opened and closed by idempotency key."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from temporalio import activity

from casework.systems.base import SystemActivities, read_only_tool
from casework.systems.http import call
from casework.systems.records import Record


class Account(Record):
    account_id: str
    application_id: str
    holder_name: str
    product: str
    currency: str
    status: str
    opened_at: datetime
    closed_at: datetime | None = None
    close_reason: str | None = None


class AccountLookup(BaseModel):
    """Look up a bank account by its ID."""

    model_config = ConfigDict(extra="forbid")

    account_id: str = Field(description="The account's ID, e.g. ACC-000001.")


class AccountSearch(BaseModel):
    """Look up bank accounts by the application they were made for."""

    model_config = ConfigDict(extra="forbid")

    application_id: str = Field(description="The onboarding application, e.g. APP-1001.")


class AccountOpening(BaseModel):
    application_id: str
    holder_name: str
    product: str = "current_account"
    currency: str = "EUR"
    idempotency_key: str


class AccountClosing(BaseModel):
    account_id: str
    reason: str
    idempotency_key: str


class CoreBankingActivities(SystemActivities):
    system = "core banking"

    @read_only_tool(name="get_bank_account")
    @activity.defn(name="core_banking.get_account")
    async def get_account(self, lookup: AccountLookup) -> Account:
        """A bank account: its holder, product, currency and whether it is open."""
        return Account.model_validate(
            await call(self._client, "GET", f"/core-banking/accounts/{lookup.account_id}")
        )

    @read_only_tool(name="find_bank_accounts")
    @activity.defn(name="core_banking.find_accounts")
    async def find_accounts(self, search: AccountSearch) -> list[Account]:
        """The bank accounts made for an onboarding application, oldest first."""
        found = await call(
            self._client,
            "GET",
            "/core-banking/accounts",
            params={"application_id": search.application_id},
        )
        return [Account.model_validate(record) for record in found]

    @activity.defn(name="core_banking.open_account")
    async def open_account(self, opening: AccountOpening) -> Account:
        return Account.model_validate(
            await call(
                self._client,
                "POST",
                "/core-banking/accounts",
                json=opening.model_dump(mode="json", exclude={"idempotency_key"}),
                idempotency_key=opening.idempotency_key,
            )
        )

    @activity.defn(name="core_banking.close_account")
    async def close_account(self, closing: AccountClosing) -> Account:
        return Account.model_validate(
            await call(
                self._client,
                "POST",
                f"/core-banking/accounts/{closing.account_id}/close",
                json={"reason": closing.reason},
                idempotency_key=closing.idempotency_key,
            )
        )
