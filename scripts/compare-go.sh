#!/usr/bin/env bash
# The Go comparison (issue 7): the same loadgen scenarios, in process mode,
# against our agent and Go's /usr/bin/serf, interleaved by size (ours N16,
# Go N16, ours N64, ...), then a ratio table.
#
#   scripts/compare-go.sh            N in 16 64 128 256, idle 60 s
#                                    -> results/compare-go.md, .json, compare-go/
#   scripts/compare-go.sh --quick    N in 16 64, idle 20 s -> target/compare-go-quick/
#   scripts/compare-go.sh --scale    largest stable N: ours 512 1000, Go 256 384
#                                    (join,fail,idle) -> results/compare-go/scale-*.json
#
# Long runs publish figures: take the shared lock around the whole script,
#   cargo build --release -p agent -p loadgen && flock /work/measure.lock scripts/compare-go.sh
# Env: CARGO_TARGET_DIR (default target), GO_SERF (default /usr/bin/serf),
#      SIZES / IDLE_SECS / TIMEOUT_SECS / BASE_IP to override.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=full
case "${1:-}" in
  --quick) MODE=quick ;;
  --scale) MODE=scale ;;
  "") ;;
  *) echo "usage: $0 [--quick|--scale]" >&2; exit 2 ;;
esac

TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p agent -p loadgen
LOADGEN=$TARGET/release/loadgen
OURS=$TARGET/release/serf
GO=${GO_SERF:-/usr/bin/serf}
[[ -x $GO ]] || { echo "compare-go: Go serf not found at $GO" >&2; exit 1; }

case $MODE in
  full)  SIZES=${SIZES:-"16 64 128 256"}; IDLE=${IDLE_SECS:-60}; OUT=results/compare-go
         SCEN=join,fail,idle,event ;;
  quick) SIZES=${SIZES:-"16 64"}; IDLE=${IDLE_SECS:-20}; OUT=$TARGET/compare-go-quick
         SCEN=join,fail,idle,event ;;
  scale) IDLE=${IDLE_SECS:-30}; OUT=results/compare-go; SCEN=join,fail,idle ;;
esac
TIMEOUT=${TIMEOUT_SECS:-180}
# Not loadgen's default 127.1.0.1: in-process loadgen runs use that range.
BASE_IP=${BASE_IP:-127.3.0.1}
mkdir -p "$OUT"

run() { # impl bin nodes name
  local impl=$1 bin=$2 n=$3 name=$4 rc=0
  echo "== $name ($bin, N=$n)" >&2
  "$LOADGEN" --mode process --agent-bin "$bin" --nodes "$n" --scenario "$SCEN" \
    --idle-secs "$IDLE" --timeout-secs "$TIMEOUT" --base-ip "$BASE_IP" --out "$OUT" --name "$name" --quiet \
    > "$OUT/$name.txt" 2>&1 || rc=$?
  # 3 = ran, some check failed (kept: that is a result); anything else is an error.
  if [[ $rc -ne 0 && $rc -ne 3 ]]; then
    echo "   loadgen exited $rc (see $OUT/$name.txt)" >&2
  fi
  tail -n +1 "$OUT/$name.txt" | grep -E "FAIL|all-agree|RSS per agent \(mean\)|CPU per agent \(mean\)" >&2 || true
  sleep 2
}

if [[ $MODE == scale ]]; then
  for n in ${OURS_SIZES:-512 1000}; do run ours "$OURS" "$n" "scale-ours-$n"; done
  for n in ${GO_SIZES:-256 384}; do run go "$GO" "$n" "scale-go-$n"; done
  exit 0
fi

for n in $SIZES; do
  run ours "$OURS" "$n" "ours-$n"
  run go "$GO" "$n" "go-$n"
done

if [[ $MODE == full ]]; then MD=results/compare-go.md; JSON=results/compare-go.json
else MD=$OUT/compare-go.md; JSON=$OUT/compare-go.json; fi
python3 scripts/compare-go-table.py "$OUT" "$MD" "$JSON" $SIZES
echo "wrote $MD and $JSON" >&2
