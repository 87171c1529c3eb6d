#!/usr/bin/env python3
"""clawgate test upstream over stdio: same tools as upstream.py (tools.py), SDK stdio transport.

The SDK's serve loop picks the era from the first message, so both the initialize
handshake (2025-11-25) and 2026-07-28 per-request envelopes work. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.dont_write_bytecode = True  # keep tests/mcp free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tools import build_server  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--ran-log", help="append `<tool> <json args>` here whenever a tool runs")
    args = p.parse_args()
    build_server(args.ran_log).run("stdio")


if __name__ == "__main__":
    main()
