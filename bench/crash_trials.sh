#!/usr/bin/env bash
# Crash trials: a drill of a generated graph, the runner SIGKILLed at seeded moments, `meeseeks
# resume` after each kill, and the invariants checked after every kill and at the end of every
# drill. Not a test of speed: figures to read (and a non-zero exit when an invariant breaks).
#
#   bench/crash_trials.sh [TRIALS] [SERVICES] [SEED]      default: 100 200 1
#   CI: bench/crash_trials.sh 30 200 1
#
# Every step appends "SERVICE/STEP" to exec.log when it starts (so every execution, finished
# or killed, is counted) and sleeps a little; step 1 creates up/SERVICE, the drill's cleanup
# removes it. Invariants:
#   journal readable        `meeseeks status` reads it after every kill (exit 0, no error)
#   every service recovered the last record of each drill is run.finished "succeeded" and
#                           every service has service.recovered
#   no succeeded step re-run a step whose step.succeeded was journaled before a kill never
#                           executes again
#   re-runs only in flight  executions of a step <= 1 + number of kills at which it was in
#                           flight (step.started journaled, no outcome)
#   no orphaned process     after the final resume of a drill no process carries the run's
#                           MEESEEKS_RUN_ID; orphans found after kills are counted
#   nothing left            up/ is empty after each drill's cleanup
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS=${1:-100}
SERVICES=${2:-200}
SEED=${3:-1}
BIN=${MEESEEKS:-}
if [ -z "$BIN" ]; then
  if [ -x target/release/meeseeks ]; then BIN=$PWD/target/release/meeseeks; else
    cargo build -q --bin meeseeks
    BIN=$PWD/target/debug/meeseeks
  fi
fi
WORK=$(mktemp -d)
[ -n "${KEEP:-}" ] && echo "work dir: $WORK" || trap 'rm -rf "$WORK"' EXIT

# xorshift32, seeded: every moment and every graph is reproducible from SEED.
RNG=$(( (SEED * 2654435761) % 4294967296 )); [ "$RNG" -eq 0 ] && RNG=1
rand() { # rand N -> 0..N-1 in R
  RNG=$(( RNG ^ ((RNG << 13) & 0xffffffff) )); RNG=$(( RNG ^ (RNG >> 17) )); RNG=$(( RNG ^ ((RNG << 5) & 0xffffffff) ))
  R=$(( RNG % $1 ))
}

generate() { # generate DIR
  local dir=$1 i d deps
  mkdir -p "$dir/playbooks" "$dir/up"
  {
    echo '[defaults]'; echo 'rto = "1h"'; echo 'parallel = 16'
    for ((i = 0; i < SERVICES; i++)); do
      deps=""
      if [ "$i" -gt 0 ]; then
        rand 3; local n=$R
        for ((d = 0; d < n; d++)); do rand "$i"; deps="$deps\"s$R\", "; done
      fi
      printf '[services.s%d]\ntier = %d\ndepends_on = [%s]\n' "$i" $((i % 3)) "${deps%, }"
    done
  } > "$dir/graph.toml"
  for ((i = 0; i < SERVICES; i++)); do
    rand 40; local a=$R; rand 40; local b=$R
    # One service in four has a slow switch: long enough to outlive a killed runner.
    local slow=""; rand 4; [ "$R" -eq 0 ] && slow="; sleep 0.4; :"
    cat > "$dir/playbooks/s$i.toml" <<EOF
[[steps]]
name = "up"
run = "echo s$i/up >> exec.log; touch up/s$i; sleep 0.0$(printf %02d $a)"

[[steps]]
name = "switch"
run = "echo s$i/switch >> exec.log; sleep 0.0$(printf %02d $b)$slow"

[[cleanup]]
name = "down"
run = "echo s$i/cleanup/down >> exec.log; rm -f up/s$i"
EOF
  done
}

