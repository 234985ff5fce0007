# Perl Gearman::Server (Debian gearman-server; its script is /usr/bin/gearmand).
ARG BASE=gearspec-base:bookworm
FROM ${BASE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gearman-server >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
