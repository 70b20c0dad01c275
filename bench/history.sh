#!/usr/bin/env bash
# Times `meeseeks history` on COMMITS commits (default 1 000) of a generated SERVICES-service
# graph (default 10 000, ~4 edges per service; `examples/gen_graph`), against `git log -p` over
# the same commits (git producing the textual diffs of the same history), in one run, and
# prints the figures and the ratio.
#
# The repository is built with `git fast-import`: commit 1 is the generated graph, every
# later commit changes it a little (a new service with three dependencies, an RTO change, or a
# new edge), so every commit has a graph to load and compare, as in a busy monorepo.
#
# usage: bench/history.sh [COMMITS] [SERVICES]     (REPS=N, default 3; KEEP=1 keeps the repo)
set -euo pipefail
cd "$(dirname "$0")/.."

COMMITS=${1:-1000}
SERVICES=${2:-10000}
REPS=${REPS:-3}
command -v git >/dev/null || { echo "git not found" >&2; exit 2; }
command -v python3 >/dev/null || { echo "python3 not found" >&2; exit 2; }

cargo build --release --quiet --bin meeseeks --example gen_graph
BIN=$PWD/target/release/meeseeks
GEN=$PWD/target/release/examples/gen_graph

WORK=$(mktemp -d)
if [ -z "${KEEP:-}" ]; then trap 'rm -rf "$WORK"' EXIT; else echo "work dir: $WORK"; fi

"$GEN" "$SERVICES" "$WORK/base" >/dev/null
git init -q -b main "$WORK/repo"

t0=$EPOCHREALTIME
python3 - "$WORK/base/graph.toml" "$COMMITS" <<'PY' | git -C "$WORK/repo" fast-import --quiet
import random, sys
text = open(sys.argv[1]).read()
commits = int(sys.argv[2])
head, *rest = text.split("\n[services.")
blocks = ["[services." + b.rstrip("\n") + "\n" for b in rest]
names = [b.split("]", 1)[0][len("[services."):] for b in blocks]
rng = random.Random(7)
out = sys.stdout.buffer

def emit(i, msg):
    data = (head.rstrip("\n") + "\n\n" + "\n".join(blocks)).encode()
    when = 1767225600 + i * 3600
    out.write(b"commit refs/heads/main\n")
    out.write(b"committer Bench <bench@example.com> %d +0000\n" % when)
    m = msg.encode()
    out.write(b"data %d\n%s\n" % (len(m), m))
    # Each commit continues the branch fast-import is building: no `from` needed.
    out.write(b"M 100644 inline dr/graph.toml\ndata %d\n" % len(data))
    out.write(data)
    out.write(b"\n")

emit(0, "graph of %d services" % len(blocks))
for i in range(1, commits):
    k = i % 3
    if k == 0:
        name = "added-%05d" % i
        deps = sorted(set(rng.sample(names, 3)))
        blocks.append('[services.%s]\ntier = %d\nrto = "%dm"\ndepends_on = [%s]\n'
                      % (name, rng.randrange(4), 30 + rng.randrange(200),
                         ", ".join('"%s"' % d for d in deps)))
        names.append(name)
        emit(i, "add " + name)
    elif k == 1:
        j = rng.randrange(len(blocks))
        lines = blocks[j].split("\n")
        lines = [('rto = "%dm"' % (15 + rng.randrange(300))) if l.startswith("rto =") else l
                 for l in lines]
        blocks[j] = "\n".join(lines)
        emit(i, "rto of " + names[j])
    else:
        # A new edge from a later-generated service to an earlier one keeps the graph a DAG.
        j = rng.randrange(1, len(blocks))
        d = names[rng.randrange(j)]
        b = blocks[j]
        if "depends_on = [" in b:
            if '"%s"' % d not in b:
                b = b.replace("depends_on = [", 'depends_on = ["%s", ' % d, 1)
        else:
            b = b.rstrip("\n") + '\ndepends_on = ["%s"]\n' % d
        blocks[j] = b
        emit(i, "%s needs %s" % (names[j], d))
PY
t1=$EPOCHREALTIME
git -C "$WORK/repo" checkout -q main
echo "repository: $COMMITS commits of a $SERVICES-service graph ($(du -sh "$WORK/repo/.git" | cut -f1) in .git), built in $(echo "$t1 - $t0" | bc) s"

best() { sort -n | head -1; }
wall() { local t0=$EPOCHREALTIME; "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }; echo "$EPOCHREALTIME - $t0" | bc; }

: >"$WORK/h"; : >"$WORK/g"; : >"$WORK/html"
for _ in $(seq "$REPS"); do
    wall "$BIN" history "$WORK/repo/dr" --format json --out "$WORK/history.json" >>"$WORK/h"
    wall git -C "$WORK/repo" log -p --first-parent -- dr >>"$WORK/g"
    wall "$BIN" history "$WORK/repo/dr" --format html --watch "$(sed -n 's/^\[services\.\(.*\)\]$/\1/p' "$WORK/base/graph.toml" | head -1)" --out "$WORK/history.html" >>"$WORK/html"
done
H=$(best <"$WORK/h"); G=$(best <"$WORK/g"); HT=$(best <"$WORK/html")
N=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['commits']))" "$WORK/history.json")
echo "meeseeks history --format json: ${H} s for $N commits ($(echo "scale=2; 1000 * $H / $N" | bc) ms per commit)"
echo "meeseeks history --format html --watch (one service): ${HT} s"
echo "git log -p (textual diffs of the same commits): ${G} s"
echo "ratio history/json vs git log -p: $(echo "scale=2; $H / $G" | bc)x   (best of $REPS)"
