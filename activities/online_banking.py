"""Online banking: customers' logins, created and revoked by idempotency key."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from temporalio import activity

from casework.systems.base import SystemActivities, read_only_tool
from casework.systems.http import call
from casework.systems.records import Record


class Login(Record):
    login_id: str
    application_id: str
    customer_id: str
    username: str
    email: str
    status: str
    created_at: datetime
    revoked_at: datetime | None = None
    revoke_reason: str | None = None


class LoginLookup(BaseModel):
    """Look up an online-banking login by its ID."""

    model_config = ConfigDict(extra="forbid")

    login_id: str = Field(description="The login's ID, e.g. LGN-000001.")


class LoginSearch(BaseModel):
    """Look up online-banking logins by the application they were made for."""

    model_config = ConfigDict(extra="forbid")

    application_id: str = Field(description="The onboarding application, e.g. APP-1001.")


class LoginCreation(BaseModel):
    application_id: str
    customer_id: str
    username: str
    email: str
    idempotency_key: str


class LoginRevocation(BaseModel):
    login_id: str
    reason: str
    idempotency_key: str


class OnlineBankingActivities(SystemActivities):
    system = "online banking"

    @read_only_tool(name="get_online_banking_login")
    @activity.defn(name="online_banking.get_login")
    async def get_login(self, lookup: LoginLookup) -> Login:
        """An online-banking login: its customer, username and whether it is active."""
        return Login.model_validate(
            await call(self._client, "GET", f"/online-banking/logins/{lookup.login_id}")
        )

    @read_only_tool(name="find_online_banking_logins")
    @activity.defn(name="online_banking.find_logins")
    async def find_logins(self, search: LoginSearch) -> list[Login]:
        """The online-banking logins made for an onboarding application, oldest first."""
        found = await call(
            self._client,
            "GET",
            "/online-banking/logins",
            params={"application_id": search.application_id},
        )
        return [Login.model_validate(record) for record in found]

    @activity.defn(name="online_banking.create_login")
    async def create_login(self, creation: LoginCreation) -> Login:
        return Login.model_validate(
            await call(
                self._client,
                "POST",
                "/online-banking/logins",
                json=creation.model_dump(mode="json", exclude={"idempotency_key"}),
                idempotency_key=creation.idempotency_key,
            )
        )

    @activity.defn(name="online_banking.revoke_login")
    async def revoke_login(self, revocation: LoginRevocation) -> Login:
        return Login.model_validate(
            await call(
                self._client,
                "POST",
                f"/online-banking/logins/{revocation.login_id}/revoke",
                json={"reason": revocation.reason},
                idempotency_key=revocation.idempotency_key,
            )
        )
