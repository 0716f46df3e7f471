"""MCP tools: an agent's tools may come from Model Context Protocol servers a policy names.

Two activities, worker-side (they import the ``mcp`` SDK; workflows refer to them by name):
``mcp.list_tools`` lists a server's tools when a region starts, and ``mcp.call_tool`` makes one
call. The agent region treats an MCP tool as it treats a native one: allowlisted by the policy,
read-only only (the server's ``readOnlyHint``, or the policy's word), arguments checked against
the tool's schema before anything is sent, each call its own activity, counted against the
budget, masked on its way to the model, and in the audit trail.

Each activity opens its own session and closes it: an activity may run on any worker, so no
connection (nor a stdio server process) outlives the call that needed it. That costs a
handshake (and, over stdio, a process start) per call; it buys calls that retry, time out and
resume like every other activity. A server that needs a session across calls is not supported.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx2
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from temporalio import activity
from temporalio.exceptions import ApplicationError

from casework.agents.messages import (
    McpCallRequest,
    McpCallResult,
    McpToolInfo,
    McpToolList,
    McpToolsRequest,
)
from casework.governance.models import McpServerSettings

MCP_TIMEOUT = timedelta(seconds=60)
_VARIABLE = re.compile(r"\$\{(\w+)\}")


class McpActivities:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        """``env``: where ``${NAME}`` in a server's URL and ``headers_from_env`` are looked up
        (default: the worker's environment)."""
        self._env = os.environ if env is None else env

    @activity.defn(name="mcp.list_tools")
    async def list_tools(self, request: McpToolsRequest) -> McpToolList:
        async with self._session(request.server, request.settings) as session:
            listed = await session.list_tools()
        return McpToolList(
            server=request.server,
            tools=[
                McpToolInfo(
                    name=tool.name,
                    description=" ".join((tool.description or tool.name).split()),
                    input_schema=dict(tool.input_schema),
                    read_only_hint=tool.annotations.read_only_hint if tool.annotations else None,
                )
                for tool in listed.tools
            ],
        )

    @activity.defn(name="mcp.call_tool")
    async def call_tool(self, request: McpCallRequest) -> McpCallResult:
        async with self._session(request.server, request.settings) as session:
            result = await session.call_tool(request.tool, request.arguments)
        if result.structured_content is not None:
            content: Any = result.structured_content
        else:
            text = "\n".join(getattr(block, "text", "") for block in result.content)
            try:
                content = json.loads(text)
            except json.JSONDecodeError:
                content = text
        return McpCallResult(is_error=bool(result.is_error), content=content)

    @asynccontextmanager
    async def _session(self, server: str, settings: McpServerSettings) -> AsyncIterator[Any]:
        try:
            async with self._streams(server, settings) as streams:
                read, write = streams[0], streams[1]
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    yield session
        except ApplicationError:
            raise
        except (OSError, httpx2.HTTPError) as error:
            # The server is down or unreachable: another attempt may find it up.
            raise ApplicationError(
                f"MCP server {server!r} unreachable: {error}", type="McpUnavailable"
            ) from error

    @asynccontextmanager
    async def _streams(self, server: str, settings: McpServerSettings) -> AsyncIterator[Any]:
        if settings.command is not None:
            parameters = StdioServerParameters(command=settings.command, args=settings.args)
            async with stdio_client(parameters) as streams:
                yield streams
            return
        url = _VARIABLE.sub(lambda m: self._variable(server, m.group(1)), settings.url or "")
        headers = {
            header: self._variable(server, variable)
            for header, variable in settings.headers_from_env.items()
        }
        timeout = httpx2.Timeout(30.0, read=MCP_TIMEOUT.total_seconds())
        async with (
            httpx2.AsyncClient(headers=headers, timeout=timeout, trust_env=False) as http,
            streamable_http_client(url, http_client=http) as streams,
        ):
            yield streams

    def _variable(self, server: str, name: str) -> str:
        value = self._env.get(name)
        if not value:
            raise ApplicationError(
                f"MCP server {server!r} needs the environment variable {name}, which the worker "
                "does not have",
                type="McpMisconfigured",
                non_retryable=True,
            )
        return value
