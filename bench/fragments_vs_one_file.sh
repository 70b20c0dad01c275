#!/usr/bin/env bash
# Times `meeseeks plan` on one generated graph written two ways: as one graph.toml, and split
# into F fragments (`include = ["teams/*.toml"]`, N/F services each), in one run, and prints
# the ratio (target: fragments within 1.3x of one file). The two plans must be identical.
#
# Each measurement is repeated REPS times (default 5), one file and fragments interleaved so
# that a busy machine slows both alike; the best run counts (smallest wall and CPU time, each
# on its own). `validate` is timed too: it is the load alone (plus the missing-playbook
# count), where fragments would show most.
#
# usage: bench/fragments_vs_one_file.sh [N] [F]   (default: 100000 1000; REPS=N, BIN=binary)
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-100000}
F=${2:-1000}
REPS=${REPS:-5}

if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet --bin meeseeks --example gen_graph
    BIN=target/release/meeseeks
fi
GEN=${GEN:-target/release/examples/gen_graph}

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$GEN" "$N" "$WORK/one" 2>/dev/null
mkdir -p "$WORK/split/teams"
# Everything before the first service table stays in graph.toml, after `include`; the service
# tables go, N/F at a time, to teams/team-NNNN.toml.
awk -v dir="$WORK/split" -v per=$(( (N + F - 1) / F )) '
    BEGIN { print "include = [\"teams/*.toml\"]\n" > (dir "/graph.toml") }
    /^\[services\./ { if (n % per == 0) { out = sprintf("%s/teams/team-%04d.toml", dir, n / per) } n++ }
    { if (out == "") print > (dir "/graph.toml"); else print > out }
' "$WORK/one/graph.toml"
frags=$(find "$WORK/split/teams" -name '*.toml' | wc -l)

# measure OUT CMD... : "wall cpu" of one run of CMD (stdout to /dev/null) into OUT.
measure() {
    local out=$1; shift
    local t0 t1 cpu
    t0=$EPOCHREALTIME
    cpu=$( ( "$@" >/dev/null 2>"$WORK/stderr" || [ $? -eq 2 ]; times ) | tail -1 )
    t1=$EPOCHREALTIME
    awk -v t0="$t0" -v t1="$t1" -v cpu="$cpu" 'BEGIN {
        split(cpu, p, " "); c = 0
        for (i = 1; i <= 2; i++) { split(p[i], ms, "m"); sub("s", "", ms[2]); c += ms[1] * 60 + ms[2] }
        printf "%.3f %.3f\n", t1 - t0, c }' >"$out"
}

# best OLD NEW : keeps the smaller wall and the smaller cpu of two measurements.
best() {
    if [ -s "$1" ]; then
        paste -d' ' "$1" "$2" | awk '{ print ($1 < $3 ? $1 : $3), ($2 < $4 ? $2 : $4) }' >"$1.tmp"
        mv "$1.tmp" "$1"
    else
        cp "$2" "$1"
    fi
}

printf 'services %s, fragments %s\n' "$N" "$frags"
printf '%-9s | %-17s | %-17s | %-13s\n' "" "one graph.toml" "$frags fragments" "fragments/one"
printf '%-9s | %8s %8s | %8s %8s | %6s %6s\n' command wall_s cpu_s wall_s cpu_s wall cpu
for cmd in plan validate; do
    : >"$WORK/one.$cmd"; : >"$WORK/split.$cmd"
    for _ in $(seq "$REPS"); do
        for which in one split; do
            if [ "$cmd" = plan ]; then
                measure "$WORK/m" "$BIN" plan "$WORK/$which" --format json --out "$WORK/$which.json"
            else
                measure "$WORK/m" "$BIN" validate "$WORK/$which"
            fi
            best "$WORK/$which.$cmd" "$WORK/m"
        done
    done
    read -r ow oc <"$WORK/one.$cmd"
    read -r sw sc <"$WORK/split.$cmd"
    awk -v c="$cmd" -v ow="$ow" -v oc="$oc" -v sw="$sw" -v sc="$sc" 'BEGIN {
        printf "%-9s | %8.3f %8.3f | %8.3f %8.3f | %6.2f %6.2f\n", c, ow, oc, sw, sc, sw / ow, (oc > 0 ? sc / oc : 0) }'
done
if cmp -s "$WORK/one.json" "$WORK/split.json"; then
    echo "plans identical"
else
    echo "PLANS DIFFER" >&2
    exit 1
fi
