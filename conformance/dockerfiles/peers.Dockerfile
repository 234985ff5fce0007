# Every client and worker library the interop matrix drives, plus gearspec itself (its
# reference client/worker and the drivers in gearspec.conformance.drivers). One image for all
# of them: the matrix starts one container and runs each driver in it with `docker exec`.
ARG BASE=gearspec-base:bookworm
FROM ${BASE}
COPY . /opt/gearspec-src
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      gearman-tools libgearman-client-perl php-cli php-gearman python3 python3-pip nodejs npm >/dev/null \
 && pip3 install -q --break-system-packages --no-cache-dir --disable-pip-version-check gear==0.16.0 gearman3 \
 && pip3 install -q --break-system-packages --no-cache-dir --disable-pip-version-check --no-deps /opt/gearspec-src \
 && mkdir -p /opt/node && cd /opt/node && npm install --silent --no-audit --no-fund gearman@2 >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /opt/gearspec-src /root/.npm
ENV NODE_PATH=/opt/node/node_modules
