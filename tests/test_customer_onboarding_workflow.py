"""Customer onboarding on the time-skipping server, its systems faked by activity name: one test
per outcome, the identity reader lying, and undo order after a failure or a withdrawal."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.agents.customer_onboarding import IdentityReading
from activities.kyc import RegisteredIdentity
from casework.audit import AuditKind
from casework.case import CaseStatus
from casework.case.tasks import TaskStatus
from casework.testing.cases import audit, events_of, open_task, state
from casework.testing.fakes import fake_worker
from casework.testing.signing import decide
from casework.testing.temporal import eventually
from tests.customer_onboarding_support import (
    EMAIL,
    FakeOnboardingSystems,
    application,
    passport_text,
    rejected,
    withdrawal,
)
from workflows.customer_onboarding import (
    CustomerOnboardingResult,
    CustomerOnboardingWorkflow,
    OnboardingStatus,
    Outcome,
)

ALL_WRITES = ["made ACC-1", "made CRM-1", "made LGN-1", "made CRD-1"]


def systems(**fields: object) -> FakeOnboardingSystems:
    request = fields.pop("request", None) or application(f"APP-{uuid.uuid4().hex[:8]}")
    return FakeOnboardingSystems(request=request, **fields)  # type: ignore[arg-type]


async def start(env: WorkflowEnvironment, fakes: FakeOnboardingSystems, queue: str):
    return await env.client.start_workflow(
        CustomerOnboardingWorkflow.run,
        fakes.request,
        id=CustomerOnboardingWorkflow.case_id_for(fakes.request),
        task_queue=queue,
    )


async def run_case(
    env: WorkflowEnvironment, fakes: FakeOnboardingSystems
) -> CustomerOnboardingResult:
    async with fake_worker(env.client, fakes, CustomerOnboardingWorkflow) as queue:
        return await (await start(env, fakes, queue)).result()


async def test_a_verified_low_risk_applicant_is_onboarded_in_order(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems()
    result = await run_case(time_skipping_env, fakes)
    assert result.outcome is Outcome.ONBOARDED
    assert result.status == OnboardingStatus.ONBOARDED
    assert result.decided_by == "policy"
    assert result.risk == "low"
    assert fakes.writes == ALL_WRITES
    assert (result.account_id, result.customer_id, result.login_id, result.card_order_id) == (
        "ACC-1",
        "CRM-1",
        "LGN-1",
        "CRD-1",
    )
    assert fakes.sent_to(EMAIL) == [f"Welcome, {fakes.request.full_name}"]
    # Each write carries an idempotency key derived from the case, so a retry writes once.
    assert (
        fakes.calls("core_banking.open_account")[0].idempotency_key == f"{result.case_id}:account"
    )


async def test_sanctions_and_pep_screening_run_in_parallel(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems()
    async with fake_worker(time_skipping_env.client, fakes, CustomerOnboardingWorkflow) as queue:
        handle = await start(time_skipping_env, fakes, queue)
        await handle.result()
        history = await handle.fetch_history()
    scheduled: dict[int, str] = {}
    positions: dict[str, int] = {}
    completed: list[tuple[int, str]] = []
    for position, event in enumerate(history.events):
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            scheduled[event.event_id] = name
            positions[name] = position
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            attributes = event.activity_task_completed_event_attributes
            completed.append((position, scheduled[attributes.scheduled_event_id]))
    first_screening_done = min(
        position for position, name in completed if name in ("kyc.screen_sanctions", "pep.screen")
    )
    # Both are scheduled before either has completed: neither waits for the other.
    assert positions["kyc.screen_sanctions"] < first_screening_done
    assert positions["pep.screen"] < first_screening_done


async def test_a_pep_goes_to_enhanced_due_diligence_and_is_onboarded_when_approved(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems(
        pep_match=True, request=application(f"APP-{uuid.uuid4().hex[:8]}", nationality="IR")
    )
    async with fake_worker(time_skipping_env.client, fakes, CustomerOnboardingWorkflow) as queue:
        handle = await start(time_skipping_env, fakes, queue)
        task = await open_task(handle)
        assert task.role == "compliance_officer"
        assert fakes.writes == []  # nothing is provisioned before compliance decides
        await decide(handle, approver="sven", action="approve", comment="source of funds ok")
        result = await handle.result()
    assert result.outcome is Outcome.ONBOARDED
    assert result.decided_by == "sven"
    assert result.risk == "high"
    assert fakes.writes == ALL_WRITES


async def test_due_diligence_escalates_and_a_rejection_provisions_nothing(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems(
        pep_match=True, request=application(f"APP-{uuid.uuid4().hex[:8]}", nationality="KP")
    )
    async with fake_worker(time_skipping_env.client, fakes, CustomerOnboardingWorkflow) as queue:
        handle = await start(time_skipping_env, fakes, queue)
        await open_task(handle)
        await time_skipping_env.sleep(timedelta(days=2, hours=1))
        task = await open_task(handle, "the escalated task")
        assert task.role == "head_of_compliance"
        await decide(handle, approver="tina", action="reject", comment="unexplained wealth")
        result = await handle.result()
        trail = await audit(handle)
    assert result.outcome is Outcome.REJECTED
    assert result.status == CaseStatus.REJECTED
    assert fakes.writes == []
    assert fakes.sent_to(EMAIL) == [f"Your application {fakes.request.application_id}"]
    assert events_of(trail, AuditKind.TASK_ESCALATED)


async def test_due_diligence_nobody_decides_is_on_hold(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems(
        pep_match=True, request=application(f"APP-{uuid.uuid4().hex[:8]}", nationality="MM")
    )
    result = await run_case(time_skipping_env, fakes)
    assert result.outcome is Outcome.DUE_DILIGENCE_TIMED_OUT
    assert result.status == CaseStatus.ON_HOLD
    assert fakes.writes == []


async def test_a_reader_that_lies_about_the_holder_never_onboards_alone(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    # The document is someone else's; the reader claims it names the applicant, confidently.
    request = application(f"APP-{uuid.uuid4().hex[:8]}")
    request = request.model_copy(
        update={"identity_document": passport_text(request.document_number, name="Boris Kane")}
    )
    fakes = systems(request=request)
    async with fake_worker(time_skipping_env.client, fakes, CustomerOnboardingWorkflow) as queue:
        handle = await start(time_skipping_env, fakes, queue)
        task = await open_task(handle)
        assert task.role == "compliance_officer"
        assert fakes.writes == []
        checked = events_of(await audit(handle), AuditKind.PROPOSAL_CHECKED)
        assert "full_name 'Anna Louise Martin' (document): not stated" in checked[0].summary
        await decide(handle, approver="sven", action="reject", comment="not their passport")
        result = await handle.result()
    assert result.outcome is Outcome.REJECTED
    assert result.risk == "high"


async def test_a_reader_that_invents_a_document_number_is_caught_by_the_registry(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    request = application(f"APP-{uuid.uuid4().hex[:8]}")
    lie = IdentityReading(
        document_kind="passport",
        full_name=request.full_name,
        date_of_birth=date(1990, 1, 1),
        document_number="X0000000",
        confidence=0.99,
    )
    registry = RegisteredIdentity(
        document_number=request.document_number,
        full_name="Anna Martin-Schultz",
        date_of_birth=request.date_of_birth,
        status="valid",
    )
    fakes = systems(request=request, reading=lie, registered=registry)
    async with fake_worker(time_skipping_env.client, fakes, CustomerOnboardingWorkflow) as queue:
        handle = await start(time_skipping_env, fakes, queue)
        await open_task(handle)
        decision = events_of(await audit(handle), AuditKind.POLICY_DECISION)[-1]
        for problem in (
            "document_number 'X0000000' (document): not stated",
            "document_number 'X0000000' (record): the application records",
            "date_of_birth '1990-01-01' (record): the KYC registry records",
            "full_name 'Anna Louise Martin' (record): the KYC registry records",
        ):
            assert problem in decision.summary, problem
        await decide(handle, approver="sven", action="reject", comment="mismatch")
        assert (await handle.result()).outcome is Outcome.REJECTED
    assert fakes.writes == []


async def test_an_identity_the_kyc_service_does_not_verify_is_rejected(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems(verified=False, in_registry=False)
    result = await run_case(time_skipping_env, fakes)
    assert result.outcome is Outcome.REJECTED
    assert "did not verify the identity" in result.message
    assert fakes.writes == []


async def test_a_sanctions_hit_is_rejected(time_skipping_env: WorkflowEnvironment) -> None:
    fakes = systems(sanctions_hit=True)
    result = await run_case(time_skipping_env, fakes)
    assert result.outcome is Outcome.REJECTED
    assert "sanctions screening SCR-1 hit" in result.message
    assert fakes.writes == []


async def test_a_failed_card_order_undoes_the_earlier_steps_in_reverse(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems()
    fakes.script("cards.order_card", rejected("card order"))
    result = await run_case(time_skipping_env, fakes)
    assert result.outcome is Outcome.FAILED_COMPENSATED
    assert result.status == CaseStatus.FAILED_COMPENSATED
    assert fakes.writes == [
        "made ACC-1",
        "made CRM-1",
        "made LGN-1",
        "undid LGN-1",
        "undid CRM-1",
        "undid ACC-1",
    ]
    assert result.compensated == [
        "online-banking login LGN-1 revoked",
        "CRM customer CRM-1 closed",
        "account ACC-1 closed",
    ]
    assert "provisioning the card order failed" in result.message


async def test_a_welcome_message_that_cannot_be_sent_undoes_everything(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems(failing_recipients={EMAIL})
    result = await run_case(time_skipping_env, fakes)
    assert result.outcome is Outcome.FAILED_COMPENSATED
    assert fakes.writes == [*ALL_WRITES, "undid CRD-1", "undid LGN-1", "undid CRM-1", "undid ACC-1"]


async def test_a_withdrawal_during_provisioning_undoes_everything_provisioned(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems(withdraw_during="online_banking.create_login")
    result = await run_case(time_skipping_env, fakes)
    assert result.outcome is Outcome.WITHDRAWN
    assert result.status == OnboardingStatus.WITHDRAWN
    # The login being created when the withdrawal came is undone too; no card is ordered.
    assert fakes.writes == [
        "made ACC-1",
        "made CRM-1",
        "made LGN-1",
        "undid LGN-1",
        "undid CRM-1",
        "undid ACC-1",
    ]
    assert result.compensated == [
        "online-banking login LGN-1 revoked",
        "CRM customer CRM-1 closed",
        "account ACC-1 closed",
    ]
    assert result.message.startswith("withdrawn by Anna Louise Martin: I changed my mind; ")
    assert (
        fakes.sent_to(EMAIL)[-1] == f"Your application {fakes.request.application_id} is withdrawn"
    )


async def test_a_withdrawal_before_provisioning_has_nothing_to_undo(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems(withdraw_during="kyc.verify_identity")
    result = await run_case(time_skipping_env, fakes)
    assert result.outcome is Outcome.WITHDRAWN
    assert fakes.writes == []
    assert result.compensated == []
    assert "nothing was provisioned" in result.message
    assert not fakes.calls("kyc.screen_sanctions")


async def test_a_withdrawal_during_due_diligence_withdraws_the_task(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems(
        pep_match=True, request=application(f"APP-{uuid.uuid4().hex[:8]}", nationality="IR")
    )
    async with fake_worker(time_skipping_env.client, fakes, CustomerOnboardingWorkflow) as queue:
        handle = await start(time_skipping_env, fakes, queue)
        task = await open_task(handle)
        await handle.signal("withdraw", withdrawal("found another bank"))
        result = await handle.result()
        tasks = (await state(handle)).open_tasks
        decisions = events_of(await audit(handle), AuditKind.POLICY_DECISION)
    assert result.outcome is Outcome.WITHDRAWN
    assert fakes.writes == []
    assert tasks == []
    assert f"withdrew task {task.task_id}" in " ".join(e.summary for e in decisions)
    assert any(n.subject.startswith("No longer needed") for n in fakes.notifications)


async def test_a_malformed_withdrawal_is_recorded_and_ignored(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems(
        pep_match=True, request=application(f"APP-{uuid.uuid4().hex[:8]}", nationality="IR")
    )
    async with fake_worker(time_skipping_env.client, fakes, CustomerOnboardingWorkflow) as queue:
        handle: WorkflowHandle = await start(time_skipping_env, fakes, queue)
        await open_task(handle)
        await handle.signal("withdraw", {"reason": ""})

        async def refused() -> list[object] | None:
            found = events_of(await audit(handle), AuditKind.DECISION_REFUSED)
            return found or None

        (ignored,) = await eventually(refused, what="the malformed withdrawal to be recorded")
        assert "ignored a malformed withdraw signal" in ignored.summary  # type: ignore[attr-defined]
        assert (await open_task(handle)).status is TaskStatus.OPEN
        await decide(handle, approver="sven", action="approve")
        assert (await handle.result()).outcome is Outcome.ONBOARDED


async def test_a_card_order_made_with_every_answer_lost_is_found_and_undone(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    # The card system placed the order, but the case never heard so: it fails for good.
    fakes = systems(lost_answer_at="cards.order_card")
    result = await run_case(time_skipping_env, fakes)
    assert result.outcome is Outcome.FAILED_COMPENSATED
    assert fakes.writes == [*ALL_WRITES, "undid CRD-1", "undid LGN-1", "undid CRM-1", "undid ACC-1"]
    assert result.compensated[0] == "card order CRD-1 cancelled"
    assert fakes.calls("cards.find_orders")[0].application_id == fakes.request.application_id


async def test_an_account_whose_opening_was_never_answered_is_closed(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems(lost_answer_at="core_banking.open_account")
    result = await run_case(time_skipping_env, fakes)
    assert result.outcome is Outcome.FAILED_COMPENSATED
    assert fakes.writes == ["made ACC-1", "undid ACC-1"]
    assert result.compensated == ["account ACC-1 closed"]
