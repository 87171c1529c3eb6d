#!/usr/bin/env python3
"""clawgate test MCP client: a small CLI around the official SDK's `mcp.Client` (mcp 2.3.0).

Usage:
  client.py --url URL   [--mode legacy|2026-07-28] [--header K=V ...] [--timeout S] [--trace-http]
                        [--max-sse-event-size BYTES] SUBCOMMAND
  client.py --stdio [--mode ...] [--timeout S] SUBCOMMAND -- COMMAND ARGS...
  client.py --stdio [--mode ...] -- COMMAND ARGS... SUBCOMMAND      (trailing form: the last `list`,
      `script FILE` or `call NAME [JSON]` tokens after `--` are taken as the subcommand)

Subcommands (stdout gets exactly one JSON object):
  list                     -> {"tools": ["echo", ...]}
  call NAME 'JSON_ARGS'    -> {"isError": bool, "text": str, "structured": any|null, "raw": {...}}
  script FILE.json         -> {"steps": [...]}; FILE is [{"op":"list"}, {"op":"call","name":..,"args":{..}}, ...],
                              all steps run in ONE session/connection (one initialize in legacy mode).

Exit codes:
  0  protocol success (a tool result with isError=true is still success)
  2  the server/gateway answered with a JSON-RPC error (MCPError), including the SDK's synthesized -32603 for a
     non-2xx HTTP answer. stdout: {"error":{"code","message","data"}, "httpStatus": N (only if a 4xx/5xx was seen)}
     (script: the failing step is recorded as {"error":{...}} and later steps still run; exit 2 at the end)
  1  transport failure / anything else (message on stderr)

How the two modes were verified on the wire (mcp 2.3.0, see tests/mcp/README.md and --trace-http):
  --mode legacy     -> Client(mode="legacy"): POST initialize (no MCP-Protocol-Version header), server replies
                       with an Mcp-Session-Id header; then POST notifications/initialized (202), a GET SSE stream,
                       POST tools/list / tools/call carrying Mcp-Session-Id + MCP-Protocol-Version: 2025-11-25,
                       and a DELETE with Mcp-Session-Id on exit. No Mcp-Method/Mcp-Name headers.
  --mode 2026-07-28 -> Client(mode="2026-07-28") adopts the version with no initialize and no probe:
                       every POST carries MCP-Protocol-Version: 2026-07-28 and Mcp-Method (+ Mcp-Name: <tool>
                       on tools/call); no Mcp-Session-Id, no GET, no DELETE.
  Checked with --trace-http (httpx2 event hooks printing each request's headers and the response's
  status/content-type) and independently through a logging reverse proxy in front of upstream.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import AsyncExitStack
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import MCP_DEFAULT_SSE_READ_TIMEOUT, MCP_DEFAULT_TIMEOUT
from mcp.shared.exceptions import MCPError


def eprint(*a: Any) -> None:
    print(*a, file=sys.stderr, flush=True)


def dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def call_result(result: Any) -> dict[str, Any]:
    texts = [c.text for c in result.content if getattr(c, "type", None) == "text"]
    return {
        "isError": bool(result.is_error),
        "text": "".join(texts),
        "structured": result.structured_content,
        "raw": dump(result),
    }


# Non-2xx HTTP statuses seen (the SDK folds e.g. a 401/403 into a generic -32603 MCPError and drops the
# status, so we record it ourselves and report the last one as "httpStatus").
HTTP_ERROR_STATUSES: list[int] = []


def error_obj(e: MCPError) -> dict[str, Any]:
    out: dict[str, Any] = {"error": {"code": e.code, "message": e.message, "data": e.data}}
    if HTTP_ERROR_STATUSES:
        out["httpStatus"] = HTTP_ERROR_STATUSES[-1]
    return out


def find_mcp_error(e: BaseException) -> MCPError | None:
    """The SDK sometimes raises an MCPError wrapped in (nested) ExceptionGroups (e.g. a failed initialize)."""
    if isinstance(e, MCPError):
        return e
    if isinstance(e, BaseExceptionGroup):
        for x in e.exceptions:
            if (m := find_mcp_error(x)) is not None:
                return m
    return None


async def run_step(client: Client, step: dict[str, Any]) -> dict[str, Any]:
    op = step.get("op")
    if op == "list":
        # cache_mode="bypass": the SDK caches tools/list by default; a test peer must always hit the wire.
        res = await client.list_tools(cache_mode="bypass")
        return {"tools": [t.name for t in res.tools]}
    if op == "call":
        res = await client.call_tool(step["name"], step.get("args") or {})
        return call_result(res)
    raise ValueError(f"unknown op {op!r}")


def build_http_client(headers: dict[str, str], trace: bool, timeout: float | None) -> httpx2.AsyncClient:
    async def on_request(req: httpx2.Request) -> None:
        if not trace:
            return
        hs = {k: v for k, v in req.headers.items() if k.lower() not in ("host", "accept-encoding", "user-agent", "connection", "content-length")}
        body = req.content.decode(errors="replace") if req.method == "POST" else ""
        eprint(f"[http] > {req.method} {req.url} {json.dumps(hs)} {body[:300]}")

    async def on_response(resp: httpx2.Response) -> None:
        if resp.status_code >= 400:
            HTTP_ERROR_STATUSES.append(resp.status_code)
        if not trace:
            return
        eprint(
            f"[http] < {resp.status_code} content-type={resp.headers.get('content-type')!r} "
            f"mcp-session-id={resp.headers.get('mcp-session-id')!r}"
        )

    t = httpx2.Timeout(timeout or MCP_DEFAULT_TIMEOUT, read=timeout or MCP_DEFAULT_SSE_READ_TIMEOUT)
    hooks = {"request": [on_request], "response": [on_response]}
    return httpx2.AsyncClient(headers=headers, timeout=t, event_hooks=hooks)


async def amain(args: argparse.Namespace) -> int:
    if args.cmd == "list":
        steps, single = [{"op": "list"}], True
    elif args.cmd == "call":
        try:
            call_args = json.loads(args.json_args) if args.json_args else {}
        except json.JSONDecodeError as e:
            eprint(f"bad JSON args: {e}")
            return 1
        steps, single = [{"op": "call", "name": args.name, "args": call_args}], True
    else:
        with open(args.file, encoding="utf-8") as f:
            steps, single = json.load(f), False

    headers: dict[str, str] = {}
    for h in args.header or []:
        if "=" not in h:
            eprint(f"bad --header {h!r}, expected K=V")
            return 1
        k, v = h.split("=", 1)
        headers[k] = v

    async with AsyncExitStack() as stack:
        if args.stdio:
            if not args.command:
                eprint("--stdio needs `-- COMMAND ARGS...`")
                return 1
            server: Any = StdioServerParameters(command=args.command[0], args=args.command[1:], env=dict(os.environ))
        else:
            http = await stack.enter_async_context(build_http_client(headers, args.trace_http, args.timeout))
            max_ev = None if args.max_sse_event_size == 0 else args.max_sse_event_size
            server = streamable_http_client(args.url, http_client=http, max_sse_event_size=max_ev)
        client = Client(server, mode=args.mode, cache=None, read_timeout_seconds=args.timeout)
        await stack.enter_async_context(client)
        if args.trace_http:
            eprint(f"[client] negotiated protocol version: {client.protocol_version}")

        results: list[dict[str, Any]] = []
        failed = False
        for step in steps:
            try:
                results.append(await run_step(client, step))
            except MCPError as e:
                failed = True
                if single:
                    print(json.dumps(error_obj(e)), flush=True)
                    eprint(f"JSON-RPC error {e.code}: {e.message}" + (f" (HTTP {HTTP_ERROR_STATUSES[-1]})" if HTTP_ERROR_STATUSES else ""))
                    return 2
                results.append(error_obj(e))
        print(json.dumps(results[0] if single else {"steps": results}), flush=True)
        return 2 if failed else 0


def main() -> None:
    argv = sys.argv[1:]
    command: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, command = argv[:i], argv[i + 1 :]
        if not any(a in SUBCOMMANDS for a in argv):
            # Trailing form: `--stdio -- COMMAND ARGS... SUBCOMMAND [ARGS]` - peel the subcommand off the end.
            command, tail = split_trailing_subcommand(command)
            argv += tail

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="streamable HTTP endpoint, e.g. http://127.0.0.1:PORT/mcp")
    target.add_argument("--stdio", action="store_true", help="launch `-- COMMAND ARGS...` and speak stdio")
    p.add_argument("--mode", default="legacy", choices=["legacy", "2026-07-28"])
    p.add_argument("--header", action="append", metavar="K=V", help="extra HTTP header (repeatable)")
    p.add_argument("--timeout", type=float, default=None, help="per-request timeout in seconds")
    p.add_argument(
        "--max-sse-event-size",
        type=int,
        default=1024 * 1024,
        metavar="BYTES",
        help="SDK cap on one SSE event (default 1 MiB, the SDK default; 0 = unlimited). JSON bodies are not capped.",
    )
    p.add_argument("--trace-http", action="store_true", help="log every HTTP request/response to stderr")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    c = sub.add_parser("call")
    c.add_argument("name")
    c.add_argument("json_args", nargs="?", default="{}")
    s = sub.add_parser("script")
    s.add_argument("file")
    args = p.parse_args(argv)
    args.command = command

    try:
        rc = anyio.run(amain, args)
    except BaseException as e:  # noqa: BLE001 - failures arrive as (nested) exception groups
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        if (m := find_mcp_error(e)) is not None:  # e.g. initialize / first request answered with an error
            print(json.dumps(error_obj(m)), flush=True)
            eprint(f"JSON-RPC error {m.code}: {m.message}" + (f" (HTTP {HTTP_ERROR_STATUSES[-1]})" if HTTP_ERROR_STATUSES else ""))
            rc = 2
        else:
            eprint(f"client failure: {describe(e)}")
            rc = 1
    sys.exit(rc)


SUBCOMMANDS = ("list", "call", "script")


def split_trailing_subcommand(command: list[str]) -> tuple[list[str], list[str]]:
    """Find `list` | `script FILE` | `call NAME [JSON]` at the end of the stdio command line."""
    n = len(command)
    if n >= 1 and command[-1] == "list":
        return command[:-1], command[-1:]
    if n >= 2 and command[-2] in ("script", "call"):
        return command[:-2], command[-2:]
    if n >= 3 and command[-3] == "call":
        return command[:-3], command[-3:]
    return command, []


def describe(e: BaseException) -> str:
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(describe(x) for x in e.exceptions)
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


if __name__ == "__main__":
    main()
