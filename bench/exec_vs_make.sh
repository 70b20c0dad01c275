#!/bin/sh
# Execution benchmark: meeseeks against `make -j16` on the same 2 000-service DAG, and the
# measured makespan against the planner's critical path. Not a test: figures to read.
set -eu
cd "$(dirname "$0")/.."
exec cargo bench --bench exec_vs_make
