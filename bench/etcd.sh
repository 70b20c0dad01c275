#!/usr/bin/env bash
# The etcd store against the file store, measured in one run on this machine:
#  1. journal events/s with group commit vs one commit per event (examples/store_bench.rs),
#     on a three-member etcd cluster on 127.0.0.1 and on the file store;
#  2. a 2 000-service run of one `true` step each (--eager --parallel 16) on etcd vs files.
# Needs etcd, etcdctl (Debian: etcd-server, etcd-client) and python3. Figures to read, not a
# test. Usage: bench/etcd.sh [SERVICES] [EVENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
EVENTS=${2:-2000}
command -v etcd >/dev/null || { echo "etcd not installed"; exit 1; }

cargo build -q --release --bin meeseeks --example store_bench
BIN=target/release/meeseeks
work=$(mktemp -d)
pids=()
cleanup() { kill -9 "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cl=(); pe=(); for i in 0 1 2; do cl+=("$(port)"); pe+=("$(port)"); done
initial="m0=http://127.0.0.1:${pe[0]},m1=http://127.0.0.1:${pe[1]},m2=http://127.0.0.1:${pe[2]}"
for i in 0 1 2; do
  etcd --name "m$i" --data-dir "$work/m$i" \
    --listen-client-urls "http://127.0.0.1:${cl[$i]}" --advertise-client-urls "http://127.0.0.1:${cl[$i]}" \
    --listen-peer-urls "http://127.0.0.1:${pe[$i]}" --initial-advertise-peer-urls "http://127.0.0.1:${pe[$i]}" \
    --initial-cluster "$initial" --initial-cluster-state new >"$work/m$i.log" 2>&1 &
  pids+=($!); disown $!
done
eps="127.0.0.1:${cl[0]},127.0.0.1:${cl[1]},127.0.0.1:${cl[2]}"
for _ in $(seq 100); do
  ETCDCTL_API=3 etcdctl --endpoints "$eps" endpoint health >/dev/null 2>&1 && break
  sleep 0.1
done
echo "etcd $(etcd --version | head -1 | awk '{print $3}'), 3 members on 127.0.0.1; $(nproc) cores"
echo
echo "== 1. journal throughput =="
target/release/examples/store_bench "etcd://$eps/bench-journal" "$EVENTS"
echo
target/release/examples/store_bench "$work/files-journal" "$EVENTS"

echo
echo "== 2. $N services x one \`true\` step, --eager --parallel 16 =="
python3 - "$work/dr" "$N" <<'EOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
random.seed(42)
os.makedirs(f"{root}/playbooks")
with open(f"{root}/graph.toml", "w") as g:
    g.write('[defaults]\nparallel = 16\n')
    for i in range(n):
        deps = sorted({f"s{j:05}" for j in random.sample(range(i), min(i, random.choice([0, 1, 1, 2, 3])))})
        g.write(f'[services.s{i:05}]\ntier = 1\nrto = "1h"\n')
        if deps:
            g.write("depends_on = [" + ", ".join(f'"{d}"' for d in deps) + "]\n")
        with open(f"{root}/playbooks/s{i:05}.toml", "w") as p:
            p.write('[[steps]]\nname = "up"\ncmd = ["true"]\n')
EOF
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "failed: $*"; exit 1; }; e=$(date +%s.%N); echo "$e - $s" | bc; }
best_files=999; best_etcd=999
for r in 1 2 3; do
  f=$(t "$BIN" run --eager --parallel 16 -q --state-dir "$work/state$r" "$work/dr")
  e=$(t "$BIN" run --eager --parallel 16 -q --store "etcd://$eps/bench-run$r" "$work/dr")
  echo "round $r: file store ${f}s, etcd ${e}s"
  best_files=$(echo "if ($f < $best_files) $f else $best_files" | bc)
  best_etcd=$(echo "if ($e < $best_etcd) $e else $best_etcd" | bc)
done
echo "best of 3: file store ${best_files}s, etcd ${best_etcd}s, ratio etcd/files $(echo "scale=2; $best_etcd / $best_files" | bc)"
