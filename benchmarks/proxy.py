"""What the validating proxy costs: throughput through `gearspec proxy` as a ratio of direct.

    python benchmarks/proxy.py [--seconds 3] [--payload 1024]

Starts gearmand (single-threaded, port 0) and `gearspec proxy` in front of it, then measures
in the same run, direct and through the proxy:

- echo:  one connection pipelining ECHO_REQ (window 64) -> packets/s and MB/s each way;
- jobs:  a worker (CAN_DO, GRAB_JOB_UNIQ/PRE_SLEEP loop, WORK_COMPLETE) and a client
         submitting foreground jobs with 16 in flight -> jobs/s (4 packets per job through
         the proxy on two connections, each checked against the spec and per-connection state).

Prints each figure and the proxy/direct ratio. Needs gearmand (Debian gearman-job-server).
"""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gearspec.conformance.servers import start_server

from gearspec.codec import Decoder, Packet, encode
from gearspec.spec import Magic, PacketType

T = PacketType


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.decoder = Decoder(Magic.RES)

    def packets(self) -> list[Packet]:
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("closed")
        self.decoder.receive_data(data)
        return [e for e in self.decoder if isinstance(e, Packet)]


def echo(port: int, seconds: float, payload: int, window: int = 64) -> tuple[float, float]:
    """(packets/s, MB/s one way) for pipelined ECHO_REQ/ECHO_RES."""
    sock = _connect(port)
    request = encode("ECHO_REQ", b"x" * payload)
    reader = _Reader(sock)
    sock.sendall(request * window)
    sent, received = window, 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        got = len(reader.packets())
        received += got
        now = time.perf_counter()
        if now < deadline:
            sock.sendall(request * got)
            sent += got
        elif received >= sent:
            break
    elapsed = time.perf_counter() - start
    sock.close()
    return received / elapsed, received * len(request) / elapsed / 1e6


def _worker(port: int, function: bytes, stop: threading.Event) -> None:
    sock = _connect(port)
    reader = _Reader(sock)
    sock.sendall(encode("CAN_DO", function) + encode("GRAB_JOB_UNIQ"))
    try:
        while not stop.is_set():
            out = []
            for packet in reader.packets():
                if packet.type is T.JOB_ASSIGN_UNIQ:
                    out.append(Packet.request("WORK_COMPLETE", packet.handle, packet.data[::-1]).to_bytes())
                    out.append(encode("GRAB_JOB_UNIQ"))
                elif packet.type is T.NO_JOB:
                    out.append(encode("PRE_SLEEP"))
                elif packet.type is T.NOOP:
                    out.append(encode("GRAB_JOB_UNIQ"))
            if out:
                sock.sendall(b"".join(out))
    except (ConnectionError, OSError):
        pass
    finally:
        sock.close()


def jobs(port: int, seconds: float, payload: int, window: int = 16) -> float:
    """Foreground jobs per second through one worker, `window` jobs in flight."""
    function = b"bench_reverse"
    stop = threading.Event()
    worker = threading.Thread(target=_worker, args=(port, function, stop), daemon=True)
    worker.start()
    sock = _connect(port)
    reader = _Reader(sock)
    submit = encode("SUBMIT_JOB", function, b"", b"y" * payload)
    sock.sendall(submit * window)
    done, in_flight = 0, window
    start = time.perf_counter()
    deadline = start + seconds
    while in_flight:
        finished = sum(1 for p in reader.packets() if p.type is T.WORK_COMPLETE)
        done += finished
        in_flight -= finished
        if time.perf_counter() < deadline and finished:
            sock.sendall(submit * finished)
            in_flight += finished
    elapsed = time.perf_counter() - start
    stop.set()
    sock.close()
    worker.join(5)
    return done / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement (default 3)")
    parser.add_argument("--payload", type=int, default=1024, help="bytes of echo/job data (default 1024)")
    options = parser.parse_args()
    server = start_server("gearmand")
    proxy = subprocess.Popen(
        [sys.executable, "-m", "gearspec", "proxy", "--listen", "127.0.0.1:0", "--upstream", server.address, "--quiet"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proxy.stdout is not None
        match = re.search(r"listening on [\d.]+:(\d+)", proxy.stdout.readline())
        if not match:
            print("benchmarks/proxy.py: the proxy did not start", file=sys.stderr)
            return 1
        proxy_port = int(match.group(1))
        print(f"gearmand {server.address}, proxy 127.0.0.1:{proxy_port}, payload {options.payload} B, "
              f"{options.seconds:g} s per figure")
        direct_echo = echo(server.port, options.seconds, options.payload)
        proxied_echo = echo(proxy_port, options.seconds, options.payload)
        print(f"echo  direct  {direct_echo[0]:10.0f} packets/s {direct_echo[1]:8.1f} MB/s")
        print(f"echo  proxy   {proxied_echo[0]:10.0f} packets/s {proxied_echo[1]:8.1f} MB/s   "
              f"ratio {proxied_echo[0] / direct_echo[0]:.2f}")
        direct_jobs = jobs(server.port, options.seconds, options.payload)
        proxied_jobs = jobs(proxy_port, options.seconds, options.payload)
        print(f"jobs  direct  {direct_jobs:10.0f} jobs/s")
        print(f"jobs  proxy   {proxied_jobs:10.0f} jobs/s   ratio {proxied_jobs / direct_jobs:.2f}")
    finally:
        proxy.terminate()
        try:
            out, _ = proxy.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proxy.kill()
            out, _ = proxy.communicate()
        server.stop()
    summary = out.strip().splitlines()[-1] if out.strip() else ""
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
