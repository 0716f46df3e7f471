"""A small MCP server over stdio for the MCP tests: one tool it marks read-only, one it does
not mark at all (as most servers' tools are), built with the official SDK.

    python -m tests.mcp_support
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("casework-test-server")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def shout(text: str) -> str:
    """Say the text louder."""
    return text.upper()


@server.tool()
def whisper(text: str) -> str:
    """Say the text quietly. The server says nothing about whether it changes anything."""
    return text.lower()


if __name__ == "__main__":
    server.run("stdio")
