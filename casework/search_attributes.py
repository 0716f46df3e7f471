"""casework's custom search attributes: what makes the approval backlog a visibility query.

Shared by workflows (which upsert them), the CLI (which queries them) and the embedded stack
(which registers them with the dev server).
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

CASE_TYPE = SearchAttributeKey.for_keyword("CaseType")
CASE_STATUS = SearchAttributeKey.for_keyword("CaseStatus")
APPROVER_ROLE = SearchAttributeKey.for_keyword("ApproverRole")
CASE_AMOUNT = SearchAttributeKey.for_float("CaseAmount")
CASE_RISK = SearchAttributeKey.for_keyword("CaseRisk")

ALL: tuple[SearchAttributeKey, ...] = (
    CASE_TYPE,
    CASE_STATUS,
    APPROVER_ROLE,
    CASE_AMOUNT,
    CASE_RISK,
)

_CLI_TYPE_NAMES = {"KEYWORD": "Keyword", "DOUBLE": "Double"}


def dev_server_flags() -> list[str]:
    """``--search-attribute Name=Type`` flags for ``temporal server start-dev``."""
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}={_CLI_TYPE_NAMES[key.indexed_value_type.name]}"]
    return flags
