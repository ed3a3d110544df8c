#!/usr/bin/env bash
# The whole test suite, as CI runs it. Every job prints a banner; the first
# failure stops the run with a non-zero exit.
#
#   scripts/test-all.sh              # everything
#   scripts/test-all.sh lint test    # only the named jobs
#
# Jobs: lint (fmt + clippy + the crate arrows), test (unit, integration, simulation and interop
# tests, including the long ones marked #[ignore]), fuzz (a short cargo-fuzz
# smoke of every target), regress (the deterministic results checks).
#
# Interop tests need the Go reference agent at /usr/bin/serf (Debian package
# `serf`); with CI=true a missing binary fails them instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=("$@")
[ ${#jobs[@]} -gt 0 ] || jobs=(lint test fuzz regress)

banner() { printf '\n===== %s =====\n' "$*"; }

for job in "${jobs[@]}"; do
    case "$job" in
    lint)
        banner "fmt"
        cargo fmt --all -- --check
        banner "clippy"
        cargo clippy --workspace --all-targets -- -D warnings
        banner "layers (cargo tree: the arrows of ARCHITECTURE.md)"
        scripts/check-layers
        ;;
    test)
        banner "tests"
        cargo test --workspace
        banner "long tests (#[ignore]d in a plain cargo test)"
        cargo test --workspace -- --ignored
        ;;
    fuzz)
        banner "fuzz smoke (${FUZZ_SECONDS:-20} s per target)"
        scripts/fuzz-smoke.sh
        ;;
    regress)
        if [ -x scripts/regress ]; then
            banner "regression check against results/"
            scripts/regress
        fi
        ;;
    *)
        echo "unknown job: $job (lint, test, fuzz, regress)" >&2
        exit 2
        ;;
    esac
done
banner "all jobs passed: ${jobs[*]}"
