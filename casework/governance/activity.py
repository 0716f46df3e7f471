"""Loading policy documents. An activity so the exact text a case decides under is in history."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from casework.config import Settings
from casework.governance.loader import PolicyNotFoundError, load_policy
from casework.governance.models import DIRECTORY_ID, PolicyDocument
from casework.signing_keys import SigningKeyError, load_public_keys

POLICY_INVALID = "PolicyInvalid"
DECISION_KEYS_MISSING = "DecisionKeysMissing"


class PolicyLookup(BaseModel):
    policy_id: str


@activity.defn(name="policies.load")
async def load(lookup: PolicyLookup) -> PolicyDocument:
    """The policy document; the directory comes with its users' public decision keys, read from
    the worker's key file, so each case verifies decisions against the keys it started with."""
    try:
        document = load_policy(lookup.policy_id)
    except (PolicyNotFoundError, ValueError) as error:
        raise ApplicationError(str(error), type=POLICY_INVALID, non_retryable=True) from error
    if lookup.policy_id != DIRECTORY_ID:
        return document
    try:
        keys = load_public_keys(Settings.from_env().state_dir)
    except SigningKeyError as error:
        raise ApplicationError(
            str(error), type=DECISION_KEYS_MISSING, non_retryable=True
        ) from error
    return document.model_copy(update={"content": document.content | {"public_keys": keys}})
