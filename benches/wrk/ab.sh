#!/usr/bin/env bash
# A/B of two clawgate binaries on `/v1/check` under wrk, back to back in one run: each round
# runs nginx's fixed 200 (the reference), then A, then B (a fresh sidecar and data directory
# each time, the decision cache on unless CLAWGATE_AB_CACHE=off), at c=64 and c=1.
# Needs nginx and wrk, like run.sh. Everything lives in /tmp/clawgate-ab; ports 18080, 1847x.
# Usage: benches/wrk/ab.sh BINARY_A BINARY_B [SECONDS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
a=$(realpath "$1")
b=$(realpath "$2")
secs=${3:-8}
rounds=${4:-2}
entries=$([ "${CLAWGATE_AB_CACHE:-on}" = off ] && echo 0 || echo 10000)
work=/tmp/clawgate-ab
rm -rf "$work" && mkdir -p "$work/body"
sed 's#/tmp/clawgate-wrk#/tmp/clawgate-ab#g' benches/wrk/nginx.conf > "$work/nginx.conf"
cp benches/wrk/post.lua "$work/"
nginx -c "$work/nginx.conf" -p "$work/"
sidecar=
trap '[ -n "$sidecar" ] && kill $sidecar 2>/dev/null; kill "$(cat $work/nginx.pid)" 2>/dev/null' EXIT
load() { # threads connections url [script]
    wrk -t"$1" -c"$2" -d"${secs}s" --latency ${4:+-s "$work/$4"} "$3" 2>&1 |
        awk '/Requests\/sec/ {r=$2} /^     50%/ {p50=$2} /^     99%/ {p99=$2}
             END {printf "%10s req/s  p50 %8s  p99 %8s\n", r, p50, p99}'
}
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); fsync reference (4 KiB O_DSYNC):" \
    "$(dd if=/dev/zero of="$work/fsync.test" bs=4k count=1000 oflag=dsync 2>&1 | tail -1)"
for round in $(seq "$rounds"); do
    echo "== round $round (load $(cut -d' ' -f1-3 /proc/loadavg))"
    echo "nginx   c=64 $(load 2 64 http://127.0.0.1:18080/)"
    for side in A B; do
        bin=$([ $side = A ] && echo "$a" || echo "$b")
        rm -rf "$work/data"
        printf 'data_dir = "%s/data"\n[listeners.agent]\naddr = "127.0.0.1:18470"\n[listeners.egress]\naddr = "127.0.0.1:18471"\n[listeners.admin]\naddr = "127.0.0.1:18472"\n[policy]\ndecision_cache_entries = %s\n' \
            "$work" "$entries" > "$work/clawgate.toml"
        "$bin" serve --config "$work/clawgate.toml" 2> "$work/$side-$round.log" &
        sidecar=$!
        sleep 2
        echo "$side c=64     $(load 2 64 http://127.0.0.1:18470/v1/check post.lua)"
        echo "$side c=1      $(load 1 1 http://127.0.0.1:18470/v1/check post.lua)"
        kill $sidecar && wait $sidecar 2>/dev/null || true
        sidecar=
    done
done
