# gearspec's reference server. The build context is the gearspec source tree (the launcher
# sends only the package folders, setup.py, pyproject.toml and README.md).
ARG BASE=gearspec-base:bookworm
FROM ${BASE}
COPY . /opt/gearspec-src
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-pip >/dev/null \
 && pip3 install -q --break-system-packages --no-cache-dir --disable-pip-version-check --no-deps /opt/gearspec-src \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /opt/gearspec-src
