"""Driver for gearmand's `gearman` command-line tool (libgearman, C; Debian gearman-tools).

Client: `gearman -h H -p P -f F [-b] [-I|-L] [-u U] -s`-style runs, data from stdin. The tool
writes WORK_DATA and the WORK_COMPLETE data to stdout alike and status as "N% Complete"
lines there too (bin/gearman.cc `_client_data`, `_client_status`), so a job that streams
cannot have its result told apart: the driver reports that as a limitation. libgearman's
client does not ask for exceptions, so a WORK_EXCEPTION arrives as WORK_FAIL ("Job failed"
on stderr, exit status 1: bin/gearman.cc `_client_fail`). A background job's handle is
printed only in verbose mode ("Task created: H", `_client_created`).

Worker: `gearman -w -f F -c 1 -- CMD` (once per job) runs CMD per job with the data on stdin and sends its
stdout as the result; a non-zero exit gives WORK_FAIL (bin/gearman.cc `_worker_cb`). The
command cannot send WORK_STATUS, so the "status" job is failed with "unsupported" on stderr.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time

from gearspec.conformance.drivers import contract as c

GEARMAN = os.environ.get("GEARSPEC_GEARMAN_CLI", "gearman")

# The per-job command of the worker: the contract's behaviour on stdin/stdout.
_JOB_SCRIPT = """
import sys
data = sys.stdin.buffer.read()
if data == b"fail":
    sys.exit(1)
if data == b"status":
    sys.stderr.write("unsupported: the gearman CLI worker cannot send WORK_STATUS or WORK_DATA\\n")
    sys.exit(5)
sys.stdout.buffer.write(data[::-1])
"""

_CREATED = re.compile(rb"^Task created: (\S+)$", re.M)
_CONNECT_PROBLEMS = (b"Connection refused", b"connect", b"Lost connection", b"GEARMAN_COULD_NOT_CONNECT",
                     b"GEARMAN_LOST_CONNECTION", b"No route", b"ECONNREFUSED")


def _program() -> str:
    found = shutil.which(GEARMAN)
    if found is None:
        print(f"connection error: {GEARMAN} is not installed (Debian package gearman-tools)", file=sys.stderr)
        sys.exit(c.EXIT_USAGE)
    return found


def client(args: c.ClientArgs) -> int:
    if args.tls:
        c.unsupported("TLS (Debian's libgearman 1.1.20 takes -S but still sends plaintext)")
    argv = [_program(), "-h", args.host, "-p", str(args.port), "-f", args.function,
            "-t", str(int(args.timeout * 1000))]
    if args.background:
        argv += ["-b", "-v"]
    if args.priority == "high":
        argv.append("-I")
    elif args.priority == "low":
        argv.append("-L")
    if args.unique is not None:
        argv += ["-u", args.unique]
    try:
        done = subprocess.run(argv, input=args.data, capture_output=True, timeout=args.timeout + 5)
    except subprocess.TimeoutExpired:
        print(f"timed out after {args.timeout:g}s", file=sys.stderr)
        return c.EXIT_TIMEOUT
    sys.stderr.buffer.write(done.stderr)
    # The tool exits 0 even when it could not connect or timed out; its errors are
    # "gearman: ..." lines on stderr (bin/gearman.cc error::message).
    errors = [line for line in done.stderr.splitlines() if line.startswith(b"gearman: ")]
    if done.returncode == 0 and not errors:
        if args.background:
            found = _CREATED.search(done.stdout)
            if found is None:
                print(f"gearman printed no job handle: {done.stdout[:200]!r}", file=sys.stderr)
                return c.EXIT_USAGE
            print(found.group(1).decode("latin-1"))
        else:
            sys.stdout.buffer.write(done.stdout)
        sys.stdout.flush()
        return c.EXIT_OK
    if b"Job failed" in done.stderr:
        return c.EXIT_FAIL
    text = b"\n".join(errors)
    if b"TIMEOUT" in text:
        return c.EXIT_TIMEOUT
    if any(p in text for p in _CONNECT_PROBLEMS):
        return c.EXIT_CONNECTION
    print(f"gearman exited with status {done.returncode}", file=sys.stderr)
    return c.EXIT_CONNECTION


def worker(args: c.WorkerArgs) -> int:
    if args.tls:
        c.unsupported("TLS (Debian's libgearman 1.1.20 takes -S but still sends plaintext)")
    # `gearman -w -c N` counts calls to gearman_worker_work, and after a WORK_FAIL the next
    # call returns GEARMAN_UNKNOWN_STATE at once, so failed jobs count twice (bin/gearman.cc
    # `_worker`). One `-c 1` process per job counts jobs exactly.
    deadline = time.monotonic() + args.timeout
    done = 0
    while args.count is None or done < args.count:
        argv = [_program(), "-w", "-h", args.host, "-p", str(args.port), "-f", args.function, "-c", "1",
                "--", sys.executable, "-S", "-c", _JOB_SCRIPT]
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _, err = process.communicate(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            print(f"timed out after {args.timeout:g}s ({done} jobs done)", file=sys.stderr)
            return c.EXIT_TIMEOUT
        sys.stderr.buffer.write(err)
        if any(p in err for p in _CONNECT_PROBLEMS):
            return c.EXIT_CONNECTION
        if process.returncode != 0:
            return c.EXIT_USAGE
        done += 1
    return c.EXIT_OK


def main() -> int:
    args = c.parse(prog="gearman_cli_driver")
    if isinstance(args, c.ClientArgs) and args.exceptions:
        c.cannot_ask_exceptions("the gearman tool")
    return client(args) if isinstance(args, c.ClientArgs) else worker(args)


if __name__ == "__main__":
    sys.exit(main())
