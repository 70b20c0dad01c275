#!/usr/bin/env bash
# Times `meeseeks plan` on generated graphs (10k and 100k services) against `tsort` ordering
# the same edge list, in one run, and prints the figures and ratios. Two graph shapes (see
# examples/gen_graph.rs): `layered` (~4 edges per service, some breaches) and `breachy` (the
# shape of issue 10: ~Exp(mean 4) dependencies among the previous 5 000 services, parallel 8,
# nearly every service breaches).
#
# `meeseeks plan DIR --format json --out FILE` includes everything a user pays for: reading and
# parsing graph.toml (with diagnostics), planning both modes, the RTO analysis and writing the
# JSON report. `tsort` only orders the edges. Each measurement is repeated REPS times (default
# 3), plan and tsort interleaved so that a busy machine slows both alike; the best run counts
# (smallest wall and smallest CPU time, each on its own).
#
# usage: bench/plan_vs_tsort.sh [SIZES...]     (default: 10000 100000)
#   SHAPES="layered breachy"   graph shapes to measure (default both)
#   BEFORE=PATH                another meeseeks binary (e.g. built from main) measured in the
#                              same run, interleaved, for before/after figures
#   REPS=N (default 3), KEEP=1 (keep the work directory)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! [ -x /usr/bin/time ]; then
    echo "GNU time is needed for peak memory: apt-get install -y time" >&2
    exit 2
fi
command -v tsort >/dev/null || { echo "tsort (coreutils) not found" >&2; exit 2; }

SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(10000 100000)
REPS=${REPS:-3}
read -r -a SHAPE_LIST <<<"${SHAPES:-layered breachy}"
BEFORE=${BEFORE:-}
if [ -n "$BEFORE" ] && ! [ -x "$BEFORE" ]; then
    echo "BEFORE=$BEFORE is not an executable" >&2
    exit 2
fi

cargo build --release --quiet --bin meeseeks --example gen_graph
BIN=target/release/meeseeks
GEN=target/release/examples/gen_graph

WORK=$(mktemp -d)
if [ -z "${KEEP:-}" ]; then trap 'rm -rf "$WORK"' EXIT; else echo "work dir: $WORK"; fi

# measure OUT CMD... : runs CMD with stdout to /dev/null; writes "wall cpu maxrss_kb" to OUT.
# Wall and CPU seconds to the millisecond (bash's EPOCHREALTIME and `times`, which counts the
# command as a waited-for descendant): GNU time's 10 ms steps are too coarse for the 10k graph.
measure() {
    local out=$1; shift
    local t0 t1 cpu
    t0=$EPOCHREALTIME
    cpu=$( ( /usr/bin/time -f "%M" -o "$WORK/rss" "$@" >/dev/null 2>"$WORK/stderr" \
             || { echo "failed: $*" >&2; cat "$WORK/stderr" >&2; exit 1; }
             times ) | tail -1 ) || exit 1
    t1=$EPOCHREALTIME
    # `times`: "0m0.512s 0m0.064s" (children's user and system time).
    awk -v t0="$t0" -v t1="$t1" -v cpu="$cpu" -v rss="$(cat "$WORK/rss")" 'BEGIN {
        split(cpu, p, " "); c = 0
        for (i = 1; i <= 2; i++) { split(p[i], ms, "m"); sub("s", "", ms[2]); c += ms[1] * 60 + ms[2] }
        printf "%.3f %.3f %s\n", t1 - t0, c, rss }' >"$out"
}

# best OLD NEW : keeps the smaller wall (and smaller cpu, larger rss) of two measurements.
best() {
    if [ -s "$1" ]; then
        paste -d' ' "$1" "$2" | awk '{ w = ($1 < $4) ? $1 : $4; c = ($2 < $5) ? $2 : $5;
                                      m = ($3 > $6) ? $3 : $6; print w, c, m }' >"$1.tmp"
        mv "$1.tmp" "$1"
    else
        cp "$2" "$1"
    fi
}

