# Every client and worker library the interop matrix drives, plus gearspec itself (its
# reference client/worker and the drivers in gearspec.conformance.drivers). One image for all
# of them: the matrix starts one container and runs each driver in it with `docker exec`.
# The libraries come first (one RUN: the vfs storage driver copies every layer in full), so
# a change to gearspec's sources rebuilds only the last two layers.
ARG BASE=gearspec-base:bookworm
FROM ${BASE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      gearman-tools libgearman-client-perl php-cli php-gearman python3 python3-pip nodejs npm >/dev/null \
 && pip3 install -q --break-system-packages --no-cache-dir --disable-pip-version-check gear==0.16.0 gearman3 \
 && mkdir -p /opt/gearspec/.peers/node && cd /opt/gearspec/.peers/node \
 && npm install --silent --no-audit --no-fund gearman@2 >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /root/.npm
# node's gearman sits where the drivers look for it (.peers/node in the source tree). No ENV
# or LABEL steps: with the vfs storage driver each step copies the whole image.
COPY . /opt/gearspec
# Editable, so the drivers' Perl, PHP and JavaScript scripts stay next to their package.
RUN pip3 install -q --break-system-packages --no-cache-dir --disable-pip-version-check --no-deps -e /opt/gearspec
