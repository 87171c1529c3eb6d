#!/usr/bin/env bash
# /v1/check against nginx answering a fixed 200, under wrk, in one run (issue 16's targets).
# Needs nginx and wrk (Debian: apt-get install nginx-light wrk) and a release build
# (cargo build --release). Everything lives in /tmp/clawgate-wrk; ports 18080, 1848x, 1849x.
# Usage: benches/wrk/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-8}
work=/tmp/clawgate-wrk
rm -rf "$work" && mkdir -p "$work/body"
cp benches/wrk/nginx.conf benches/wrk/post.lua "$work/"
for cache in on off; do
    base=$([ $cache = on ] && echo 1848 || echo 1849)
    entries=$([ $cache = on ] && echo 10000 || echo 0)
    printf 'data_dir = "%s/data-%s"\n[listeners.agent]\naddr = "127.0.0.1:%s0"\n[listeners.egress]\naddr = "127.0.0.1:%s1"\n[listeners.admin]\naddr = "127.0.0.1:%s2"\n[policy]\ndecision_cache_entries = %s\n' \
        "$work" "$cache" "$base" "$base" "$base" "$entries" > "$work/clawgate-$cache.toml"
done
nginx -c "$work/nginx.conf" -p "$work/"
target/release/clawgate serve --config "$work/clawgate-on.toml" 2> "$work/on.log" &
on=$!
target/release/clawgate serve --config "$work/clawgate-off.toml" 2> "$work/off.log" &
off=$!
trap 'kill $on $off 2>/dev/null; kill "$(cat $work/nginx.pid)" 2>/dev/null' EXIT
sleep 2
echo "fsync reference: 1000 x 4 KiB O_DSYNC writes in $work:"
dd if=/dev/zero of="$work/fsync.test" bs=4k count=1000 oflag=dsync 2>&1 | tail -1
load() { # threads connections url [script]
    wrk -t"$1" -c"$2" -d"${secs}s" --latency ${4:+-s "$work/$4"} "$3" 2>&1 |
        grep -E "Requests/sec|^     50%|^     99%|Non-2xx|Socket errors"
}
for c in 64 1; do
    t=$([ "$c" = 1 ] && echo 1 || echo 2)
    echo "== c=$c nginx fixed 200";        load "$t" "$c" http://127.0.0.1:18080/
    echo "== c=$c /v1/check, cache on";    load "$t" "$c" http://127.0.0.1:18480/v1/check post.lua
    echo "== c=$c /v1/check, cache off";   load "$t" "$c" http://127.0.0.1:18490/v1/check post.lua
done
