#!/usr/bin/env bash
# The test command: installs what the tests need, then runs them (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-peers.sh
python3 -m pytest -q "$@"
