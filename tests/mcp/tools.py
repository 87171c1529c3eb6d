"""Shared tool definitions for the clawgate MCP test peers (upstream.py, stdio_server.py).

Every tool, when it actually runs, appends one line `<toolname> <json args>` to the
--ran-log file (if given), so a test can prove that a denied call never reached the upstream.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

SERVER_NAME = "clawgate-test-upstream"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build_server(ran_log: str | None, name: str = SERVER_NAME) -> MCPServer:
    """Return an MCPServer with the test tools registered."""
    server = MCPServer(name=name, version="1.0.0", log_level="WARNING")

    def ran(tool: str, args: dict[str, Any]) -> None:
        log(f"tool ran: {tool} {json.dumps(args, sort_keys=True)}")
        if ran_log:
            with open(ran_log, "a", encoding="utf-8") as f:
                f.write(f"{tool} {json.dumps(args, sort_keys=True)}\n")

    @server.tool(description="Echo the given text back.")
    def echo(text: str) -> str:
        ran("echo", {"text": text})
        return text

    @server.tool(description="Add two integers.")
    def add(a: int, b: int) -> int:
        ran("add", {"a": a, "b": b})
        return a + b

    @server.tool(description="Drop a database (dangerous; the gateway policy denies it).")
    def drop_database(name: str) -> str:
        ran("drop_database", {"name": name})
        return f"dropped database {name}"

    @server.tool(description="Deploy a service (the gateway policy requires approval).")
    def deploy(service: str) -> str:
        ran("deploy", {"service": service})
        return f"deployed {service}"

    # structured_output=False: one copy of the payload (a structured tool would repeat it in structuredContent).
    @server.tool(description="Return exactly kb KiB (kb*1024 ASCII chars) of text.", structured_output=False)
    def big(kb: int) -> str:
        ran("big", {"kb": kb})
        pattern = "0123456789abcdefghijklmnopqrstuvwxyz\n"
        n = max(kb, 0) * 1024
        return (pattern * (n // len(pattern) + 1))[:n]

    @server.tool(description="Sleep ms milliseconds, then return.")
    async def slow(ms: int) -> str:
        ran("slow", {"ms": ms})
        await anyio.sleep(max(ms, 0) / 1000)
        return f"slept {ms}ms"

    @server.tool(description="Always fails: returns a tool result with isError=true.")
    def fail(message: str) -> str:
        ran("fail", {"message": message})
        raise ToolError(message)

    return server
