#!/usr/bin/env bash
# Preflight speed: `meeseeks preflight` of 2 000 services with 3 probes each (6 000 real HTTP
# GETs with a body expectation, `[[preflight]]` entries) against local `meeseeks stub`
# processes, against `curl --parallel` fetching the same 6 000 URLs with the same
# concurrency, in one run. Not a test: figures to read.
#
# Each service also has a `cmd` step (program looked up on PATH) and an http check (rendered,
# host resolved, connection opened): what a real playbook carries. The preflight figure is the
# whole command (load graph + 2 000 playbooks, inspect, probe, JSON written); curl only
# fetches. Runs are interleaved (REPS, default 5) and the median counts. While meeseeks runs,
# its thread count is sampled: probes are tokio tasks under one semaphore, not threads.
#
# usage: bench/preflight_vs_curl.sh        (SERVICES=2000 PROBES=3 PARALLEL=64 STUBS=8 REPS=5)
set -euo pipefail
cd "$(dirname "$0")/.."

SERVICES=${SERVICES:-2000}
PROBES=${PROBES:-3}
PARALLEL=${PARALLEL:-64}
STUBS=${STUBS:-8}
REPS=${REPS:-5}
command -v curl >/dev/null || { echo "curl not found" >&2; exit 2; }
command -v python3 >/dev/null || { echo "python3 not found" >&2; exit 2; }

cargo build --release --quiet --bin meeseeks
BIN=$PWD/target/release/meeseeks
WORK=$(mktemp -d)
cleanup() {
    for p in "$WORK"/stub*.pid; do
        [ -e "$p" ] && "$BIN" stub --stop --pidfile "$p" >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# Free ports, chosen by the OS.
mapfile -t PORTS < <(python3 -c "
import socket
socks = [socket.socket() for _ in range($STUBS)]
for s in socks: s.bind(('127.0.0.1', 0))
print('\n'.join(str(s.getsockname()[1]) for s in socks))")
for i in "${!PORTS[@]}"; do
    "$BIN" stub --name "stub$i" --listen "127.0.0.1:${PORTS[$i]}" --ttl 30m \
        --detach --pidfile "$WORK/stub$i.pid" >/dev/null
done

python3 - "$WORK/dr" "$WORK/urls.cfg" "$SERVICES" "$PROBES" "${PORTS[@]}" <<'EOF'
import os, sys
dr, cfg, n, probes, ports = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]
os.makedirs(f"{dr}/playbooks")
with open(f"{dr}/graph.toml", "w") as g, open(cfg, "w") as c:
    for i in range(n):
        name = f"svc-{i:05}"
        g.write(f"[services.{name}]\ntier = {i % 4}\n")
        port = ports[i % len(ports)]
        pb = [
            '[[steps]]\nname = "promote"\ncmd = ["true", "{{ service }}"]\n',
            f'[[checks]]\nname = "healthz"\nhttp = {{ url = "http://127.0.0.1:{port}/healthz", expect_body = "ok" }}\n',
        ]
        for p in range(probes):
            url = f"http://127.0.0.1:{port}/healthz?svc={name}&probe={p}"
            pb.append(f'[[preflight]]\nname = "probe {p}"\nhttp = {{ url = "{url}", expect_body = "ok" }}\ntimeout = "10s"\n')
            c.write(f'url = "{url}"\noutput = "/dev/null"\n')
        open(f"{dr}/playbooks/{name}.toml", "w").write("\n".join(pb))
EOF

served() {
    local total=0
    for p in "${PORTS[@]}"; do
        total=$((total + $(curl -s "http://127.0.0.1:$p/requests")))
    done
    echo "$total"
}

# One preflight, timed; prints "wall_s peak_threads evaluation_s".
run_preflight() {
    local t0 t1 pid peak=0 n
    t0=$EPOCHREALTIME
    "$BIN" preflight "$WORK/dr" --format json --no-record --parallel "$PARALLEL" \
        >"$WORK/report.json" 2>"$WORK/stderr" &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        n=$(awk '/^Threads:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
        [ "${n:-0}" -gt "$peak" ] && peak=$n
        sleep 0.005
    done
    wait "$pid" || { echo "preflight failed:" >&2; cat "$WORK/stderr" >&2; exit 1; }
    t1=$EPOCHREALTIME
    python3 -c "
import json, sys
r = json.load(open('$WORK/report.json'))
assert r['ready'] and r['counts']['ready'] == $SERVICES, r['counts']
print('%.3f $peak %.3f' % ($t1 - $t0, r['duration_s']))"
}

run_curl() {
    local t0 t1
    t0=$EPOCHREALTIME
    curl -sS --no-progress-meter --fail --parallel --parallel-max "$PARALLEL" -K "$WORK/urls.cfg"
    t1=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

: >"$WORK/m"; : >"$WORK/c"; : >"$WORK/threads"; : >"$WORK/eval"
for _ in $(seq "$REPS"); do
    before=$(served)
    read -r wall peak eval < <(run_preflight)
    after=$(served)
    # The GETs the probes made (the connection probes of the checks send no request).
    want=$((SERVICES * PROBES))
    [ $((after - before - STUBS)) -eq "$want" ] || {
        echo "stubs served $((after - before - STUBS)) requests during preflight, expected $want" >&2; exit 1; }
    echo "$wall" >>"$WORK/m"; echo "$peak" >>"$WORK/threads"; echo "$eval" >>"$WORK/eval"
    run_curl >>"$WORK/c"
done
m=$(median <"$WORK/m"); c=$(median <"$WORK/c"); e=$(median <"$WORK/eval")
t=$(sort -n "$WORK/threads" | tail -1)
echo "preflight of $SERVICES services x $PROBES probes ($((SERVICES * PROBES)) HTTP GETs), parallel $PARALLEL, $STUBS stubs, median of $REPS"
printf '  meeseeks preflight   %6.3f s wall (evaluation %.3f s; peak %d threads)\n' "$m" "$e" "$t"
printf '  curl --parallel      %6.3f s wall (same URLs, --parallel-max %d)\n' "$c" "$PARALLEL"
awk -v m="$m" -v c="$c" 'BEGIN { printf "  preflight / curl    %6.2fx\n", m / c }'
