#!/usr/bin/env bash
# Times `meeseeks validate` on a generated 100 000-service graph in which K dependency names
# are unknown (a typo'd or half-imported graph): each unknown name is an error with a "did you
# mean" hint, and the cost must stay linear in K (issue 12: 20 000 took 18.7 s, 200 000 did
# not finish in 60 s, when every hint scanned every service name).
#
# usage: bench/unknown_deps.sh [K...]   (default: 0 20000 200000; N=services, BIN=binary to
#                                         time instead of building this tree's)
set -euo pipefail
cd "$(dirname "$0")/.."

KS=("$@")
[ ${#KS[@]} -gt 0 ] || KS=(0 20000 200000)
N=${N:-100000}

if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet --bin meeseeks --example gen_graph
    BIN=target/release/meeseeks
fi
GEN=${GEN:-target/release/examples/gen_graph}

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$GEN" "$N" "$WORK/base" 2>/dev/null

printf '%-10s %-10s %8s %8s %s\n' services unknown wall_s exit "first lines"
for k in "${KS[@]}"; do
    dir="$WORK/k$k"
    mkdir -p "$dir"
    # The first K names inside `depends_on = [...]` lists get a prefix no service has.
    awk -v k="$k" '
        /^depends_on = \[/ && done < k {
            n = split($0, parts, "\"")
            line = parts[1]
            for (i = 2; i <= n; i += 2) {
                name = parts[i]
                if (done < k) { name = "gone-" name; done++ }
                line = line "\"" name "\"" parts[i + 1]
            }
            print line; next
        }
        { print }' "$WORK/base/graph.toml" >"$dir/graph.toml"
    got=$( (grep -o '"gone-' "$dir/graph.toml" || true) | wc -l)
    t0=$EPOCHREALTIME
    code=0
    timeout "${TIMEOUT:-120}" "$BIN" validate "$dir" >/dev/null 2>"$WORK/err" || code=$?
    t1=$EPOCHREALTIME
    first=$(grep -m1 'help: did you mean' "$WORK/err" | sed 's/^ *//' || true)
    awk -v n="$N" -v k="$got" -v t0="$t0" -v t1="$t1" -v c="$code" -v f="$first" \
        'BEGIN { printf "%-10s %-10s %8.3f %8s %s\n", n, k, t1 - t0, c, f }'
done
