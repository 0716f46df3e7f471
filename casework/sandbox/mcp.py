"""The sandbox's read-only lookups over MCP (streamable HTTP, at ``/mcp``).

The tools are the catalogue's read-only tools (``@read_only_tool``), with the same names,
descriptions and argument schemas agents get natively, each marked ``readOnlyHint``; a call runs
the same lookup over the sandbox's own HTTP API, in process. So a policy may give an agent the
sandbox's lookups as MCP tools, and the demo makes real MCP round trips.

Stateless and answering in JSON: each request stands alone, as each ``mcp.call_tool`` activity
opens a session of its own. The endpoint checks no Host header (the MCP SDK's DNS-rebinding
guard): the sandbox is a stand-in served on loopback or inside a deployment's own network,
under whatever name that network gives it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import BaseModel, ValidationError
from temporalio.exceptions import ApplicationError

from casework.agents.tools import READ_ONLY, Tool
from casework.catalogue import discover
from casework.converter import validation_problems

MCP_PATH = "/mcp"


@dataclass(frozen=True)
class McpEndpoint:
    manager: StreamableHTTPSessionManager
    """Its ``run()`` must be open while the app serves (the sandbox app's lifespan)."""
    app: StreamableHTTPASGIApp


def lookup_endpoint(sandbox: Any) -> McpEndpoint:
    """An MCP endpoint serving the read-only lookups of the catalogue's systems, each answered
    by ``sandbox`` (the sandbox's ASGI app) in process."""
    catalogue = discover()
    owners = {
        activity: system
        for system in catalogue.systems
        for _, activity, _ in system.read_only_tools()
    }
    tools = {name: tool for name, tool in READ_ONLY.items() if tool.activity in owners}
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox), base_url="http://sandbox")

    async def list_tools(
        context: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[
                types.Tool(
                    name=name,
                    description=tool.description,
                    input_schema=tool.arguments.model_json_schema(),
                    annotations=types.ToolAnnotations(read_only_hint=True),
                )
                for name, tool in sorted(tools.items())
            ]
        )

    async def call_tool(context: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        tool = tools.get(params.name)
        if tool is None:
            return _error(f"no tool {params.name!r}")
        try:
            arguments = tool.arguments.model_validate(params.arguments or {})
        except ValidationError as error:
            return _error(f"invalid arguments: {validation_problems(error, 5)}")
        try:
            result = await _lookup(owners[tool.activity](http), tool, arguments)
        except ApplicationError as error:
            return _error(f"{error.type}: {error.message}" if error.type else error.message)
        text = json.dumps(_jsonable(result), ensure_ascii=False)
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])

    server: Server[Any] = Server(
        "casework-sandbox", on_list_tools=list_tools, on_call_tool=call_tool
    )
    manager = StreamableHTTPSessionManager(
        app=server,
        json_response=True,
        stateless=True,
        security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    return McpEndpoint(manager=manager, app=StreamableHTTPASGIApp(manager))


async def _lookup(system: Any, tool: Tool, arguments: BaseModel) -> Any:
    for method in system.activities():
        if getattr(method, "__temporal_activity_definition").name == tool.activity:
            return await method(arguments)
    raise LookupError(tool.activity)


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    return value


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)], is_error=True
    )
