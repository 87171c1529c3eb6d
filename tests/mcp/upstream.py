#!/usr/bin/env python3
"""clawgate test upstream: an MCPServer (mcp SDK 2.3.0) over streamable HTTP.

One endpoint, /mcp, serves both protocol eras at once. The SDK's
StreamableHTTPSessionManager routes on the MCP-Protocol-Version request header:
absent or a handshake-era version (2025-11-25, ...) -> the stateful
2025 transport (initialize, Mcp-Session-Id, GET stream, DELETE); any other value
(2026-07-28) -> the stateless single-exchange entry (mcp/server/_streamable_http_modern.py).

Prints exactly one line `READY http://127.0.0.1:PORT/mcp` to stdout when listening.
Everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import time

sys.dont_write_bytecode = True  # keep tests/mcp free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import uvicorn  # noqa: E402
from mcp.server.transport_security import TransportSecuritySettings  # noqa: E402
from starlette.types import ASGIApp, Receive, Scope, Send  # noqa: E402

from tools import build_server, log  # noqa: E402


class GateMiddleware:
    """Pure-ASGI wrapper: optional request log (JSON lines) and optional bearer check."""

    def __init__(self, app: ASGIApp, bearer: str | None, request_log: str | None) -> None:
        self.app = app
        self.expected = f"Bearer {bearer}".encode() if bearer is not None else None
        self.request_log = request_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        log(f"{scope['method']} {scope['path']} " + " ".join(f"{k}={v!r}" for k, v in headers if k.startswith("mcp-")))
        if self.request_log:
            with open(self.request_log, "a", encoding="utf-8") as f:
                f.write(json.dumps({"method": scope["method"], "path": scope["path"], "headers": headers}) + "\n")
        if self.expected is not None:
            got = dict(scope["headers"]).get(b"authorization")
            if got != self.expected:
                log(f"401: bad/missing Authorization ({'absent' if got is None else 'mismatch'})")
                body = b'{"error":"unauthorized"}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"www-authenticate", b'Bearer realm="clawgate-test-upstream"'),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = pick a free one)")
    p.add_argument("--ran-log", help="append `<tool> <json args>` here whenever a tool runs")
    p.add_argument("--require-bearer", metavar="TOKEN", help="401 unless `Authorization: Bearer TOKEN`")
    p.add_argument("--request-log", metavar="PATH", help="append one JSON line {method,path,headers} per HTTP request")
    p.add_argument("--json-response", action="store_true", help="legacy era: answer POSTs with application/json, not SSE")
    p.add_argument(
        "--allow-any-host", action="store_true", help="disable the SDK's DNS-rebinding Host/Origin checks (421/403)"
    )
    args = p.parse_args()
    t0 = time.monotonic()

    server = build_server(args.ran_log)
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False) if args.allow_any_host else None
    app = server.streamable_http_app(
        streamable_http_path="/mcp",
        json_response=args.json_response,
        transport_security=security,  # None -> SDK default: Host must be 127.0.0.1:*/localhost:*/[::1]:*
        host="127.0.0.1",
    )
    wrapped = GateMiddleware(app, args.require_bearer, args.request_log)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    port = sock.getsockname()[1]

    config = uvicorn.Config(
        wrapped, log_level="warning", lifespan="on", timeout_graceful_shutdown=1, access_log=False
    )
    userver = uvicorn.Server(config)
    task = asyncio.create_task(userver.serve(sockets=[sock]))
    while not userver.started:
        if task.done():
            await task
            sys.exit("uvicorn exited before startup")
        await asyncio.sleep(0.01)
    print(f"READY http://127.0.0.1:{port}/mcp", flush=True)
    log(f"upstream listening on 127.0.0.1:{port} (startup {time.monotonic() - t0:.2f}s)")
    await task


if __name__ == "__main__":
    asyncio.run(main())
