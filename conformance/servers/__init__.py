"""Every way gearspec starts or opens a job server, in one package.

- `local`: a local process on port 0, the port read back from /proc (`start_local`,
  `RunningServer`, with `restart()` and `stop()`);
- `docker`: containers with host networking, images built from each implementation's
  Dockerfile (imported only when Docker is used; ``python -m gearspec.conformance.servers.docker``);
- `targets`: the one `Target` type, target specs (``HOST:PORT``, ``docker:IMAGE``,
  ``impl:NAME``, ``local:NAME``) and the one Docker-then-local policy (`open_server`).

What each implementation needs to start comes from `gearspec.conformance.impls`; the CLI,
the pytest plugin, the interop matrix, the compatibility table, the benchmarks and the tests
all start servers through here.
"""

from gearspec.conformance.servers.local import LaunchError, RunningServer, listening_ports, start_local
from gearspec.conformance.servers.targets import (
    MODES,
    Launched,
    Target,
    TargetError,
    open_server,
    open_target,
    server_available,
    start_server,
)

__all__ = [
    "MODES",
    "LaunchError",
    "Launched",
    "RunningServer",
    "Target",
    "TargetError",
    "listening_ports",
    "open_server",
    "open_target",
    "server_available",
    "start_local",
    "start_server",
]
