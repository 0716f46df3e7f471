"""Customer-onboarding scenarios: KYC, the PEP register, the provisioning systems and the identity
reader faked by activity name (``tests.customer_onboarding_support``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from casework.testing.cases import open_task
from casework.testing.recorder import Drive, Recordings, Scenario, nothing
from casework.testing.signing import decide
from tests.customer_onboarding_support import (
    FakeOnboardingSystems,
    application,
    passport_text,
    rejected,
    withdrawal,
)
from workflows.customer_onboarding import CustomerOnboardingWorkflow, Outcome


def _systems(**fields: Any) -> Callable[[str, datetime], FakeOnboardingSystems]:
    def build(application_id: str, now: datetime) -> FakeOnboardingSystems:
        return FakeOnboardingSystems(request=application(application_id), **fields)

    return build


def _high_risk(application_id: str, now: datetime) -> FakeOnboardingSystems:
    return FakeOnboardingSystems(
        request=application(application_id, nationality="IR"), pep_match=True
    )


def _someone_elses_passport(application_id: str, now: datetime) -> FakeOnboardingSystems:
    request = application(application_id)
    document = passport_text(request.document_number, name="Boris Kane")
    return FakeOnboardingSystems(request=request.model_copy(update={"identity_document": document}))


def _card_order_fails(application_id: str, now: datetime) -> FakeOnboardingSystems:
    systems = FakeOnboardingSystems(request=application(application_id))
    systems.script("cards.order_card", rejected("card order"))
    return systems


def _compliance(role: str, **decision: str) -> Drive:
    async def drive(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
        task = await open_task(handle, "an enhanced due diligence task")
        if task.role != role:
            raise RuntimeError(f"expected a task for {role}, not {task.role}")
        await decide(handle, **decision)

    return drive


async def _withdraw_during_due_diligence(
    env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]
) -> None:
    await open_task(handle, "an enhanced due diligence task")
    await handle.signal("withdraw", withdrawal("found another bank"))


RECORDINGS = Recordings(
    workflow=CustomerOnboardingWorkflow,
    key=lambda name: f"APP-REPLAY-{name}",
    start=lambda application_id, systems: systems.request,
    scenarios=(
        Scenario("customer_onboarded", _systems(), nothing, {"outcome": Outcome.ONBOARDED}),
        Scenario(
            "due_diligence_approved",
            _high_risk,
            _compliance("compliance_officer", approver="sven", action="approve"),
            {"outcome": Outcome.ONBOARDED, "decided_by": "sven"},
        ),
        Scenario(
            "reader_contradicted_rejected",
            _someone_elses_passport,
            _compliance(
                "compliance_officer", approver="sven", action="reject", comment="not theirs"
            ),
            {"outcome": Outcome.REJECTED},
        ),
        Scenario(
            "due_diligence_timed_out",
            _high_risk,
            nothing,
            {"outcome": Outcome.DUE_DILIGENCE_TIMED_OUT},
        ),
        Scenario(
            "identity_not_verified",
            _systems(verified=False, in_registry=False),
            nothing,
            {"outcome": Outcome.REJECTED},
        ),
        Scenario(
            "provisioning_failed_compensated",
            _card_order_fails,
            nothing,
            {"outcome": Outcome.FAILED_COMPENSATED},
        ),
        Scenario(
            "card_order_unanswered_found_and_undone",
            _systems(lost_answer_at="cards.order_card"),
            nothing,
            {"outcome": Outcome.FAILED_COMPENSATED},
        ),
        Scenario(
            "withdrawn_during_provisioning",
            _systems(withdraw_during="online_banking.create_login"),
            nothing,
            {"outcome": Outcome.WITHDRAWN},
        ),
        Scenario(
            "withdrawn_during_due_diligence",
            _high_risk,
            _withdraw_during_due_diligence,
            {"outcome": Outcome.WITHDRAWN},
        ),
    ),
)