journal() { cat "$1"/.meeseeks/runs/*/journal.jsonl 2>/dev/null || true; }
# "SERVICE/STEP" of every record of kind $2 in journal text $1 (field order is the writer's).
steps_of() { printf '%s\n' "$1" | sed -n "s/.*\"event\":\"$2\",\"service\":\"\([^\"]*\)\",\"step\":\"\([^\"]*\)\".*/\1\/\2/p"; }
run_id() { basename "$(ls -d "$1"/.meeseeks/runs/*/ 2>/dev/null | head -1)"; }
orphans() { # live processes carrying MEESEEKS_RUN_ID=$1
  [ -n "$1" ] || { echo 0; return; }
  { grep -lzx "MEESEEKS_RUN_ID=$1" /proc/[0-9]*/environ 2>/dev/null || true; } | wc -l
}

fail=0
violation() { echo "VIOLATION: $*"; fail=1; }

kills=0; rounds=0; inflight_kills=0; reruns=0; cleanup_reruns=0; orphans_after_kill=0; stopped_by_resume=0
started_at=$(date +%s.%N)
while [ "$kills" -lt "$TRIALS" ]; do
  rounds=$((rounds + 1))
  DIR=$WORK/round$rounds
  generate "$DIR"
  : > "$DIR/exec.log"
  : > "$DIR/kills.txt"        # per kill: the steps in flight, then the succeeded ones
  cmd=(drill .)
  finished=0
  while [ "$finished" -eq 0 ]; do
    ( cd "$DIR" && exec "$BIN" -q "${cmd[@]}" --yes >"$DIR/out.txt" 2>"$DIR/err.txt" ) &
    pid=$!
    if [ "$kills" -lt "$TRIALS" ]; then
      rand 800; delay_ms=$R
      sleep "$(printf '0.%03d' "$delay_ms")"
    fi
    if [ "$kills" -lt "$TRIALS" ] && kill -0 "$pid" 2>/dev/null; then
      kill -9 "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      kills=$((kills + 1))
      j=$(journal "$DIR")
      started=$(steps_of "$j" step.started | sort -u)
      done_=$( { steps_of "$j" step.succeeded; steps_of "$j" step.failed; } | sort -u)
      inflight=$(comm -23 <(printf '%s\n' "$started") <(printf '%s\n' "$done_") | sed '/^$/d')
      [ -n "$inflight" ] && inflight_kills=$((inflight_kills + 1))
      succeeded=$(steps_of "$j" step.succeeded | sort -u)
      {
        echo "kill $kills"
        printf '%s\n' "$inflight" | sed '/^$/d; s/^/inflight /'
        printf '%s\n' "$succeeded" | sed '/^$/d; s/^/succeeded /'
      } >> "$DIR/kills.txt"
      # The executions of each succeeded step so far: it must never run again.
      sort "$DIR/exec.log" | uniq -c | awk -v k="$kills" '{print "count", k, $2, $1}' >> "$DIR/kills.txt"
      o=$(orphans "$(run_id "$DIR")"); orphans_after_kill=$((orphans_after_kill + o))
      if ! ( cd "$DIR" && "$BIN" -q status --format json >/dev/null 2>"$DIR/status.err" ); then
        violation "round $rounds kill $kills: status cannot read the journal: $(cat "$DIR/status.err")"
      fi
      if [ -n "$(run_id "$DIR")" ]; then cmd=(resume); fi
    else
      wait "$pid" && code=0 || code=$?
      if [ "$code" -ne 0 ] && [ "$code" -ne 1 ]; then
        # 2 with "finished successfully; nothing to resume": the kill came after the end.
        grep -q "nothing to resume" "$DIR/err.txt" || violation "round $rounds: exit $code: $(cat "$DIR/err.txt")"
      fi
      finished=1
    fi
    stopped_by_resume=$((stopped_by_resume + $(grep -c "left running by the previous runner" "$DIR/err.txt" || true)))
  done
  # End of a drill: the invariants.
  j=$(journal "$DIR")
  last=$(printf '%s\n' "$j" | grep -v '^$' | tail -1)
  case "$last" in *'"event":"run.finished","outcome":"succeeded"'*) ;; *) violation "round $rounds: last record: $last";; esac
  rec=$(printf '%s\n' "$j" | sed -n 's/.*"event":"service.recovered","service":"\([^"]*\)".*/\1/p' | sort -u | wc -l)
  [ "$rec" -eq "$SERVICES" ] || violation "round $rounds: $rec of $SERVICES services recovered"
  o=$(orphans "$(run_id "$DIR")"); [ "$o" -eq 0 ] || violation "round $rounds: $o step processes left running"
  left=$(ls "$DIR/up" | wc -l); [ "$left" -eq 0 ] || violation "round $rounds: $left services not cleaned up"
  # Per step: executions against kills in flight, and no execution after its success.
  sort "$DIR/exec.log" | uniq -c | awk '{print "final", $2, $1}' > "$DIR/final.txt"
  r=$(awk '
    FNR == NR { if ($1 == "final") final[$2] = $3; next }
    $1 == "kill" { k = $2; next }
    $1 == "inflight" { inflight[$2]++; next }
    $1 == "succeeded" { succ[k, $2] = 1; next }
    $1 == "count" { cnt[$2, $3] = $4; next }
    END {
      for (key in succ) { split(key, p, SUBSEP); c = (p[1] SUBSEP p[2]) in cnt ? cnt[p[1], p[2]] : 0
        if (final[p[2]] != c) { print (p[2] ~ /\/cleanup\// ? "CLEANUP-RERUN: " : "VIOLATION: ") p[2] " succeeded before kill " p[1] " (" c " executions) but ran " final[p[2]] " times in all" } }
      for (s in final) { allowed = 1 + inflight[s]
        if (final[s] > allowed) print (s ~ /\/cleanup\// ? "CLEANUP-RERUN: " : "VIOLATION: ") s " ran " final[s] " times, in flight at " inflight[s] + 0 " kills"
        if (final[s] > 1 && s !~ /\/cleanup\//) reruns += final[s] - 1 }
      print "reruns", reruns + 0 }' "$DIR/final.txt" "$DIR/kills.txt")
  # Here-strings, not pipes: `grep -q` closing a pipe early fails the pipeline (pipefail).
  nv=$(grep -c VIOLATION <<< "$r" || true)
  if [ "$nv" -gt 0 ]; then
    grep VIOLATION <<< "$r" | head -20 || true
    echo "VIOLATION: round $rounds: $nv step(s) ran more often than allowed"
    fail=1
  fi
  reruns=$((reruns + $(awk '$1 == "reruns" {print $2}' <<< "$r")))
  # Succeeded cleanup steps run again by resume: a known runner bug (issue 12 item 9). Fatal
  # unless ALLOW_CLEANUP_RERUN=1 (CI, until it is fixed).
  nc=$(grep -c '^CLEANUP-RERUN' <<< "$r" || true)
  cleanup_reruns=$((cleanup_reruns + nc))
  if [ "$nc" -gt 0 ]; then
    grep '^CLEANUP-RERUN' <<< "$r" | head -3 || true
    if [ -z "${ALLOW_CLEANUP_RERUN:-}" ]; then
      echo "VIOLATION: round $rounds: $nc succeeded cleanup steps ran again"; fail=1
    fi
  fi
  # Cleanup steps run once per drill, never again after they succeeded.
  cl=$(grep -c '/cleanup/down$' "$DIR/exec.log" || true)
  [ "$cl" -ge "$SERVICES" ] || violation "round $rounds: $cl cleanup executions for $SERVICES services"
  echo "round $rounds: $SERVICES services recovered, $kills kills so far, cleanup executions $cl"
done
elapsed=$(echo "$(date +%s.%N) - $started_at" | bc)
echo
echo "crash trials: $TRIALS SIGKILLs of the runner (seed $SEED), $SERVICES-service drills, $rounds drills"
echo "  kills with a step in flight:        $inflight_kills"
echo "  re-executions of recovery steps:    $reruns (every one in flight at a kill)"
echo "  succeeded cleanup steps run again:  $cleanup_reruns"
echo "  orphans seen right after kills:     $orphans_after_kill"
echo "  orphans stopped by resume:          $stopped_by_resume"
echo "  orphans left at the end:            0 checked per drill"
echo "  elapsed:                            ${elapsed}s"
if [ "$fail" -ne 0 ]; then echo "INVARIANTS VIOLATED"; exit 1; fi
echo "all invariants held"
