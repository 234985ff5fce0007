"""Driver for the python-gearman 2.x API: the `gearman` module of PyPI `gearman3` or `pygearman`,
and the forks that renamed it (`python3_gearman` of python3-gearman, `py3gearman`).

GEARSPEC_GEARMAN_MODULE names the module to drive (default `gearman`); each library's
impl.toml sets it, and PYTHONPATH to the library's own folder under .peers/python (pip
install --target), so libraries that install the same module name never meet. gearman3 and
pygearman both install a package named `gearman`; `installed_distribution()` tells which one
was imported by checking its files against each distribution's RECORD hashes. gearman3 0.2.1 reads socket
data with `array.fromstring` (gearman/connection.py `read_data_from_socket`), which
Python 3.9 removed: on this interpreter every job fails the moment the first reply
arrives. The driver still tries for real, and reports that failure as "unsupported" with
exit 5 rather than hiding it.

python-gearman's client has no WORK_EXCEPTION report of its own (it sets job.exception but
this driver is not told apart from a failure by the API before the job ends).
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import importlib.metadata as metadata
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

from gearspec.conformance.drivers import contract as c

DISTRIBUTIONS = ("gearman3", "pygearman")
MODULE = os.environ.get("GEARSPEC_GEARMAN_MODULE", "gearman")
# python3-gearman and py3gearman kept python-gearman's NoopEncoder but check for `str`
# (connection_manager.py NoopEncoder._enforce_byte_string): their data is text.
TEXT = os.environ.get("GEARSPEC_GEARMAN_TEXT") == "1"


def _out(data: bytes) -> Any:
    """Job data as the library takes it: bytes, or text for the str-only forks."""
    return data.decode("utf-8", "surrogateescape") if TEXT else data


def _library() -> Any:
    return importlib.import_module(MODULE)


def installed_distribution() -> tuple[str, str] | None:
    """(distribution, version) whose files the `gearman` package on disk matches, if any."""
    try:
        spec = importlib.util.find_spec("gearman")
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).resolve().parent
    best: tuple[int, str, str] | None = None
    for name in DISTRIBUTIONS:
        try:
            files = metadata.files(name) or []
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        matching = 0
        for entry in files:
            if not str(entry).startswith("gearman/") or not str(entry).endswith(".py") or entry.hash is None:
                continue
            located = Path(str(entry.locate())).resolve()
            if located.parent != folder and folder not in located.parents:
                continue
            try:
                digest = hashlib.new(entry.hash.mode, located.read_bytes()).digest()
            except OSError:
                continue
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == entry.hash.value:
                matching += 1
        if matching and (best is None or matching > best[0]):
            best = (matching, name, version)
    return None if best is None else (best[1], best[2])


def version() -> str | None:
    """The distribution that owns the `gearman` module here, and its version (the driver's probe)."""
    found = installed_distribution()
    return None if found is None else f"{found[0]} {found[1]}"


def found_limitations() -> dict[str, str]:
    """gearman3 cannot run on Python >= 3.9; pygearman can (when it is the one on disk)."""
    found = installed_distribution()
    if found is not None and found[0] == "gearman3" and sys.version_info >= (3, 9):
        reason = (
            f"gearman3 {found[1]} uses array.fromstring (gearman/connection.py read_data_from_socket), "
            "removed in Python 3.9: it fails on the first reply"
        )
        return {"client": reason, "worker": reason}
    return {}


def _broken(exc: BaseException) -> None:
    """Exit 5 when the library itself cannot run here (gearman3 on Python >= 3.9)."""
    text = str(exc)
    if isinstance(exc, AttributeError) and ("fromstring" in text or "tostring" in text):
        owner = installed_distribution()
        which = f"{owner[0]} {owner[1]}" if owner else "the installed gearman module"
        c.unsupported(
            f"{which} cannot run on Python {sys.version_info[0]}.{sys.version_info[1]}: "
            f"array.{'fromstring' if 'fromstring' in text else 'tostring'} was removed in Python 3.9"
        )


def client(args: c.ClientArgs) -> int:
    if args.tls:
        c.unsupported("TLS (gearman3 has no TLS)")
    gearman: Any = _library()

    priority = {"high": gearman.PRIORITY_HIGH, "normal": gearman.PRIORITY_NONE, "low": gearman.PRIORITY_LOW}
    gm = gearman.GearmanClient([f"{args.host}:{args.port}"])
    try:
        request = gm.submit_job(
            args.function, _out(args.data), unique=args.unique, priority=priority[args.priority],
            background=args.background, wait_until_complete=not args.background, poll_timeout=args.timeout,
        )
    except (gearman.errors.ServerUnavailable, gearman.errors.ExceededConnectionAttempts) as exc:
        # ExceededConnectionAttempts: the connection was lost and max_retries (default 0) spent
        # (gearman/client.py GearmanClient.send_job_request).
        print(f"connection error: {exc}", file=sys.stderr)
        return c.EXIT_CONNECTION
    except AttributeError as exc:
        _broken(exc)
        raise
    if args.background:
        if request.state != gearman.JOB_CREATED:
            print(f"connection error: job state {request.state}", file=sys.stderr)
            return c.EXIT_CONNECTION
        print(request.job.handle if isinstance(request.job.handle, str) else request.job.handle.decode())
        return c.EXIT_OK
    if request.timed_out:
        print(f"timed out after {args.timeout:g}s", file=sys.stderr)
        return c.EXIT_TIMEOUT
    # python-gearman 2.x queues every WORK_STATUS in status_updates; pygearman keeps only the
    # last one, in request.status (gearman/client_handler.py recv_work_status).
    updates = getattr(request, "status_updates", None)
    if updates is None:
        last = getattr(request, "status", {}) or {}
        updates = [(last["numerator"], last["denominator"])] if "numerator" in last else []
    for update in updates:
        print(f"status: {update[0]}/{update[1]}", file=sys.stderr)
    for chunk in request.data_updates:
        print(f"data: {chunk.decode('utf-8', 'replace') if isinstance(chunk, bytes) else chunk}", file=sys.stderr)
    if request.exception is not None:
        print(f"exception: {request.exception}", file=sys.stderr)
        return c.EXIT_EXCEPTION
    if request.state == gearman.JOB_FAILED:
        return c.EXIT_FAIL
    result = request.result
    sys.stdout.buffer.write(result if isinstance(result, bytes) else str(result).encode())
    return c.EXIT_OK


def worker(args: c.WorkerArgs) -> int:
    if args.tls:
        c.unsupported("TLS (gearman3 has no TLS)")
    gearman: Any = _library()

    done = 0
    deadline = time.monotonic() + args.timeout

    class _Worker(gearman.GearmanWorker):  # type: ignore[misc,unused-ignore]
        def after_poll(self, any_activity: bool) -> bool:
            return (args.count is None or done < args.count) and time.monotonic() < deadline

    def handle(gm: Any, job: Any) -> Any:
        nonlocal done
        data = job.data if isinstance(job.data, bytes) else str(job.data).encode("utf-8", "surrogateescape")
        action = c.worker_action(data)
        done += 1
        if action.fail:
            raise RuntimeError("fail")  # python-gearman answers an exception with WORK_FAIL
        if action.status:
            gm.send_job_status(job, 1, 2)
            gm.send_job_data(job, _out(b"partial"))
        return _out(action.result)

    gm = _Worker([f"{args.host}:{args.port}"])
    # pygearman keys its tasks by the bytes JOB_ASSIGN_UNIQ carries: it needs bytes function names.
    owner = installed_distribution() if MODULE == "gearman" else None
    name: Any = args.function.encode() if owner is not None and owner[0] == "pygearman" else args.function
    gm.register_task(name, handle)
    try:
        gm.work(poll_timeout=0.5)
    except gearman.errors.ServerUnavailable as exc:
        print(f"connection error: {exc}", file=sys.stderr)
        return c.EXIT_CONNECTION
    except AttributeError as exc:
        _broken(exc)
        raise
    if args.count is not None and done < args.count:
        print(f"timed out after {args.timeout:g}s ({done} jobs done)", file=sys.stderr)
        return c.EXIT_TIMEOUT
    return c.EXIT_OK


def main() -> int:
    try:
        _library()
    except ImportError:
        print(f"python_gearman_driver: no `{MODULE}` module (see the library's impl.toml install)", file=sys.stderr)
        return c.EXIT_USAGE
    args = c.parse(prog="python_gearman_driver")
    if isinstance(args, c.ClientArgs) and args.exceptions:
        c.cannot_ask_exceptions("python-gearman")
    return client(args) if isinstance(args, c.ClientArgs) else worker(args)


if __name__ == "__main__":
    sys.exit(main())
