"""Loading policy documents. An activity so the exact text a case decides under is in history."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from casework.policies.loader import PolicyNotFoundError, load_policy
from casework.policies.models import PolicyDocument

POLICY_INVALID = "PolicyInvalid"


class PolicyLookup(BaseModel):
    policy_id: str


@activity.defn(name="policies.load")
async def load(lookup: PolicyLookup) -> PolicyDocument:
    try:
        return load_policy(lookup.policy_id)
    except (PolicyNotFoundError, ValueError) as error:
        raise ApplicationError(str(error), type=POLICY_INVALID, non_retryable=True) from error
