"""Job server speed and scale: gearspec's server against gearmand and python gear, one run.

    python benchmarks/server.py                     # throughput, 64 B and 64 KiB, all servers
    python benchmarks/server.py --servers gearspec,gearmand --jobs 5000
    python benchmarks/server.py --mode idle --connections 10000
    python benchmarks/server.py --mode queue --queued 1000000
    python benchmarks/server.py --loadgen /tmp/cloadgen   # an external generator (cloadgen CLI)

Throughput mode: N worker and N client connections (foreground SUBMIT_JOB, --window jobs in
flight per client, workers echo the payload with GRAB_JOB_UNIQ / PRE_SLEEP), the same load
generator for every server. Prints jobs/s, p50/p99 latency, server RSS, server CPU per job
(user+sys of its process tree from /proc, over the measured phase) and ratios against
gearspec. On a small machine the generator competes with the server for CPU, so CPU per job
is the steadier figure; throughput follows.

`asyncio-floor` is benchmarks/floor_server.py: a job server with no rules at all on the same
event loop and write pattern, the least any asyncio server can spend per job; it shows how
much of gearspec's CPU per job is the platform and how much is the work.

Idle mode: opens --connections idle connections and reports the server's RSS and that it
still answers. Queue mode: pipelines --queued background jobs and reports RSS.
Nothing here asserts: it prints figures.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from gearspec.conformance.servers import RunningServer, start_local
from gearspec.conformance.servers import start_server as start_registry_server
from gearspec.conformance.servers.local import _descendants

HEADER = struct.Struct(">4sII")
REQ = b"\0REQ"
CAN_DO, PRE_SLEEP, NOOP, SUBMIT_JOB, JOB_CREATED, NO_JOB = 1, 4, 6, 7, 8, 10
WORK_COMPLETE, ECHO_REQ, ECHO_RES, SUBMIT_JOB_BG, ERROR = 13, 16, 17, 18, 19
GRAB_JOB_UNIQ, JOB_ASSIGN_UNIQ, GRAB_JOB, JOB_ASSIGN = 30, 31, 9, 11
FUNCTION = b"bench_echo"

# benchmark label -> registry server (conformance/impls/), or None: started below
SERVERS = {
    "gearspec": "reference",
    "gearmand-threads0": "gearmand",
    "gearmand-default": "gearmand-threads",
    "gear": "gear",
    "perl": "perl",  # Perl Gearman::Server
    "asyncio-floor": None,  # benchmarks/floor_server.py: the least an asyncio server can do per job
}


def packet(code: int, *args: bytes) -> bytes:
    payload = b"\0".join(args)
    return HEADER.pack(REQ, code, len(payload)) + payload


def start_server(name: str) -> RunningServer:
    if name == "asyncio-floor":
        floor = Path(__file__).resolve().parent / "floor_server.py"
        return start_local([sys.executable, str(floor), "--host", "{host}", "--port", "0"], name="asyncio-floor")
    peer = SERVERS[name]
    assert peer is not None
    return start_registry_server(peer)


# -- process-tree accounting ----------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in _descendants(pid):
        try:
            with open(f"/proc/{p}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / ticks


def rss_bytes(pid: int) -> int:
    total = 0
    for p in _descendants(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


# -- the Python load generator --------------------------------------------------------------
class _Conn:
    __slots__ = ("buf", "done", "grab", "kind", "lat", "out", "pending", "sent", "sock", "times", "todo")

    def __init__(self, host: str, port: int, kind: str) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.kind = kind
        self.buf = b""
        self.out = bytearray()
        self.pending: deque[float] = deque()  # submit times awaiting JOB_CREATED, in order
        self.times: dict[bytes, float] = {}  # handle -> submit time
        self.lat: list[float] = []
        self.sent = 0
        self.done = 0
        self.grab = GRAB_JOB_UNIQ
        self.todo = 0


def _generator(host: str, port: int, workers: int, clients: int, jobs: int, window: int, payload: bytes,
               start_at: float, timeout: float, results: multiprocessing.Queue) -> None:
    sel = selectors.DefaultSelector()
    conns = []
    for _ in range(workers):
        c = _Conn(host, port, "worker")
        c.out += packet(CAN_DO, FUNCTION) + packet(GRAB_JOB_UNIQ)
        conns.append(c)
    while time.time() < start_at:
        time.sleep(0.001)
    for _ in range(clients):
        c = _Conn(host, port, "client")
        c.todo = jobs
        conns.append(c)
    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ, c)
    submit = packet(SUBMIT_JOB, FUNCTION, b"", payload)
    live_clients = clients
    deadline = start_at + timeout
    while live_clients and time.time() < deadline:
        now = time.perf_counter()
        for c in conns:
            if c.kind == "client":
                while c.sent < c.todo and c.sent - c.done < window:
                    c.out += submit
                    c.pending.append(now)
                    c.sent += 1
            if c.out:
                try:
                    n = c.sock.send(c.out)
                    del c.out[:n]
                except BlockingIOError:
                    pass
        for key, _ in sel.select(1.0):
            c = key.data
            try:
                chunk = c.sock.recv(1 << 20)
            except BlockingIOError:
                continue
            if not chunk:
                raise SystemExit("server closed a load-generator connection")
            buf = c.buf + chunk if c.buf else chunk
            pos, n = 0, len(buf)
            now = time.perf_counter()
            while n - pos >= 12:
                _, code, size = HEADER.unpack_from(buf, pos)
                end = pos + 12 + size
                if end > n:
                    break
                body = buf[pos + 12:end]
                pos = end
                if code == JOB_ASSIGN_UNIQ:
                    handle, _, _, data = body.split(b"\0", 3)
                    c.out += packet(WORK_COMPLETE, handle, data) + packet(c.grab)
                elif code == JOB_ASSIGN:
                    handle, _, data = body.split(b"\0", 2)
                    c.out += packet(WORK_COMPLETE, handle, data) + packet(c.grab)
                elif code == NO_JOB:
                    c.out += packet(PRE_SLEEP)
                elif code == NOOP:
                    c.out += packet(c.grab)
                elif code == JOB_CREATED:
                    c.times[body] = c.pending.popleft()
                elif code == WORK_COMPLETE:
                    handle = body.split(b"\0", 1)[0]
                    c.lat.append(now - c.times.pop(handle))
                    c.done += 1
                    if c.done == c.todo:
                        live_clients -= 1
                elif code == ERROR and c.kind == "worker" and c.grab == GRAB_JOB_UNIQ:
                    c.grab = GRAB_JOB  # a server without GRAB_JOB_UNIQ
                    c.out += packet(GRAB_JOB)
                elif code == ERROR:
                    raise SystemExit(f"server error: {body!r}")
            c.buf = buf[pos:]
    lat = [x for c in conns for x in c.lat]
    results.put((sum(c.done for c in conns), lat))
    for c in conns:
        c.sock.close()


@dataclass
class Result:
    server: str
    payload: int
    jobs: int
    seconds: float
    p50_ms: float
    p99_ms: float
    rss_mib: float
    cpu_us_per_job: float

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.seconds if self.seconds else 0.0


def run_python_load(server: RunningServer, args: argparse.Namespace, payload_size: int) -> tuple[int, float, list[float]]:
    payload = bytes(range(256)) * (payload_size // 256) + b"x" * (payload_size % 256)
    procs = max(1, args.procs)
    results: multiprocessing.Queue = multiprocessing.Queue()
    start_at = time.time() + 0.5
    children = []
    for i in range(procs):
        w = args.workers // procs + (1 if i < args.workers % procs else 0)
        c = args.clients // procs + (1 if i < args.clients % procs else 0)
        p = multiprocessing.Process(
            target=_generator,
            args=(server.host, server.port, w, c, args.jobs, args.window, payload, start_at, args.timeout, results),
        )
        p.start()
        children.append(p)
    while time.time() < start_at:
        time.sleep(0.001)
    cpu0, t0 = cpu_seconds(server.process.pid), time.perf_counter()
    done, lat = 0, []
    for _ in children:
        n, latencies = results.get(timeout=args.timeout + 60)
        done += n
        lat += latencies
    elapsed = time.perf_counter() - t0
    cpu = cpu_seconds(server.process.pid) - cpu0
    for p in children:
        p.join(30)
    return done, elapsed, sorted(lat) or [0.0], cpu  # type: ignore[return-value]


def run_cloadgen(server: RunningServer, args: argparse.Namespace, payload_size: int) -> tuple[int, float, float, float, float]:
    cpu0 = cpu_seconds(server.process.pid)
    out = subprocess.run(
        [args.loadgen, "--port", str(server.port), "--workers", str(args.workers), "--clients", str(args.clients),
         "--jobs", str(args.jobs), "--window", str(args.window), "--payload-bytes", str(payload_size), "--json"],
        capture_output=True, text=True, timeout=900,
    )
    cpu = cpu_seconds(server.process.pid) - cpu0
    data = json.loads(out.stdout)
    return data["jobs_done"], data["elapsed_s"], data["lat_p50_ms"], data["lat_p99_ms"], cpu


def measure(name: str, args: argparse.Namespace, payload_size: int) -> Result | None:
    try:
        server = start_server(name)
    except Exception as exc:  # a peer that is not installed: say so, go on
        print(f"  {name}: cannot start ({exc})", file=sys.stderr)
        return None
    try:
        if args.loadgen:
            done, elapsed, p50, p99, cpu = run_cloadgen(server, args, payload_size)
        else:
            done, elapsed, lat, cpu = run_python_load(server, args, payload_size)  # type: ignore[misc]
            p50 = lat[len(lat) // 2] * 1000
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
        rss = rss_bytes(server.process.pid)
        return Result(name, payload_size, done, elapsed, p50, p99, rss / 2**20, cpu / max(done, 1) * 1e6)
    finally:
        server.stop()


def throughput(args: argparse.Namespace) -> list[Result]:
    rows: list[Result] = []
    for payload_size in args.payloads:
        for name in args.servers:
            result = measure(name, args, payload_size)
            if result is not None:
                if result.jobs < args.jobs * args.clients:
                    print(f"  {name}: only {result.jobs} of {args.jobs * args.clients} jobs within --timeout",
                          file=sys.stderr)
                rows.append(result)
                print(f"  measured {name} {payload_size} B: {result.jobs_per_s:,.0f} jobs/s", file=sys.stderr)
    generator = args.loadgen or f"python ({args.procs} processes)"
    print(f"\nload: {args.workers} workers x {args.clients} clients, window {args.window}, "
          f"{args.jobs} jobs per client, generator {generator}, {os.cpu_count()} CPUs")
    header = f"{'server':<20}{'payload':>9}{'jobs/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'RSS MiB':>9}" \
             f"{'CPU us/job':>11}{'x jobs/s':>10}{'x CPU':>8}"
    print(header)
    for payload_size in args.payloads:
        base = next((r for r in rows if r.server == "gearspec" and r.payload == payload_size), None)
        for r in (r for r in rows if r.payload == payload_size):
            ratio_t = r.jobs_per_s / base.jobs_per_s if base and base.jobs_per_s else float("nan")
            ratio_c = r.cpu_us_per_job / base.cpu_us_per_job if base and base.cpu_us_per_job else float("nan")
            print(f"{r.server:<20}{r.payload:>9}{r.jobs_per_s:>10,.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}"
                  f"{r.rss_mib:>9.1f}{r.cpu_us_per_job:>11.1f}{ratio_t:>10.2f}{ratio_c:>8.2f}")
    print("x jobs/s and x CPU: the server's figure divided by gearspec's (jobs/s: higher is faster; "
          "CPU: higher is costlier)")
    return rows


def idle(args: argparse.Namespace) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for name in args.servers:
        server = start_server(name)
        try:
            before = rss_bytes(server.process.pid)
            socks = []
            try:
                for _ in range(args.connections):
                    socks.append(socket.create_connection((server.host, server.port)))
            except OSError as exc:
                print(f"{name}: stopped at {len(socks)} connections: {exc}")
            probe = socks[-1] if socks else socket.create_connection((server.host, server.port))
            probe.settimeout(30)
            probe.sendall(packet(ECHO_REQ, b"alive?"))
            reply = probe.recv(64)
            after = rss_bytes(server.process.pid)
            print(f"{name:<20} {len(socks)} idle connections held; answers: {reply.endswith(b'alive?')}; "
                  f"RSS {before / 2**20:.1f} -> {after / 2**20:.1f} MiB "
                  f"({(after - before) / max(len(socks), 1):.0f} bytes per connection)")
            for s in socks:
                s.close()
        finally:
            server.stop()


def queue(args: argparse.Namespace) -> None:
    for name in args.servers:
        server = start_server(name)
        try:
            before = rss_bytes(server.process.pid)
            sock = socket.create_connection((server.host, server.port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            batch = 10000
            t0 = time.perf_counter()
            acked = 0
            for start in range(0, args.queued, batch):
                n = min(batch, args.queued - start)
                sock.sendall(b"".join(packet(SUBMIT_JOB_BG, FUNCTION, b"", b"job-%d" % (start + i)) for i in range(n)))
                want = n
                buf = b""
                while want:
                    buf += sock.recv(1 << 20)
                    pos = 0
                    while len(buf) - pos >= 12:
                        _, code, size = HEADER.unpack_from(buf, pos)
                        if len(buf) - pos < 12 + size:
                            break
                        pos += 12 + size
                        want -= 1
                        acked += code == JOB_CREATED
                    buf = buf[pos:]
            elapsed = time.perf_counter() - t0
            after = rss_bytes(server.process.pid)
            print(f"{name:<20} {acked:,} background jobs queued in {elapsed:.1f} s; RSS {before / 2**20:.1f} -> "
                  f"{after / 2**20:.1f} MiB ({(after - before) / max(acked, 1):.0f} bytes per job)")
            sock.close()
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("throughput", "idle", "queue"), default="throughput")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated: " + ", ".join(SERVERS))
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per client")
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--payloads", default="64,65536", help="payload sizes in bytes")
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes")
    parser.add_argument("--loadgen", help="path of an external generator with cloadgen's CLI and JSON")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--queued", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    # A SIGTERM (e.g. from `timeout`) still runs the finally blocks that stop the servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.servers = [s for s in args.servers.split(",") if s]
    args.payloads = [int(p) for p in args.payloads.split(",")]
    unknown = [s for s in args.servers if s not in SERVERS]
    if unknown:
        parser.error(f"unknown server(s): {', '.join(unknown)}")
    if args.mode == "throughput":
        throughput(args)
    elif args.mode == "idle":
        idle(args)
    else:
        queue(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
