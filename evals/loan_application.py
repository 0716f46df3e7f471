"""The income reader on labelled loan applications: shown what the workflow shows it (the
documents no payroll feed covers, the applicant's replies), its figure checked by
``check_income_reading`` and the application decided by ``decide_loan``, as the workflow
decides it before any request for more information."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from activities.agents.loan_application import INCOME_READER_AGENT, IncomeReading
from activities.credit_bureau import CreditReport
from activities.lending import CustomerReply, IncomeDocument, LoanApplication
from casework.eval.hooks import AgentEval, RouteQuestion
from policies.loan_application import (
    LoanApplicationPolicy,
    check_income_reading,
    decide_loan,
    non_standard_documents,
)
from workflows.loan_application import reader_context


class IncomeCase(BaseModel):
    application: LoanApplication
    credit_report: CreditReport | None = None
    """None: the bureau has not answered (yet)."""
    replies: list[CustomerReply] = []

    def documents(self) -> list[IncomeDocument]:
        """The application's documents and those its replies brought, as the workflow has them."""
        return [
            *self.application.documents,
            *(document for reply in self.replies for document in reply.documents),
        ]


def _context(case: dict[str, Any], policy: LoanApplicationPolicy | None) -> dict[str, Any]:
    assert policy is not None
    income = IncomeCase.model_validate(case)
    unread = non_standard_documents(policy, income.documents())
    return reader_context(income.application, unread, income.replies)


def _route(question: RouteQuestion[LoanApplicationPolicy, IncomeReading]) -> str:
    income = IncomeCase.model_validate(question.input)
    documents = income.documents()
    reading = question.answer
    decision = decide_loan(
        question.policy,
        question.ref,
        income.application,
        documents,
        income.credit_report,
        reading,
        report_missing_reason="" if income.credit_report else "no credit bureau report yet",
        reading_problem="" if reading is not None else "no valid reading",
        information_requests=len(income.replies),
        reading_checks=(
            check_income_reading(question.policy, income.application, documents, reading)
            if reading is not None
            else None
        ),
    )
    return decision.route.value + (f":{decision.role}" if decision.role else "")


INCOME_READER_EVAL = AgentEval(
    agent=INCOME_READER_AGENT,
    policy=LoanApplicationPolicy,
    context=_context,
    route=_route,
)
