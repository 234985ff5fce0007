# python gear's geard (PyPI gear). Without a log config geard logs every packet; the one
# written here keeps warnings only. (No ARG/ENV steps: with the vfs storage driver each
# step copies the whole image.)
ARG BASE=gearspec-base:bookworm
FROM ${BASE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-pip >/dev/null \
 && pip3 install -q --break-system-packages --no-cache-dir --disable-pip-version-check gear==0.16.0 \
 && printf '%s\n' '[loggers]' 'keys=root' '[handlers]' 'keys=stderr' '[formatters]' 'keys=plain' \
      '[logger_root]' 'level=WARNING' 'handlers=stderr' '[handler_stderr]' 'class=StreamHandler' \
      'level=WARNING' 'formatter=plain' 'args=(sys.stderr,)' '[formatter_plain]' \
      'format=%(asctime)s %(levelname)s %(name)s: %(message)s' >/etc/gear-log.conf \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
