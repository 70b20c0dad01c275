#!/usr/bin/env bash
# Quality of the planner's schedules (issue 17): not a test, figures to read.
#
# Small instances (6–10 services, both modes, parallel 1–4, tight/loose/mixed/planted RTOs)
# against an independent exact solver (dynamic programming over event times): % at the
# optimum and mean gap, for the plan, the plan without its exact search, and every single
# priority rule. Large instances (200 and 2 000 services): the plan's breaches against each
# rule's, how often a rule does better (never, by construction), and on planted instances how
# often a schedule without breach is found. Every instance comes from a fixed seed.
#
# usage: bench/plan_quality.sh [SMALL_DAGS] [LARGE_DAGS]   (default: 480 24)
#   PLAN_QUALITY_MISSES=1 lists the small instances the plan without exact search misses.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --example plan_quality
exec target/release/examples/plan_quality "$@"
