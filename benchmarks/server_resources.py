"""Job server resources: memory per idle connection, queued job and registered name, and
GET_STATUS / GET_STATUS_UNIQUE latency with a deep queue; gearspec's server against gearmand,
both measured in the same run.

    python benchmarks/server_resources.py                       # everything, gearspec and gearmand
    python benchmarks/server_resources.py --servers gearspec --queued 50000 --names 20000

Memory is the server's RSS (its process tree, from /proc) before and after: --connections idle
connections; --queued background jobs (each with its own unique) over one pipelined
connection; --names CAN_DO of distinct function names from one worker connection, and RSS
again once that worker has disconnected (what is given back). Latency: with the --queued jobs
still queued, --lookups GET_STATUS (of known handles) and GET_STATUS_UNIQUE (of known
uniques), one request at a time, p50 and p99. Ratios are against gearmand in the same run.
Nothing here asserts: it prints figures (docs/server.md keeps a run of them).
"""

from __future__ import annotations

import argparse
import random
import signal
import socket
import sys
import time

from server import HEADER, packet, rss_bytes, start_server  # benchmarks/server.py

from gearspec.spec import PacketType

CAN_DO, SUBMIT_JOB_BG, JOB_CREATED = PacketType.CAN_DO, PacketType.SUBMIT_JOB_BG, PacketType.JOB_CREATED
ECHO_REQ, ECHO_RES = PacketType.ECHO_REQ, PacketType.ECHO_RES
GET_STATUS, GET_STATUS_UNIQUE = PacketType.GET_STATUS, PacketType.GET_STATUS_UNIQUE
SERVERS = {"gearspec": "gearspec", "gearmand": "gearmand-threads0"}  # our names -> benchmarks/server.py's


class Wire:
    """One blocking connection that reads whole response packets."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(120)
        self.buf = b""

    def packets(self, count: int) -> list[tuple[int, bytes]]:
        got: list[tuple[int, bytes]] = []
        buf = self.buf
        pos = 0
        while len(got) < count:
            if len(buf) - pos >= 12:
                _, code, size = HEADER.unpack_from(buf, pos)
                if len(buf) - pos >= 12 + size:
                    got.append((code, buf[pos + 12:pos + 12 + size]))
                    pos += 12 + size
                    continue
            buf = buf[pos:] + self.sock.recv(1 << 20)
            pos = 0
            if not buf:
                raise ConnectionError("server closed the connection")
        self.buf = buf[pos:]
        return got

    def barrier(self) -> None:
        self.sock.sendall(packet(ECHO_REQ, b"sync"))
        while self.packets(1)[0][0] != ECHO_RES:
            pass

    def close(self) -> None:
        self.sock.close()


def settle(pid: int) -> int:
    """RSS once the server is idle (one reading after a short pause)."""
    time.sleep(0.3)
    return rss_bytes(pid)


def idle_connections(host: str, port: int, pid: int, count: int) -> float:
    before = settle(pid)
    socks = [socket.create_connection((host, port)) for _ in range(count)]
    probe = Wire(host, port)
    probe.barrier()  # the server has accepted every one of them
    after = settle(pid)
    probe.close()
    for s in socks:
        s.close()
    return (after - before) / count


def registered_names(host: str, port: int, pid: int, count: int) -> tuple[float, float]:
    """Bytes per registered name, and the share of them given back once the worker left."""
    before = settle(pid)
    worker = Wire(host, port)
    for start in range(0, count, 10000):
        worker.sock.sendall(b"".join(packet(CAN_DO, b"bench-name-%08d" % i) for i in range(start, min(count, start + 10000))))
    worker.barrier()
    during = settle(pid)
    worker.close()
    probe = Wire(host, port)
    probe.barrier()
    after = settle(pid)
    probe.close()
    grown = during - before
    return grown / count, (during - after) / grown if grown > 0 else 0.0


def queue_jobs(host: str, port: int, pid: int, count: int) -> tuple[float, Wire, list[bytes], list[bytes]]:
    """Bytes per queued background job; the connection, handles and uniques stay for lookups."""
    before = settle(pid)
    client = Wire(host, port)
    handles: list[bytes] = []
    uniques = [b"u-%09d" % i for i in range(count)]
    for start in range(0, count, 10000):
        batch = uniques[start:start + 10000]
        client.sock.sendall(b"".join(packet(SUBMIT_JOB_BG, b"bench-queue", u, b"x" * 16) for u in batch))
        for code, payload in client.packets(len(batch)):
            if code != JOB_CREATED:
                raise RuntimeError(f"submit answered {code}: {payload[:80]!r}")
            handles.append(payload)
    after = settle(pid)
    return (after - before) / count, client, handles, uniques


def latency(conn: Wire, code: int, keys: list[bytes], lookups: int) -> tuple[float, float]:
    rng = random.Random(14)
    times = []
    for _ in range(lookups):
        request = packet(code, rng.choice(keys))
        t0 = time.perf_counter()
        conn.sock.sendall(request)
        conn.packets(1)
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2] * 1e3, times[int(len(times) * 0.99)] * 1e3


def measure(name: str, args: argparse.Namespace) -> dict[str, float]:
    server = start_server(SERVERS[name])
    host, port, pid = server.host, server.port, server.process.pid
    figures: dict[str, float] = {}
    try:
        figures["conn"] = idle_connections(host, port, pid, args.connections)
        figures["name"], figures["name_back"] = registered_names(host, port, pid, args.names)
        figures["job"], client, handles, uniques = queue_jobs(host, port, pid, args.queued)
        figures["status_p50"], figures["status_p99"] = latency(client, GET_STATUS, handles, args.lookups)
        figures["unique_p50"], figures["unique_p99"] = latency(client, GET_STATUS_UNIQUE, uniques, args.lookups)
        client.close()
    finally:
        server.stop()
    return figures


ROWS = [
    ("conn", "memory per idle connection (bytes)", "{:,.0f}"),
    ("name", "memory per registered name (bytes)", "{:,.0f}"),
    ("name_back", "share of it given back after the worker left", "{:.0%}"),
    ("job", "memory per queued background job (bytes)", "{:,.0f}"),
    ("status_p50", "GET_STATUS p50 (ms)", "{:.3f}"),
    ("status_p99", "GET_STATUS p99 (ms)", "{:.3f}"),
    ("unique_p50", "GET_STATUS_UNIQUE p50 (ms)", "{:.3f}"),
    ("unique_p99", "GET_STATUS_UNIQUE p99 (ms)", "{:.3f}"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="gearspec,gearmand", help="comma-separated: gearspec, gearmand")
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--names", type=int, default=100_000)
    parser.add_argument("--queued", type=int, default=200_000)
    parser.add_argument("--lookups", type=int, default=2000)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    names = [s for s in args.servers.split(",") if s]
    unknown = [s for s in names if s not in SERVERS]
    if unknown:
        parser.error(f"unknown server(s): {', '.join(unknown)}")
    results = {name: measure(name, args) for name in names}
    print(f"\n{args.connections:,} idle connections, {args.names:,} names, {args.queued:,} queued jobs, "
          f"{args.lookups:,} lookups of each kind")
    print(f"{'':<48}" + "".join(f"{n:>14}" for n in names) + ("   gearspec/gearmand" if len(names) == 2 else ""))
    for key, label, fmt in ROWS:
        line = f"{label:<48}" + "".join(f"{fmt.format(results[n][key]):>14}" for n in names)
        if len(names) == 2 and key != "name_back" and results[names[1]][key] > 0:
            line += f"   {results[names[0]][key] / results[names[1]][key]:>8.2f}x"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
