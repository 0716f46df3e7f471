"""Vendor onboarding: documents in order, every review approves, then the vendor is created once.

Flow: load policy -> read the application and its documents from the vendor portal -> the
document checker reads every required document in parallel (one ``llm.propose`` activity per
document) and the policy checks each reading against the application -> missing or invalid
documents are requested from the vendor, and the case waits, durably and at most the policy's
window, for ``resubmit`` signals carrying new documents, checking each as it arrives -> the policy
flags risk -> legal and finance review in parallel, procurement too for a flagged vendor; all must
approve, and the first rejection (or review nobody decides in time) settles the case and withdraws
the reviews still open -> only then is the vendor created in the ERP (idempotency key) and the
application closed as onboarded. If closing the application fails for good, the new ERP vendor
is deactivated again and the case ends ``failed_compensated``, saying so.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ConfigDict, Field, ValidationError

    from activities.agents.vendor_onboarding import (
        DOCUMENT_CHECKER,
        DOCUMENT_CHECKER_AGENT,
        DocumentExtraction,
        check_extraction,
        task_for,
    )
    from activities.erp_vendors import (
        ErpVendor,
        ErpVendorActivities,
        VendorCreation,
        VendorCreationLookup,
        VendorDeactivation,
    )
    from activities.vendors import (
        ApplicationLookup,
        ApplicationStatusChange,
        DocumentLookup,
        DocumentResubmission,
        VendorApplication,
        VendorDocument,
        VendorPortalActivities,
    )
    from casework import search_attributes as sa
    from casework.audit import AuditKind
    from casework.case import (
        COMPENSATION_RETRY,
        PROPOSALS_CHECKED,
        ApprovalOutcome,
        ApprovalRequest,
        CaseStatus,
        CaseWorkflow,
        failure_message,
        wait_within,
    )
    from casework.case.saga import Saga
    from casework.case.tasks import DecisionAction, HumanTask, TaskStatus
    from casework.converter import validation_problems
    from casework.governance.models import PolicyRef, format_duration
    from casework.systems.notifications import NotificationActivities, NotificationRequest
    from policies.vendor_onboarding import (
        DocumentCheck,
        DocumentVerdict,
        ReviewResult,
        ReviewStatus,
        Settlement,
        VendorOnboardingPolicy,
        Verdict,
        application_refusals,
        bank_account_refusals,
        check_document,
        documents_to_check,
        outstanding,
        resubmission_refusals,
        reviews_for,
        risk_flags,
        settle,
    )

PORTAL_RESUBMISSIONS = "vendor-resubmissions-from-portal"
"""Patch ID: a resubmitted document counts only as the vendor uploaded it to the portal, which
the case reads back by its ID. Cases started before took the signal's copy, which then existed
only in the case's history."""
CLOSED_APPLICATION_STATUSES = frozenset({"onboarded", "rejected", "expired"})
ERP_BANK_ACCOUNT_CHECKED = "erp-bank-account-checked"
"""Patch ID: cases that wrote their vendor to the ERP before the bank account was checked
against the bank's letter replay that write."""
ERP_VENDOR_LOOKED_UP = "erp-vendor-looked-up"
"""Patch ID: a vendor creation that failed for good is looked up in the ERP by its idempotency
key; a vendor created anyway (every answer lost) is taken as created, and the case carries on
with it. Cases that ended "ERP refused" there before, without looking, keep doing so on replay."""
# The sandbox's limit for notes and message bodies.
MAX_TEXT = 2000


class VendorOnboardingInput(BaseModel):
    # Unknown keys are refused so that a misspelt field fails at start, by name.
    model_config = ConfigDict(extra="forbid")

    application_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    submitted_by: str = Field(min_length=1, description="Directory user who opened the case.")
    note: str | None = Field(default=None, max_length=2000)


class VendorStatus(StrEnum):
    """Where a case of this process can stand besides the framework's ``CaseStatus``."""

    ONBOARDED = "onboarded"


class Outcome(StrEnum):
    ONBOARDED = "onboarded"
    REJECTED = "rejected"
    DOCUMENTS_TIMED_OUT = "documents_timed_out"
    REVIEW_TIMED_OUT = "review_timed_out"
    ERP_REFUSED = "erp_refused"
    BANK_ACCOUNT_UNCONFIRMED = "bank_account_unconfirmed"
    """Approved, but the IBAN is invalid or not in the bank's letter: nothing written."""
    FAILED_COMPENSATED = "failed_compensated"


