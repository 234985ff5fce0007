#!/usr/bin/env bash
# Builds the base image that every Dockerfile in conformance/impls/*/ starts FROM: a
# minimal Debian made with debootstrap from this machine's configured apt mirror (read from
# /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list, never written into the repo),
# then `docker import`ed. Needs root, debootstrap and a running Docker engine.
#
#   scripts/docker-base.sh            build it unless it exists
#   FORCE=1 scripts/docker-base.sh    rebuild it
#   GEARSPEC_BASE_FROM=debian:bookworm-slim scripts/docker-base.sh   pull a base instead
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE=${GEARSPEC_BASE_IMAGE:-gearspec-base:bookworm}
SUITE=${GEARSPEC_BASE_SUITE:-bookworm}

if [ -z "${FORCE:-}" ] && docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  echo "docker-base: $BASE_IMAGE already exists (FORCE=1 rebuilds it)"
  exit 0
fi
# Where no Debian mirror is configured (e.g. GitHub's Ubuntu runners), start from a
# registry image instead: GEARSPEC_BASE_FROM=debian:bookworm-slim.
if [ -n "${GEARSPEC_BASE_FROM:-}" ]; then
  docker pull -q "$GEARSPEC_BASE_FROM" >/dev/null
  docker tag "$GEARSPEC_BASE_FROM" "$BASE_IMAGE"
  echo "docker-base: tagged $GEARSPEC_BASE_FROM as $BASE_IMAGE"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "docker-base: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }

# The first mirror whose suites include $SUITE, from deb822 .sources files or one-line lists.
MIRROR=$(SUITE="$SUITE" python3 - <<'PY'
import glob, os, re
suite = os.environ["SUITE"]
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in re.split(r"\n\s*\n", open(path).read()):
        fields = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith(("#", " ")):
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.split()
        if "deb" in fields.get("types", []) and suite in fields.get("suites", []) and fields.get("uris"):
            print(fields["uris"][0]); raise SystemExit
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    if os.path.exists(path):
        for line in open(path):
            words = re.sub(r"\[[^]]*\]", "", line).split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                print(words[1]); raise SystemExit
PY
)
if [ -z "$MIRROR" ]; then
  echo "docker-base: no apt source for '$SUITE' in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list" >&2
  exit 1
fi

ROOTFS=$(mktemp -d /tmp/gearspec-rootfs.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT
echo "docker-base: debootstrap $SUITE (minbase) from the configured mirror $MIRROR"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
debootstrap --variant=minbase --include=ca-certificates ${KEYRING:+--keyring=$KEYRING} \
  "$SUITE" "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 || {
  tail -20 "$ROOTFS.log" >&2; rm -f "$ROOTFS.log"; echo "docker-base: debootstrap failed" >&2; exit 1; }
rm -f "$ROOTFS.log"

# Trust the certificate authorities this machine added locally, so that pip and npm inside
# the images work behind the same TLS-intercepting proxy the host may use.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
  chroot "$ROOTFS" update-ca-certificates >/dev/null 2>&1
fi

# Small images copy faster (the vfs storage driver copies every layer in full): no
# recommends, no docs, manuals or translations, no package caches.
cat >"$ROOTFS/etc/apt/apt.conf.d/90gearspec" <<'CONF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
CONF
cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/90gearspec-nodoc" <<'CONF'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
CONF
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/*

tar --numeric-owner -C "$ROOTFS" -c . | docker import --change 'ENV LANG=C.UTF-8' \
  --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' - "$BASE_IMAGE" >/dev/null
echo "docker-base: imported $BASE_IMAGE ($(docker image inspect -f '{{.Size}}' "$BASE_IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
