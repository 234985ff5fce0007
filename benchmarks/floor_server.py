"""The cheapest asyncio job server that can serve benchmarks/server.py's load: a floor, not a server.

    python benchmarks/floor_server.py [--port 0]    # prints "listening on 127.0.0.1:PORT"

It knows just enough to run the generator's jobs -- CAN_DO, SUBMIT_JOB, GRAB_JOB_UNIQ,
GRAB_JOB, PRE_SLEEP/NOOP and WORK_COMPLETE -- with one FIFO queue and no checks at all: no
validation, no priorities, no coalescing, no admin protocol, no persistence, no limits. Its
CPU per job is what the event loop, the sockets and the least possible Python per packet cost
under that load; no asyncio server can do the same work for less, so it bounds what
gearspec's server (which does all of the above) can reach. Same I/O pattern as gearspec's
server: uvloop when installed, one write per connection per event-loop turn.

Do not use it for anything else: malformed input will break it.
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import sys
from collections import deque

_HEADER = struct.Struct(">4sII")
_unpack = struct.Struct(">II").unpack_from  # type and size, after the 4 magic bytes
_RES = b"\0RES"
_NOOP = _HEADER.pack(_RES, 6, 0)
_NO_JOB = _HEADER.pack(_RES, 10, 0)


class Floor:
    def __init__(self) -> None:
        self.queue: deque[tuple[bytes, bytes, Conn]] = deque()  # (handle, data, client)
        self.sleepers: set[Conn] = set()
        self.running: dict[bytes, Conn] = {}
        self.dirty: list[Conn] = []
        self.next_handle = 0
        self.loop = asyncio.get_running_loop()
        self.flush_scheduled = False

    def flush(self) -> None:
        self.flush_scheduled = False
        dirty, self.dirty = self.dirty, []
        for conn in dirty:
            out, conn.out = conn.out, []
            conn.transport.writelines(out)


class Conn(asyncio.Protocol):
    def __init__(self, floor: Floor) -> None:
        self.floor = floor
        self.out: list[bytes] = []
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.floor.sleepers.discard(self)

    def send(self, data: bytes) -> None:
        if not self.out:
            self.floor.dirty.append(self)
        self.out.append(data)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        floor = self.floor
        pos, n = 0, len(buf)
        while n - pos >= 12:
            code, size = _unpack(buf, pos + 4)
            end = pos + 12 + size
            if end > n:
                break
            if code == 7:  # SUBMIT_JOB: function \0 unique \0 data
                _fn, _unique, job_data = buf[pos + 12:end].split(b"\0", 2)
                floor.next_handle += 1
                handle = b"H:floor:%d" % floor.next_handle
                floor.queue.append((handle, job_data, self))
                self.send(_HEADER.pack(_RES, 8, len(handle)) + handle)
                if floor.sleepers:
                    for worker in floor.sleepers:
                        worker.send(_NOOP)
                    floor.sleepers.clear()
            elif code == 30 or code == 9:  # GRAB_JOB_UNIQ / GRAB_JOB
                if floor.queue:
                    handle, job_data, client = floor.queue.popleft()
                    floor.running[handle] = client
                    head = handle + b"\0bench_echo\0\0" if code == 30 else handle + b"\0bench_echo\0"
                    self.send(_HEADER.pack(_RES, 31 if code == 30 else 11, len(head) + len(job_data)) + head)
                    self.send(job_data)
                else:
                    self.send(_NO_JOB)
            elif code == 13:  # WORK_COMPLETE: handle \0 data
                handle = buf[pos + 12:end].split(b"\0", 1)[0]
                client = floor.running.pop(handle)
                client.send(_HEADER.pack(_RES, 13, size) + buf[pos + 12:end])
            elif code == 4:  # PRE_SLEEP
                if floor.queue:
                    self.send(_NOOP)
                else:
                    floor.sleepers.add(self)
            pos = end  # CAN_DO and anything else: ignored
        self.buf = buf[pos:]
        if floor.dirty and not floor.flush_scheduled:
            floor.flush_scheduled = True
            floor.loop.call_soon(floor.flush)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    floor = Floor()
    server = await asyncio.get_running_loop().create_server(lambda: Conn(floor), args.host, args.port)
    host, port = server.sockets[0].getsockname()[:2]
    print(f"floor server: listening on {host}:{port}", flush=True)
    await server.serve_forever()
    return 0


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        pass
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        sys.exit(asyncio.run(main()))
    except KeyboardInterrupt:
        sys.exit(0)
