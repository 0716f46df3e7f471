"""casework's custom search attributes: what makes the approval backlog a visibility query.

Shared by workflows (which upsert them), the CLI (which queries them) and the embedded stack
(which registers them with the dev server).
"""

from __future__ import annotations

from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

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
        flags += [
            "--search-attribute",
            f"{key.name}={_CLI_TYPE_NAMES[key.indexed_value_type.name]}",
        ]
    return flags


async def register(client: Client, namespace: str) -> None:
    """Register the attributes on a server that lacks them (a fresh cluster, the test server).

    The embedded dev server gets them from ``dev_server_flags()`` at start instead.
    """
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        existing = set(listed.custom_attributes)
    except RPCError as error:
        # The time-skipping test server can add attributes but not list them.
        if error.status is not RPCStatusCode.UNIMPLEMENTED:
            raise
        existing = set()
    missing = {key.name: key.indexed_value_type for key in ALL if key.name not in existing}
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