class VendorOnboardingResult(BaseModel):
    case_id: str
    application_id: str
    vendor_name: str
    status: CaseStatus | VendorStatus
    outcome: Outcome
    message: str
    documents: list[DocumentCheck]
    resubmissions: int = 0
    risk_flags: list[str] = []
    reviews: list[ReviewResult] = []
    erp_vendor_id: str | None = None
    compensated: list[str] = []
    compensation_failed: list[str] = []
    policy: PolicyRef


class DocumentRequest(BaseModel):
    """What the case waits for from the vendor, and until when."""

    kinds: list[str]
    due_at: datetime


def checker_context(document: VendorDocument) -> dict[str, Any]:
    """What the document checker is shown. Also what its evaluation on labelled cases shows it
    (``evals/vendor_onboarding.py``)."""
    # Only the document itself: the checker is not told what it is expected to say.
    return {"document": {"document_id": document.document_id, "content": document.content}}


@workflow.defn(name="VendorOnboarding")
class VendorOnboardingWorkflow(CaseWorkflow):
    case_type = "vendor-onboarding"
    description = "check a vendor's documents; all reviews approve; create it in the ERP"
    input_model = VendorOnboardingInput
    business_key = "application_id"
    statuses = VendorStatus

    def __init__(self) -> None:
        super().__init__()
        self._saga = Saga()
        self._application: VendorApplication | None = None
        self._checks: dict[str, DocumentCheck] = {}
        self._documents: dict[str, VendorDocument] = {}
        """The document each check read, by kind: the text an ERP write is checked against."""
        self._waiting_for: DocumentRequest | None = None
        self._received: list[DocumentResubmission] = []
        self._known_documents: set[str] = set()
        self._resubmissions = 0
        self._flags: list[str] = []
        self._reviews: dict[str, asyncio.Task[ApprovalOutcome]] = {}
        self._review_roles: dict[str, str] = {}
        self._reads_back_resubmissions = False

    @workflow.run
    async def run(self, request: VendorOnboardingInput) -> VendorOnboardingResult:
        self._reads_back_resubmissions = workflow.patched(PORTAL_RESUBMISSIONS)
        self.begin(
            request,
            request.submitted_by,
            f"Vendor onboarding {request.application_id}",
            f"{request.submitted_by} opened onboarding for vendor application "
            f"{request.application_id}",
        )
        policy, policy_ref = await self.load_governance(VendorOnboardingPolicy)
        application = await self._retrieve_application(request.application_id)
        try:
            result = await self._onboard_if_all_agree(policy, policy_ref, application)
        except asyncio.CancelledError:
            await self._cancelled()
            raise
        return await self.complete(result)

    async def _onboard_if_all_agree(
        self,
        policy: VendorOnboardingPolicy,
        policy_ref: PolicyRef,
        application: VendorApplication,
    ) -> VendorOnboardingResult:
        if self.patched(PROPOSALS_CHECKED) and (refusals := application_refusals(application)):
            return await self._refuse(policy_ref, application, refusals)
        await self._check_submitted_documents(policy, application)
        if outstanding(self._document_checks()) and not await self._await_documents(
            policy, application
        ):
            return await self._expire(policy, policy_ref, application)

        self._flags = risk_flags(policy, application)
        reviews = reviews_for(policy, self._flags)
        workflow.upsert_search_attributes(
            [sa.CASE_RISK.value_set("high" if self._flags else "low")]
        )
        self.record(
            AuditKind.POLICY_DECISION,
            f"policy {policy_ref}: reviews by {', '.join(reviews)}, all must approve; risk "
            + ("flags: " + "; ".join(self._flags) if self._flags else "flags: none"),
            reviews=reviews,
            risk_flags=self._flags,
        )
        self._facts.update(risk_flags=", ".join(self._flags) or "none", reviews=", ".join(reviews))

        results = await self._run_reviews(policy, application, reviews)
        settlement = settle(results)
        # Every review ran to its end, so the reviews have settled the case one way or another.
        assert settlement is not None
        self.record(
            AuditKind.POLICY_DECISION,
            f"policy {policy_ref}: {settlement.verdict.value} because "
            + "; ".join(settlement.reasons),
            settlement=settlement,
            reviews=results,
        )
        self._facts["reviews"] = ", ".join(f"{r.review} {r.status.value}" for r in results)
        if settlement.verdict is Verdict.ONBOARD:
            # Whatever any agent read and whoever approved: the IBAN written to the ERP is the one
            # the bank's letter states, and a valid one.
            unconfirmed = (
                bank_account_refusals(policy, application, self._documents)
                if workflow.patched(ERP_BANK_ACCOUNT_CHECKED)
                else []
            )
            if unconfirmed:
                return await self._bank_account_unconfirmed(
                    policy_ref, application, results, unconfirmed
                )
            return await self._onboard(policy_ref, application, results)
        if settlement.verdict is Verdict.REJECT:
            return await self._reject(policy_ref, application, results, settlement)
        return await self._hold(policy_ref, application, results, settlement)

    # -- steps ------------------------------------------------------------------------------

    async def _retrieve_application(self, application_id: str) -> VendorApplication:
        application: VendorApplication = await self.call_tool(
            VendorPortalActivities.get_application,
            ApplicationLookup(application_id=application_id),
        )
        if application.status in CLOSED_APPLICATION_STATUSES:
            raise ApplicationError(
                f"vendor application {application_id} is already {application.status}; "
                "nothing to decide",
                type="ApplicationAlreadyClosed",
                non_retryable=True,
            )
        self._application = application
        self._known_documents = {document.document_id for document in application.documents}
        self.record(
            AuditKind.CONTEXT_RETRIEVED,
            f"application {application_id} from {application.vendor_name} "
            f"({application.country}) with {len(application.documents)} document(s)",
            application=application.model_dump(mode="json", exclude={"documents"}),
            documents=[
                {"document_id": d.document_id, "kind": d.kind, "filename": d.filename}
                for d in application.documents
            ],
        )
        self._facts.update(
            application_id=application_id,
            vendor=application.vendor_name,
            country=application.country,
        )
        return application

    async def _check_submitted_documents(
        self, policy: VendorOnboardingPolicy, application: VendorApplication
    ) -> None:
        """Multi-instance: every document is read by its own checker activity, all at once."""
        to_check, missing = documents_to_check(policy, application.documents)
        checks = await asyncio.gather(
            *(self._check(policy, application, document) for document in to_check)
        )
        by_kind = {check.kind: check for check in [*checks, *missing]}
        self._checks = {kind: by_kind[kind] for kind in policy.documents.required}
        counts = {
            verdict: sum(1 for c in self._checks.values() if c.verdict is verdict)
            for verdict in DocumentVerdict
        }
        self.record(
            AuditKind.POLICY_DECISION,
            "documents: "
            + ", ".join(f"{count} {verdict.value}" for verdict, count in counts.items() if count),
            checks=self._document_checks(),
        )
        self._update_document_facts()

    async def _check(
        self,
        policy: VendorOnboardingPolicy,
        application: VendorApplication,
        document: VendorDocument,
    ) -> DocumentCheck:
        extraction, failure = await self._extract(policy, document)
        if extraction is None:
            check = DocumentCheck(
                kind=document.kind,
                document_id=document.document_id,
                verdict=DocumentVerdict.UNVERIFIED,
                reasons=[f"the document checker could not read it ({failure}): check it yourself"],
            )
        else:
            checks = self.check_proposal(
                check_extraction(extraction, document.document_id, document.content)
            )
            check = check_document(
                policy, application, document, extraction, workflow.now().date(), checks
            )
        self._documents[document.kind] = document
        self.record(
            AuditKind.POLICY_DECISION,
            f"document {check.describe()}",
            document_id=document.document_id,
            check=check,
        )
        return check

    async def _extract(
        self, policy: VendorOnboardingPolicy, document: VendorDocument
    ) -> tuple[DocumentExtraction | None, str]:
        consultation = await self.consult(
            DOCUMENT_CHECKER_AGENT,
            checker_context(document),
            settings=DOCUMENT_CHECKER_AGENT.settings_in(policy.agents),
            task=task_for(list(policy.documents.required)),
            describe=lambda extraction: (
                f"read {document.document_id} as {extraction.document_kind} "
                f"with confidence {extraction.confidence:.2f}"
            ),
            failure=f"{DOCUMENT_CHECKER} could not read {document.document_id}",
            activity_summary=f"{DOCUMENT_CHECKER}: {document.document_id} ({document.kind})",
            document_id=document.document_id,
        )
        return consultation.answer, consultation.why_none

    async def _await_documents(
        self, policy: VendorOnboardingPolicy, application: VendorApplication
    ) -> bool:
        """Ask the vendor for what is missing or invalid and check what it resubmits, until
        everything is in order (True) or the policy's window has passed (False)."""
        window = policy.documents.resubmission_window
        due_at = workflow.now() + window
        # Waiting starts now: a resubmission that arrives while the vendor is being written to
        # is already taken.
        self._waiting_for = DocumentRequest(
            kinds=[check.kind for check in outstanding(self._document_checks())], due_at=due_at
        )
        self.set_status(CaseStatus.AWAITING_EXTERNAL)
        await self._tell_vendor(
            application,
            f"Documents needed for your vendor application {application.application_id}",
            "We could not accept these documents:\n"
            + self._outstanding_list()
            + f"\n\nPlease upload them by {due_at:%Y-%m-%d %H:%M} UTC.",
            step="documents-requested",
        )
        while pending := outstanding(self._document_checks()):
            kinds = [check.kind for check in pending]
            self._waiting_for = DocumentRequest(kinds=kinds, due_at=due_at)
            self.set_status(CaseStatus.AWAITING_EXTERNAL)
            remaining = due_at - workflow.now()
            if remaining <= timedelta(0) or not await wait_within(
                lambda: bool(self._received), remaining
            ):
                self._waiting_for = None
                self.record(
                    AuditKind.TASK_TIMED_OUT,
                    f"the vendor did not put {', '.join(kinds)} in order within "
                    f"{format_duration(window)}",
                    kinds=kinds,
                )
                return False
            submission = self._received.pop(0)
            if self._reads_back_resubmissions:
                uploaded = await self._from_portal(application, submission)
                if uploaded is None:
                    continue
                submission = uploaded
            if submission.kind not in kinds:
                # Another resubmission of this kind, queued behind one that put it in order.
                self.ignore_signal(
                    "resubmission",
                    submission.submitted_by or "the vendor",
                    [f"{submission.kind} is already in order"],
                    document_id=submission.document_id,
                )
                continue
            self.set_status(CaseStatus.ANALYSING)
            check = await self._check(policy, application, submission.as_document())
            self._checks[submission.kind] = check
            self._resubmissions += 1
            self._update_document_facts()
            still = outstanding(self._document_checks())
            await self._tell_vendor(
                application,
                f"Document {submission.document_id} "
                + ("accepted" if check.verdict is not DocumentVerdict.INVALID else "not accepted"),
                f"{check.describe()}\n\n"
                + (
                    f"Still needed by {due_at:%Y-%m-%d %H:%M} UTC:\n{self._outstanding_list()}"
                    if still
                    else "All documents are in order; your application goes to review."
                ),
                step=f"document-{submission.document_id}",
            )
        self._waiting_for = None
        return True

    async def _from_portal(
        self, application: VendorApplication, submission: DocumentResubmission
    ) -> DocumentResubmission | None:
        """The document as the vendor uploaded it to the portal, read back by its ID; None
        (recorded and ignored) when the portal does not have it as the current one."""
        sender = submission.submitted_by or "the vendor"
        document_id = submission.document_id
        try:
            uploaded: VendorDocument = await self.call_tool(
                VendorPortalActivities.get_document,
                DocumentLookup(application_id=application.application_id, document_id=document_id),
                summary=f"read document {document_id} back from the vendor portal",
            )
        except ActivityError as error:
            # Not taken: the vendor may upload it and send it again under the same ID.
            self._known_documents.discard(document_id)
            self.ignore_signal(
                "resubmission",
                sender,
                [
                    f"the vendor portal does not confirm document {document_id} "
                    f"({failure_message(error)}); upload it there first"
                ],
                document_id=document_id,
            )
            return None
        if uploaded.superseded_by is not None:
            self.ignore_signal(
                "resubmission",
                sender,
                [f"document {document_id} was replaced in the portal by {uploaded.superseded_by}"],
                document_id=document_id,
            )
            return None
        try:
            document = DocumentResubmission(
                application_id=application.application_id,
                document_id=document_id,
                kind=uploaded.kind,
                filename=uploaded.filename or submission.filename,
                content=uploaded.content,
                submitted_by=submission.submitted_by,
            )
        except ValidationError as error:
            self.ignore_signal(
                "resubmission",
                sender,
                [f"the portal's copy of {document_id} is unusable: {validation_problems(error)}"],
                document_id=document_id,
            )
            return None
        self.record(
            AuditKind.MESSAGE_RECEIVED,
            f"read {uploaded.kind} {document_id} back from the vendor portal "
            f"({uploaded.filename}, {len(uploaded.content)} characters)",
            document_id=document_id,
            document_kind=uploaded.kind,
            filename=uploaded.filename,
            submitted_by=submission.submitted_by,
            accepted=True,
        )
        return document

    async def _run_reviews(
        self, policy: VendorOnboardingPolicy, application: VendorApplication, names: list[str]
    ) -> list[ReviewResult]:
        """Every review at once; the first that does not approve settles the case, and the
        reviews still open are withdrawn then, so the case never waits on a moot decision."""
        self._review_roles = {name: policy.reviews[name].tiers[0].role for name in names}
        summary = self._review_summary(application, names)
        evidence = {
            "documents": [check.model_dump(mode="json") for check in self._document_checks()],
            "risk_flags": self._flags,
        }

        async def review(name: str) -> ApprovalOutcome:
            rule = policy.reviews[name]
            try:
                outcome = await self.request_approval(
                    ApprovalRequest(
                        title=f"{name.capitalize()} review of vendor {application.vendor_name}",
                        summary=summary,
                        evidence={"review": name, **evidence},
                        amount=Decimal(0),
                        currency="",
                        tiers=rule.tiers,
                        start_tier=0,
                        escalate=rule.escalate,
                    )
                )
            except ActivityError as error:
                # This review cannot go on, so neither can the case: the others are moot, and
                # the failure must not wait for them to be decided before it surfaces.
                self._withdraw_reviews(
                    f"the {name} review failed ({failure_message(error)})", settled_by=name
                )
                raise
            settlement = settle(self._review_results())
            if settlement is not None and settlement.verdict is not Verdict.ONBOARD:
                self._withdraw_reviews(
                    "; ".join(settlement.reasons)
                    + ", and onboarding needs every review's approval",
                    settled_by=name,
                )
            return outcome

        self._reviews = {name: asyncio.create_task(review(name)) for name in names}
        # A withdrawn review's task ends cancelled; that is its expected end, not an error.
        ends = await asyncio.gather(*self._reviews.values(), return_exceptions=True)
        for end in ends:
            if isinstance(end, BaseException) and not isinstance(end, asyncio.CancelledError):
                raise end
        for task in self._tasks:
            if task.status is TaskStatus.WITHDRAWN:
                await self.notify_role(
                    task.role,
                    f"No longer needed: {task.title}",
                    "Another review has settled this application; nothing to decide.",
                    step=f"{task.task_id}-withdrawn",
                )
        return self._review_results()

    def _withdraw_reviews(self, why: str, settled_by: str) -> None:
        for name, running in self._reviews.items():
            if name == settled_by or running.done():
                continue
            running.cancel()
            for task in self._tasks_of(name):
                if task.status is TaskStatus.OPEN:
                    self._withdraw(task, why)

    def _withdraw(self, task: HumanTask, why: str) -> None:
        task.status = TaskStatus.WITHDRAWN
        self.record(
            AuditKind.POLICY_DECISION,
            f"withdrew the {task.evidence.get('review', task.title)} review of {task.role} "
            f"({task.task_id}) undecided: {why}",
            task_id=task.task_id,
            role=task.role,
        )

    def _tasks_of(self, review: str) -> list[HumanTask]:
        return [task for task in self._tasks if task.evidence.get("review") == review]

    def _review_results(self) -> list[ReviewResult]:
        results = []
        for name, role in self._review_roles.items():
            tasks = self._tasks_of(name)
            if not tasks:
                results.append(ReviewResult(review=name, role=role, status=ReviewStatus.PENDING))
                continue
            task = tasks[-1]
            decision = task.decision
            if decision is not None:
                status = (
                    ReviewStatus.APPROVED
                    if decision.action == DecisionAction.APPROVE
                    else ReviewStatus.REJECTED
                )
            else:
                status = {
                    TaskStatus.TIMED_OUT: ReviewStatus.TIMED_OUT,
                    TaskStatus.WITHDRAWN: ReviewStatus.WITHDRAWN,
                }.get(task.status, ReviewStatus.PENDING)
            results.append(
                ReviewResult(
                    review=name,
                    role=task.role,
                    status=status,
                    task_id=task.task_id,
                    decided_by=decision.approver if decision else None,
                    comment=decision.comment if decision else None,
                )
            )
        return results

    # -- outcomes ---------------------------------------------------------------------------

    async def _onboard(
        self, policy_ref: PolicyRef, application: VendorApplication, reviews: list[ReviewResult]
    ) -> VendorOnboardingResult:
        self.set_status(CaseStatus.EXECUTING)
        approvers = [review.decided_by for review in reviews if review.decided_by]
        try:
            vendor: ErpVendor = await self.call_tool(
                ErpVendorActivities.create_vendor,
                VendorCreation(
                    name=application.vendor_name,
                    country=application.country,
                    tax_id=application.tax_id,
                    bank_account=application.bank_account,
                    contact_email=application.contact_email,
                    application_id=application.application_id,
                    approved_by=approvers,
                    documents=[c.document_id for c in self._document_checks() if c.document_id],
                    idempotency_key=self.idempotency_key("erp-vendor"),
                ),
                summary=f"created {application.vendor_name} in the ERP vendor master",
            )
        except ActivityError as error:
            if not workflow.patched(ERP_VENDOR_LOOKED_UP):
                return await self._erp_refused(policy_ref, application, reviews, error)
            try:
                found = await self._created_anyway(application)
            except ActivityError:
                return await self._erp_refused(
                    policy_ref, application, reviews, error, erp_unreadable=True
                )
            if found is None:
                return await self._erp_refused(policy_ref, application, reviews, error)
            vendor = found
        self._saga.add(
            f"ERP vendor {vendor.vendor_id} deactivated",
            lambda: self.call_tool(
                ErpVendorActivities.deactivate_vendor,
                VendorDeactivation(
                    vendor_id=vendor.vendor_id,
                    reason=f"case {workflow.info().workflow_id} could not complete",
                    idempotency_key=self.idempotency_key("erp-vendor-deactivation"),
                ),
                retry_policy=COMPENSATION_RETRY,
            ),
        )
        self._facts["erp_vendor_id"] = vendor.vendor_id
        try:
            await self.call_tool(
                VendorPortalActivities.set_application_status,
                ApplicationStatusChange(
                    application_id=application.application_id,
                    status="onboarded",
                    note=_clip(f"approved by {', '.join(approvers)}"),
                    erp_vendor_id=vendor.vendor_id,
                    idempotency_key=self.idempotency_key("application-onboarded"),
                ),
                summary=f"application {application.application_id} set onboarded in the portal",
            )
        except ActivityError as error:
            return await self._fail_compensated(policy_ref, application, reviews, error)
        message = f"onboarded as ERP vendor {vendor.vendor_id}; approved by {', '.join(approvers)}"
        self.set_status(VendorStatus.ONBOARDED)
        await self._tell_vendor(
            application,
            f"Welcome: {application.vendor_name} is an approved vendor",
            f"Your vendor number is {vendor.vendor_id}.",
            step="onboarded",
        )
        await self.notify(
            self._requested_by, f"Vendor {application.vendor_name} onboarded", message, "onboarded"
        )
        return self._result(
            policy_ref,
            application,
            VendorStatus.ONBOARDED,
            Outcome.ONBOARDED,
            message,
            reviews=reviews,
            erp_vendor_id=vendor.vendor_id,
        )

    async def _reject(
        self,
        policy_ref: PolicyRef,
        application: VendorApplication,
        reviews: list[ReviewResult],
        settlement: Settlement,
    ) -> VendorOnboardingResult:
        message = "rejected: " + "; ".join(settlement.reasons) + "; no ERP vendor created"
        await self._close_application(application, "rejected", message)
        ending = await self.close_rejected(
            message,
            letter=lambda: self._tell_vendor(
                application,
                f"Your vendor application {application.application_id} was not approved",
                "We cannot onboard you as a vendor at this time.",
                step="rejected",
            ),
            tell_submitter=f"Vendor {application.vendor_name} rejected",
        )
        return self._result(
            policy_ref, application, ending.status, Outcome.REJECTED, message, reviews=reviews
        )

    async def _hold(
        self,
        policy_ref: PolicyRef,
        application: VendorApplication,
        reviews: list[ReviewResult],
        settlement: Settlement,
    ) -> VendorOnboardingResult:
        message = "on hold: " + "; ".join(settlement.reasons) + "; no ERP vendor created"
        await self._close_application(application, "on_hold", message)
        self.set_status(CaseStatus.ON_HOLD)
        await self.notify(
            self._requested_by, f"Vendor {application.vendor_name} on hold", message, "on-hold"
        )
        return self._result(
            policy_ref,
            application,
            CaseStatus.ON_HOLD,
            Outcome.REVIEW_TIMED_OUT,
            message,
            reviews=reviews,
        )

    async def _expire(
        self,
        policy: VendorOnboardingPolicy,
        policy_ref: PolicyRef,
        application: VendorApplication,
    ) -> VendorOnboardingResult:
        window = format_duration(policy.documents.resubmission_window)
        message = (
            f"rejected: the vendor did not put its documents in order within {window} ("
            + "; ".join(check.describe() for check in outstanding(self._document_checks()))
            + "); application expired"
        )
        await self._close_application(application, "expired", message)
        self.set_status(CaseStatus.REJECTED)
        await self._tell_vendor(
            application,
            f"Your vendor application {application.application_id} expired",
            "We did not receive the documents we asked for in time:\n" + self._outstanding_list(),
            step="expired",
        )
        await self.notify(
            self._requested_by, f"Vendor {application.vendor_name} expired", message, "expired"
        )
        return self._result(
            policy_ref,
            application,
            CaseStatus.REJECTED,
            Outcome.DOCUMENTS_TIMED_OUT,
            message,
        )

    async def _created_anyway(self, application: VendorApplication) -> ErpVendor | None:
        """After a vendor creation that failed for good, the ERP says whether it went through
        anyway; raises ``ActivityError`` when the ERP cannot be read."""
        key = self.idempotency_key("erp-vendor")
        return await self.made_anyway(
            ErpVendorActivities.find_created_vendor,
            VendorCreationLookup(idempotency_key=key),
            write=f"creating {application.vendor_name} in the ERP",
            idempotency_key=key,
            pick=lambda vendor: vendor,
            summary=f"looked up the ERP vendor for {application.application_id} after it failed",
        )

    async def _erp_refused(
        self,
        policy_ref: PolicyRef,
        application: VendorApplication,
        reviews: list[ReviewResult],
        error: ActivityError,
        erp_unreadable: bool = False,
    ) -> VendorOnboardingResult:
        """Approved, but the ERP would not create the vendor (a vendor with this tax ID exists
        already, say): nothing was written, and a person has to sort it out. When the ERP could
        not be read afterwards either, the vendor may exist after all: the message says where
        to look."""
        why = f"the ERP did not create the vendor ({failure_message(error)})"
        written = (
            "whether it did after all could not be read: check the ERP for "
            + self.idempotency_key("erp-vendor")
            if erp_unreadable
            else "nothing was written"
        )
        return await self._not_written(
            policy_ref, application, reviews, why, Outcome.ERP_REFUSED, written
        )

    async def _bank_account_unconfirmed(
        self,
        policy_ref: PolicyRef,
        application: VendorApplication,
        reviews: list[ReviewResult],
        reasons: list[str],
    ) -> VendorOnboardingResult:
        """Approved, but the IBAN is not one the ERP may pay to: it is not written."""
        self.record(
            AuditKind.POLICY_DECISION,
            f"policy {policy_ref}: the IBAN is not written to the ERP because "
            + "; ".join(reasons),
            reasons=reasons,
        )
        return await self._not_written(
            policy_ref,
            application,
            reviews,
            "the IBAN is not confirmed (" + "; ".join(reasons) + ")",
            Outcome.BANK_ACCOUNT_UNCONFIRMED,
        )

    async def _not_written(
        self,
        policy_ref: PolicyRef,
        application: VendorApplication,
        reviews: list[ReviewResult],
        why: str,
        outcome: Outcome,
        written: str = "nothing was written",
    ) -> VendorOnboardingResult:
        message = f"approved, but {why}; {written}; the application is on hold for a person"
        await self._close_application(application, "on_hold", message)
        self.set_status(CaseStatus.FAILED_NEEDS_ATTENTION)
        await self.notify(
            self._requested_by, f"Vendor {application.vendor_name} needs attention", message, "erp"
        )
        return self._result(
            policy_ref,
            application,
            CaseStatus.FAILED_NEEDS_ATTENTION,
            outcome,
            message,
            reviews=reviews,
        )

    async def _refuse(
        self, policy_ref: PolicyRef, application: VendorApplication, reasons: list[str]
    ) -> VendorOnboardingResult:
        """An application no document can put right (an invalid IBAN): rejected at once."""
        settlement = Settlement(verdict=Verdict.REJECT, reasons=reasons)
        self.record(
            AuditKind.POLICY_DECISION,
            f"policy {policy_ref}: reject because " + "; ".join(reasons),
            settlement=settlement,
        )
        return await self._reject(policy_ref, application, [], settlement)

    async def _fail_compensated(
        self,
        policy_ref: PolicyRef,
        application: VendorApplication,
        reviews: list[ReviewResult],
        error: ActivityError,
    ) -> VendorOnboardingResult:
        ending = await self.fail_compensated(
            self._saga,
            error,
            failed=f"closing application {application.application_id} as onboarded",
            reason="closing the application failed",
        )
        await self.notify(
            self._requested_by, f"Vendor {application.vendor_name} failed", ending.message, "failed"
        )
        return self._result(
            policy_ref,
            application,
            ending.status,
            Outcome.FAILED_COMPENSATED,
            ending.message,
            reviews=reviews,
            compensated=ending.compensated,
            compensation_failed=ending.compensation_failed,
        )

    async def _cancelled(self) -> None:
        """A cancelled case withdraws what people were asked and undoes what it wrote."""
        for task in self.open_tasks():
            self._withdraw(task, "the case was cancelled")
        self._waiting_for = None
        self.record_cancellation(await self.compensate(self._saga, "the case was cancelled"))

    # -- helpers ----------------------------------------------------------------------------

    async def _close_application(
        self, application: VendorApplication, status: str, note: str
    ) -> None:
        await self.call_tool(
            VendorPortalActivities.set_application_status,
            ApplicationStatusChange(
                application_id=application.application_id,
                status=status,
                note=_clip(note),
                idempotency_key=self.idempotency_key(f"application-{status}"),
            ),
            summary=f"application {application.application_id} set {status} in the portal",
        )

    async def _tell_vendor(
        self, application: VendorApplication, subject: str, body: str, step: str
    ) -> None:
        """The vendor is not in the directory: write to the application's contact address."""
        await self.call_tool(
            NotificationActivities.send,
            NotificationRequest(
                to=application.contact_email,
                subject=_clip(subject),
                body=_clip(body),
                case_id=workflow.info().workflow_id,
                idempotency_key=self.idempotency_key(f"notify:{step}:vendor"),
            ),
            summary=f"wrote to the vendor: {subject}",
        )

    def _document_checks(self) -> list[DocumentCheck]:
        return list(self._checks.values())

    def _outstanding_list(self) -> str:
        return "\n".join(f"- {check.describe()}" for check in outstanding(self._document_checks()))

    def _update_document_facts(self) -> None:
        self._facts["documents"] = "; ".join(
            f"{check.kind} {check.verdict.value}" for check in self._document_checks()
        )

    def _review_summary(self, application: VendorApplication, names: list[str]) -> str:
        lines = [
            f"Vendor {application.vendor_name} ({application.country}), tax ID "
            f"{application.tax_id}, IBAN {application.bank_account}, application "
            f"{application.application_id}.",
            "Documents:",
            *(f"- {check.describe()}" for check in self._document_checks()),
            "Risk flags: " + ("; ".join(self._flags) if self._flags else "none"),
            f"Reviews in parallel: {', '.join(names)}. All must approve; the first rejection "
            "settles the application.",
        ]
        return "\n".join(lines)

    def _result(
        self,
        policy_ref: PolicyRef,
        application: VendorApplication,
        status: CaseStatus | VendorStatus,
        outcome: Outcome,
        message: str,
        **fields: Any,
    ) -> VendorOnboardingResult:
        return VendorOnboardingResult(
            case_id=workflow.info().workflow_id,
            application_id=application.application_id,
            vendor_name=application.vendor_name,
            status=status,
            outcome=outcome,
            message=message,
            documents=self._document_checks(),
            resubmissions=self._resubmissions,
            risk_flags=self._flags,
            policy=policy_ref,
            **fields,
        )

    # -- people and the vendor --------------------------------------------------------------

    def waiting_on(self) -> str | None:
        request = self._waiting_for
        if request is None:
            return super().waiting_on()
        kind = request.kinds[0] if len(request.kinds) == 1 else "KIND"
        return (
            f"the vendor's resubmission of {', '.join(request.kinds)} by "
            f"{request.due_at:%Y-%m-%d %H:%M} UTC: casework resubmit "
            f"{workflow.info().workflow_id} --kind {kind} --file PATH"
        )

    @workflow.signal(name="resubmit")
    def resubmit(self, *payloads: Any) -> None:
        """A document from the vendor: one ``DocumentResubmission``.

        Typed loosely on purpose: a payload that failed to decode would be dropped by the SDK
        before any handler saw it, and a signal with no payload (or two) would fail every
        workflow task of the case; this way a malformed one is recorded and ignored, with why.
        """
        if len(payloads) != 1:
            self.ignore_signal(
                "resubmission",
                "the vendor",
                [f"expected one DocumentResubmission, got {len(payloads)} payloads"],
            )
            return
        payload = payloads[0]
        sender = _field(payload, "submitted_by") or "the vendor"
        document_id = _field(payload, "document_id")
        try:
            submission = DocumentResubmission.model_validate(payload)
        except ValidationError as error:
            self.ignore_signal(
                "resubmission",
                sender,
                [f"invalid DocumentResubmission: {validation_problems(error)}"],
                document_id=document_id,
            )
            return
        if self._application is None:
            reasons = ["the case has not read its application yet"]
        else:
            reasons = resubmission_refusals(
                submission,
                self._application.application_id,
                self._waiting_for.kinds if self._waiting_for else None,
                self._known_documents,
            )
        if self.ignore_signal(
            "resubmission", sender, reasons, document_id=document_id, document_kind=submission.kind
        ):
            return
        self._known_documents.add(submission.document_id)
        self._received.append(submission)
        self.record(
            AuditKind.MESSAGE_RECEIVED,
            f"{sender} resubmitted {submission.kind} {submission.document_id} "
            f"({submission.filename}, {len(submission.content)} characters)"
            + ("; it counts as the vendor portal has it" if self._reads_back_resubmissions else ""),
            document_id=submission.document_id,
            document_kind=submission.kind,
            filename=submission.filename,
            submitted_by=submission.submitted_by,
            **({"confirming": True} if self._reads_back_resubmissions else {}),
        )


def _field(payload: Any, name: str) -> str | None:
    value = payload.get(name) if isinstance(payload, dict) else None
    return value if isinstance(value, str) else None


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."
