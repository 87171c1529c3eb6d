#!/usr/bin/env bash
# Runs clawgate's fuzz targets (fuzz/fuzz_targets, one per parser that outside input reaches)
# under libFuzzer with cargo-fuzz on the stable toolchain (no sanitizer: `-s none`).
# cargo-fuzz is installed into the ignored .tools/cargo on first use.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS  time per target (default 60)
#   TARGET   names from `ls fuzz/fuzz_targets` (default: all of them)
#
# New inputs go to fuzz/work/TARGET (ignored); fuzz/corpus/TARGET holds the committed seeds.
# A crash or hang is written to fuzz/artifacts/TARGET/ and the script stops with its path:
# add the input to fuzz/corpus/TARGET/ and a regression test, then fix it.
# The test suite runs a short smoke of every target in-process (tests/it/fuzz.rs), with the
# parser workers of the debug binary.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
seconds=${1:-60}
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    for f in fuzz/fuzz_targets/*.rs; do
        targets+=("$(basename "$f" .rs)")
    done
fi

if [[ ! -x .tools/cargo/bin/cargo-fuzz ]]; then
    cargo install --locked --root .tools/cargo "cargo-fuzz@$CARGO_FUZZ_VERSION"
fi
export PATH="$PWD/.tools/cargo/bin:$PATH"

# Shell text is parsed in the workers of a release clawgate binary, as the sidecar parses it
# (src/facts/parser_worker.rs); FUZZ_PARSE_IN_PROCESS=1 fuzzes brush's parser itself in-process.
if [[ -z ${FUZZ_PARSE_IN_PROCESS:-} ]]; then
    cargo build --release --locked --bin clawgate
    export CLAWGATE_FUZZ_PARSE_WORKER="$PWD/target/release/clawgate"
fi

for target in "${targets[@]}"; do
    if [[ ! -f fuzz/fuzz_targets/$target.rs ]]; then
        echo "fuzz.sh: no target '$target' (see fuzz/fuzz_targets)" >&2
        exit 2
    fi
    mkdir -p "fuzz/work/$target"
    echo "== $target for ${seconds}s"
    cargo fuzz run --fuzz-dir fuzz -s none "$target" "fuzz/work/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -max_len=65536 -timeout=10
done
