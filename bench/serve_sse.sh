#!/bin/sh
# The war room under load: `meeseeks serve` while a 2 000-service eager run streams through
# it — events per second delivered, delivery lag against `tail -F` of the same journal, CPU
# of serve against the runner's, the run page's size, and (with Chromium) how busy the page's
# main thread gets. Not a test: figures to read.
set -eu
cd "$(dirname "$0")/.."
exec cargo bench --bench serve_sse
