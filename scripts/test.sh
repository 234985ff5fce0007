#!/usr/bin/env bash
# The test command: installs what the tests need, then runs them (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-peers.sh
# The C hot path must have been built here: a silently failed build would leave the tests
# (and the benchmarks' figures) on the pure-Python decoder.
export GEARSPEC_REQUIRE_SPEEDUPS=1
python3 -m pytest -q "$@"
