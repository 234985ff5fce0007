# C gearmand 1.1.x (Debian gearman-job-server). The launcher appends the command from
# conformance/impls.toml (listen address and port). One RUN: the vfs storage driver copies
# every layer in full, so fewer layers build faster.
ARG BASE=gearspec-base:bookworm
FROM ${BASE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gearman-job-server >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
