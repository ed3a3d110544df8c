#!/usr/bin/env bash
# Fuzz smoke test: seed the corpora from the captured traffic, then run every
# cargo-fuzz target for FUZZ_SECONDS seconds (default 20). Exits non-zero if
# any target crashes; the crashing input is left in fuzz/artifacts/<target>/.
#
#   scripts/fuzz-smoke.sh                  # all targets, 20 s each
#   FUZZ_SECONDS=180 scripts/fuzz-smoke.sh lzw udp_pipeline
#
# cargo-fuzz needs nightly compiler flags (-Z sanitizer, sancov); the stable
# toolchain accepts them with RUSTC_BOOTSTRAP=1. FUZZ_SANITIZER picks the
# sanitizer (address by default; "none" for an uninstrumented build).
set -euo pipefail

cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-20}
sanitizer=${FUZZ_SANITIZER:-address}
export RUSTC_BOOTSTRAP=1

all=(udp_pipeline stream_frame memberlist_message serf_message lzw msgpack_skip)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

python3 scripts/fuzz-seed.py
cargo fuzz build -s "$sanitizer"

mkdir -p fuzz/artifacts
failed=()
for t in "${targets[@]}"; do
    echo "== fuzz $t for ${seconds}s"
    log="fuzz/artifacts/$t.log"
    # -timeout: one input taking over 10 s is a hang, reported as a crash.
    if ! cargo fuzz run -s "$sanitizer" "$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 2>"$log"; then
        failed+=("$t")
        tail -n 40 "$log"
    else
        grep -E '^(stat::number_of_executed_units|stat::new_units_added)|^Done' "$log" || true
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz smoke FAILED: ${failed[*]} (inputs in fuzz/artifacts/, logs in fuzz/artifacts/*.log)"
    exit 1
fi
echo "fuzz smoke: ${#targets[@]} targets ran ${seconds}s each without a crash"
