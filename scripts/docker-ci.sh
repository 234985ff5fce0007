#!/usr/bin/env bash
# The Docker part of CI: a private Docker engine, the images, the conformance suite against
# each server image, the Docker tests and the interop matrix; then the engine is stopped and
# its files removed. Needs root. Results go to $GEARSPEC_CI_OUT (default .ci-out/docker).
#
#   scripts/docker-ci.sh
#
# The engine runs with the vfs storage driver (works inside containers and on any file
# system), no iptables and no bridge: every container uses host networking. Its state lives
# in a temporary folder, so a Docker engine already on the machine is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${GEARSPEC_CI_OUT:-$ROOT/.ci-out/docker}
mkdir -p "$OUT"
# Every server of the registry with an image and a profile (conformance/impls/NAME/).
# A server whose image copies a program built by install-peers (context "peers", e.g.
# rustygeard without cargo) is left out with a line saying so.
mapfile -t SERVERS < <(python3 -c 'import sys
from gearspec.conformance.impls import load_registry
for i in load_registry().with_role("server"):
    if not (i.image and i.expectations):
        continue
    if i.context == "peers" and not i.local_available():
        print(f"docker-ci: {i.name} left out: scripts/install-peers.sh did not build it", file=sys.stderr)
        continue
    print(i.name)')
started=$(date +%s)
say() { printf 'docker-ci [%4ss] %s\n' "$(( $(date +%s) - started ))" "$*"; }

# -- 1. packages and 2. a private engine ---------------------------------------------------
# GEARSPEC_DOCKER_ENGINE=existing uses the engine DOCKER_HOST (or the default socket) names,
# e.g. on GitHub's runners; otherwise this script runs its own.
DOCKERD_PID=
STATE=
stop_engine() {
  local status=$?
  python3 -m gearspec.conformance.servers.docker clean >/dev/null 2>&1 || true
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    kill "$DOCKERD_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$DOCKERD_PID" 2>/dev/null || true
    say "engine stopped"
  fi
  if [ -n "$STATE" ]; then
    # dockerd leaves mounts behind (its network namespace file, the data root): unmount
    # them, deepest first, before removing the folder.
    awk -v s="$STATE" 'index($2, s) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
      umount -l "$m" 2>/dev/null || true
    done
    rm -rf "$STATE" 2>/dev/null || echo "docker-ci: could not remove $STATE" >&2
  fi
  say "total $(( $(date +%s) - started ))s"
  exit "$status"
}
trap stop_engine EXIT
trap 'exit 130' INT TERM
python3 -c "import docker" 2>/dev/null || python3 -m pip install -q --disable-pip-version-check docker
if [ "${GEARSPEC_DOCKER_ENGINE:-}" = existing ]; then
  docker version >/dev/null || { echo "docker-ci: GEARSPEC_DOCKER_ENGINE=existing, but no engine answers" >&2; exit 1; }
else
  missing=()
  for pkg in docker.io debootstrap; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    say "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # vfs works on any file system (also inside a container); no iptables, no bridge: host
  # networking only. State in a temporary folder, so any other engine is left alone.
  STATE=$(mktemp -d /tmp/gearspec-dockerd.XXXXXX)
  export DOCKER_HOST="unix://$STATE/docker.sock"
  dockerd --storage-driver=vfs --iptables=false --bridge=none \
    --data-root "$STATE/data" --exec-root "$STATE/exec" --pidfile "$STATE/dockerd.pid" \
    -H "$DOCKER_HOST" >"$OUT/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 300); do
    docker version >/dev/null 2>&1 && break
    kill -0 "$DOCKERD_PID" 2>/dev/null || { tail -20 "$OUT/dockerd.log" >&2; echo "docker-ci: dockerd exited" >&2; exit 1; }
    sleep 0.2
  done
  docker version >/dev/null 2>&1 || { tail -20 "$OUT/dockerd.log" >&2; echo "docker-ci: dockerd did not answer within 60s" >&2; exit 1; }
fi
say "engine up at ${DOCKER_HOST:-the default socket}"

# The local drivers (clients and workers) for the matrix; quick when already installed.
bash scripts/install-peers.sh >/dev/null

# -- 3. images -----------------------------------------------------------------------------
bash scripts/docker-base.sh
# The peers image is the big one: build it beside the small server images.
python3 -m gearspec.conformance.servers.docker build peers >"$OUT/build-peers.log" 2>&1 &
peers_build=$!
python3 -m gearspec.conformance.servers.docker build "${SERVERS[@]}" 2>&1 | grep -v '^  ' || { echo "docker-ci: server images failed to build" >&2; exit 1; }
wait "$peers_build" || { tail -30 "$OUT/build-peers.log" >&2; echo "docker-ci: the peers image failed to build" >&2; exit 1; }
grep -v '^  ' "$OUT/build-peers.log" || true
say "images built"

# -- 4. checks (all run; the script fails if any failed) -------------------------------------
failed=()
for server in "${SERVERS[@]}"; do
  if python3 -m gearspec test --target "docker:$server" --profile "$server" -q \
       --json "$OUT/suite-$server.json" --html "$OUT/suite-$server.html" >"$OUT/suite-$server.txt" 2>&1; then
    say "suite against docker:$server: $(tail -1 "$OUT/suite-$server.txt")"
  else
    tail -15 "$OUT/suite-$server.txt"
    failed+=("suite:$server")
    say "suite against docker:$server FAILED (see $OUT/suite-$server.txt)"
  fi
done
if GEARSPEC_DOCKER_TESTS=1 python3 -m pytest tests/docker -q -p no:cacheprovider >"$OUT/docker-tests.txt" 2>&1; then
  say "Docker tests: $(tail -1 "$OUT/docker-tests.txt")"
else
  tail -30 "$OUT/docker-tests.txt"
  failed+=("tests/docker")
fi
# Servers in their images, drivers as local processes: a `docker exec` per driver run costs
# about a second here, too slow for the whole matrix (tests/docker runs a few in the peers image).
# Every server, but only the first seven client libraries: all 16 take .ci/run past its 40
# minutes (the GitHub workflow's per-implementation jobs run each library against every server).
CLIENTS=reference,gearmand,perl,php,gear,gearman3,node
if python3 -m gearspec interop --mode docker-servers --clients "$CLIENTS" -q --json "$OUT/interop.json" --html "$OUT/interop.html" >"$OUT/interop.txt" 2>&1; then
  cat "$OUT/interop.txt"
else
  cat "$OUT/interop.txt"
  failed+=("interop")
fi
say "interop matrix done"

if ((${#failed[@]})); then
  echo "docker-ci: FAILED: ${failed[*]} (reports in $OUT)" >&2
  exit 1
fi
echo "docker-ci: all passed (reports in $OUT)"
