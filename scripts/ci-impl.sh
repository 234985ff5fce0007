#!/usr/bin/env bash
# Installs and tests one implementation of the registry (conformance/impls/NAME/): the
# conformance suite against its server (with its profile) and the interop matrix of its
# server against every client library, or of its client library against every server. The
# GitHub workflow runs it once per implementation, in parallel jobs.
#
#   scripts/ci-impl.sh NAME        e.g. gearmand, abraxas, rustygeard, php
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: scripts/ci-impl.sh NAME (an implementation in conformance/impls/)}
OUT=${GEARSPEC_CI_OUT:-.ci-out/impl-$name}
bash scripts/install-peers.sh
mkdir -p "$OUT"
roles=$(python3 -c 'import sys
from gearspec.conformance.impls import load_registry
try:
    print(" ".join(sorted(load_registry()[sys.argv[1]].roles)))
except KeyError as exc:
    sys.exit(f"ci-impl: {exc.args[0]}")' "$name")
status=0
if [[ " $roles " == *" server "* ]]; then
  python3 -m gearspec test --local "$name" --profile "$name" -q --json "$OUT/suite.json" --junit "$OUT/suite.xml" \
    || status=1
  python3 -m gearspec interop --servers "$name" -q --json "$OUT/interop.json" --junit "$OUT/interop.xml" || status=1
elif [[ " $roles " == *" client "* ]]; then
  python3 -m gearspec interop --clients "$name" -q --json "$OUT/interop.json" --junit "$OUT/interop.xml" || status=1
else
  echo "ci-impl: $name has no server or client role (roles: ${roles:-none}); nothing to test" >&2
fi
exit "$status"
