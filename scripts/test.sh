#!/usr/bin/env bash
# The whole test suite: formatting, lints, the shipped policy bundle's own tests, and every
# Rust test (unit and integration, real HTTP over loopback). `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets -- -D warnings
echo "== clawgate policy test policies/"
cargo run --locked --quiet -- policy test policies/
echo "== test tools (curl for the egress and TLS tests, iproute2 and iptables for the transparent-mode tests; Python, Node and OpenClaw load on demand)"
scripts/setup-tools.sh curl
scripts/setup-tools.sh netns
echo "== cargo test"
cargo test --locked