# row LABEL N EDGES FILE TSORT_FILE : one line of the table.
row() {
    local pw pc pm tw tc tm
    read -r pw pc pm <"$4"
    read -r tw tc tm <"$5"
    awk -v l="$1" -v n="$2" -v e="$3" -v pw="$pw" -v pc="$pc" -v pm="$pm" -v tw="$tw" -v tc="$tc" -v tm="$tm" \
        'BEGIN { printf "%-8s %-8s %-8s | %8.3f %8.3f %8.1f | %8.3f %8.3f %8.1f | %6.2f %6.2f\n",
                 l, n, e, pw, pc, pm / 1024, tw, tc, tm / 1024, pw / tw, (tc > 0 ? pc / tc : 0) }'
}

# growth LABEL FILE_SMALL FILE_LARGE SMALL LARGE
growth() {
    local w1 c1 w2 c2
    read -r w1 c1 _ <"$2"
    read -r w2 c2 _ <"$3"
    awk -v l="$1" -v a="$4" -v b="$5" -v w1="$w1" -v w2="$w2" -v c1="$c1" -v c2="$c2" \
        'BEGIN { printf "%s growth %s -> %s services: wall x%.1f, cpu x%.1f (size x%.0f)\n",
                 l, a, b, w2 / w1, (c1 > 0 ? c2 / c1 : 0), b / a }'
}

for shape in "${SHAPE_LIST[@]}"; do
    echo
    echo "shape: $shape"
    printf '%-8s %-8s %-8s | %-26s | %-26s | %-13s\n' "" "" "" "meeseeks plan" "tsort" "plan / tsort"
    printf '%-8s %-8s %-8s | %8s %8s %8s | %8s %8s %8s | %6s %6s\n' \
        binary services edges wall_s cpu_s rss_MB wall_s cpu_s rss_MB wall cpu
    for n in "${SIZES[@]}"; do
        dir="$WORK/$shape$n"
        "$GEN" "$n" "$dir" 42 "$shape" 2>/dev/null
        edges=$(wc -l <"$dir/edges.txt")
        : >"$WORK/plan.$shape.$n"; : >"$WORK/tsort.$shape.$n"; : >"$WORK/before.$shape.$n"
        for _ in $(seq "$REPS"); do
            measure "$WORK/p" "$BIN" plan "$dir" --format json --out "$WORK/plan.json"
            best "$WORK/plan.$shape.$n" "$WORK/p"
            measure "$WORK/t" tsort "$dir/edges.txt"
            best "$WORK/tsort.$shape.$n" "$WORK/t"
            if [ -n "$BEFORE" ]; then
                measure "$WORK/b" "$BEFORE" plan "$dir" --format json --out "$WORK/before.json"
                best "$WORK/before.$shape.$n" "$WORK/b"
            fi
        done
        printf '%s\n' "$(wc -c <"$WORK/plan.json")" >"$WORK/bytes.$shape.$n"
        row after "$n" "$edges" "$WORK/plan.$shape.$n" "$WORK/tsort.$shape.$n"
        if [ -n "$BEFORE" ]; then
            row before "$n" "$edges" "$WORK/before.$shape.$n" "$WORK/tsort.$shape.$n"
            printf '%-8s JSON: after %s bytes, before %s bytes\n' "" \
                "$(cat "$WORK/bytes.$shape.$n")" "$(wc -c <"$WORK/before.json")"
        else
            printf '%-8s JSON: %s bytes\n' "" "$(cat "$WORK/bytes.$shape.$n")"
        fi
    done
    # Growth of plan's cost from the smallest to the largest size (linear: 10x services ≈ 10x).
    first=${SIZES[0]}; last=${SIZES[${#SIZES[@]}-1]}
    if [ "$first" != "$last" ]; then
        growth "  after" "$WORK/plan.$shape.$first" "$WORK/plan.$shape.$last" "$first" "$last"
        if [ -n "$BEFORE" ]; then
            growth "  before" "$WORK/before.$shape.$first" "$WORK/before.$shape.$last" "$first" "$last"
        fi
    fi
done
