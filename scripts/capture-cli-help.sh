#!/bin/sh
# Regenerates agent/src/commands/help/*.txt from the reference Go binary
# (Debian's serf 0.9.4, /usr/bin/serf): the exact bytes `serf <cmd> -h`
# writes to stderr, and the command list `serf` (no arguments) writes.
# Our `serf` embeds these files so its help output is byte-identical.
set -eu
SERF=${SERF:-/usr/bin/serf}
OUT=$(dirname "$0")/../agent/src/commands/help
mkdir -p "$OUT"
for c in agent event force-leave info join keygen keys leave members monitor query \
         reachability rtt tags version; do
    "$SERF" "$c" -h 2> "$OUT/$c.txt" >/dev/null || true
done
"$SERF" 2> "$OUT/commands.txt" >/dev/null || true
