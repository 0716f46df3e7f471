"""Routing messages from outside to the case they belong to, by the business key they carry.

A credit bureau's report, an applicant's reply or a fraud alert names its loan application; the
application's case is ``loan-application-<application_id>``, so the message becomes a signal to
that workflow ID. Temporal keeps a signal in the case's history the moment it is accepted, and
the case buffers it whatever step it is at, so a message that arrives early is never lost.

A message is only a notice: the case believes what the message's source keeps, and reads it
back from there (the bureau's answer by the case's own request ID, the applicant's reply from the
lending system, an alert from fraud monitoring). So a sender first puts the message where its
source keeps it (``store_reply``, ``raise_fraud_alert``; the bureau keeps its own answers), then
delivers the notice; a message nobody keeps is recorded by the case and ignored.

This is the inbound adapter: ``casework deliver ...`` uses it, and a webhook receiving the
bureau's callbacks would call ``deliver`` the same way. A message for an application with no
running case is refused with ``NoCaseForMessage`` rather than dropped, so the sender keeps it
(the sandbox bureau keeps every answer readable, and it can be delivered again).
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, ValidationError
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.credit_bureau import CreditReport
from activities.fraud import FraudAlert, RaisedFraudAlert
from activities.lending import ApplicantMessage, CustomerReply, IncomeDocument, Message
from casework.converter import describe_validation_error
from workflows.loan_application import (
    CREDIT_REPORT,
    CUSTOMER_REPLY,
    FRAUD_ALERT,
    LoanApplicationWorkflow,
)

SIGNALS: dict[type[Message], str] = {
    CreditReport: CREDIT_REPORT,
    CustomerReply: CUSTOMER_REPLY,
    FraudAlert: FRAUD_ALERT,
}


class NoCaseForMessage(LookupError):
    """No running case to deliver to; the message was not delivered and the sender keeps it."""


class BureauAnswerUnavailable(LookupError):
    """The bureau has no answer to give (yet) for the request."""


class SourceRefused(LookupError):
    """The system that keeps a message would not take it (an unknown application, say)."""


class Delivery(BaseModel):
    case_id: str
    signal: str
    summary: str


async def deliver(client: Client, message: Message) -> Delivery:
    """Signal ``message`` to its application's running case."""
    case_id = LoanApplicationWorkflow.case_id(message.application_id)
    signal = SIGNALS[type(message)]
    handle = client.get_workflow_handle(case_id)
    try:
        description = await handle.describe()
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise NoCaseForMessage(
                f"no case {case_id} for application {message.application_id}; "
                f"the {signal} message was not delivered"
            ) from error
        raise
    if description.status != WorkflowExecutionStatus.RUNNING:
        state = description.status.name.lower() if description.status else "closed"
        raise NoCaseForMessage(f"case {case_id} is {state}; the {signal} message was not delivered")
    await handle.signal(signal, message)
    return Delivery(
        case_id=case_id,
        signal=signal,
        summary=f"{signal} for application {message.application_id} delivered to {case_id}",
    )


async def bureau_report(sandbox: httpx.AsyncClient, request_id: str) -> CreditReport:
    """The bureau's answer to ``request_id``, as the message the case expects."""
    response = await sandbox.get(f"/credit-bureau/requests/{request_id}")
    if response.status_code == 404:
        raise BureauAnswerUnavailable(f"the bureau has no report request {request_id}")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    if body.get("report") is None:
        raise BureauAnswerUnavailable(
            f"the bureau has not answered request {request_id} yet (status "
            f"{body.get('status')}); it answers with POST /credit-bureau/requests/"
            f"{request_id}/answer"
        )
    try:
        return CreditReport.model_validate(body["report"])
    except ValidationError as error:
        raise BureauAnswerUnavailable(
            f"the bureau's answer to {request_id} is not a credit report: "
            + describe_validation_error(error)
        ) from error


async def store_reply(sandbox: httpx.AsyncClient, reply: CustomerReply) -> CustomerReply:
    """Hand the applicant's reply to the lending system, which keeps it; the reply as it keeps
    it, naming its ``message_id``."""
    response = await sandbox.post(
        f"/lending/applications/{reply.application_id}/messages",
        json=reply.model_dump(mode="json", include={"text", "documents"}),
    )
    stored = ApplicantMessage.model_validate(_kept(response, "the lending system"))
    return CustomerReply(
        application_id=stored.application_id,
        text=stored.text,
        documents=[IncomeDocument.model_validate(d) for d in stored.documents],
        message_id=stored.message_id,
    )


async def raise_fraud_alert(sandbox: httpx.AsyncClient, alert: FraudAlert) -> FraudAlert:
    """Record the alert with fraud monitoring, which keeps it; the alert as it keeps it."""
    response = await sandbox.post("/fraud/alerts", json=alert.model_dump(mode="json"))
    raised = RaisedFraudAlert.model_validate(_kept(response, "fraud monitoring"))
    return FraudAlert(
        application_id=raised.application_id,
        alert_id=raised.alert_id,
        reason=raised.reason,
        source=raised.source,
    )


def _kept(response: httpx.Response, system: str) -> dict[str, Any]:
    if response.status_code in (404, 409, 422):
        raise SourceRefused(f"{system} refused the message: {response.json().get('detail')}")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body
