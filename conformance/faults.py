"""A fault-injecting TCP proxy: plants realistic server bugs in front of a clean server.

    with FaultProxy(("127.0.0.1", 4730), ["swallow-error"]) as proxy:
        ...  # point the suite at proxy.host:proxy.port; it must fail a fitting case

Each fault rewrites the decoded packet stream in one direction; everything else is passed
through re-encoded byte for byte. The suite's own tests (tests/conformance/test_faults.py)
show that the suite passes the clean server and fails each fault with a fitting case ID.

    python -m gearspec.conformance.faults --upstream 127.0.0.1:4730 --fault no-coalesce
"""

from __future__ import annotations

import argparse
import itertools
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gearspec.address import AddressError, parse_address
from gearspec.codec import AdminLine, Decoder, Event, Packet, RawPacket, decode
from gearspec.errors import ProtocolError
from gearspec.spec import Magic
from gearspec.spec import PacketType as T

__all__ = ["FAULTS", "Fault", "FaultProxy", "main"]

TO_SERVER, TO_CLIENT = "to-server", "to-client"

# A rewrite takes one decoded event and returns the bytes to forward instead (b"" drops it),
# or raises CloseConnection to forward what came before and close the connection instead.
Rewrite = Callable[[Event], bytes]


class CloseConnection(Exception):
    """Raised by a rewrite: the proxy forwards what it has, then closes the connection."""


@dataclass(frozen=True)
class Fault:
    name: str
    direction: str
    description: str
    make: Callable[[], Rewrite]  # a fresh rewrite per connection (some keep counters)


def _keep(event: Event) -> bytes:
    return event.to_bytes()


def _request_magic() -> Rewrite:
    def rewrite(event: Event) -> bytes:
        data = event.to_bytes()
        return Magic.REQ.value + data[4:] if isinstance(event, Packet) else data

    return rewrite


def _drop(*types: T) -> Callable[[], Rewrite]:
    def make() -> Rewrite:
        def rewrite(event: Event) -> bytes:
            return b"" if isinstance(event, Packet) and event.type in types else event.to_bytes()

        return rewrite

    return make


def _swap_status() -> Rewrite:
    def rewrite(event: Event) -> bytes:
        if isinstance(event, Packet) and event.type is T.STATUS_RES:
            handle, known, running, numerator, denominator = event.args
            return Packet(event.magic, event.type, (handle, known, running, denominator, numerator)).to_bytes()
        return event.to_bytes()

    return rewrite


def _admin_spaces() -> Rewrite:
    def rewrite(event: Event) -> bytes:
        if isinstance(event, AdminLine):
            return AdminLine(event.text.replace(b"\t", b" "), event.terminator).to_bytes()
        return event.to_bytes()

    return rewrite


def _crlf_admin() -> Rewrite:
    def rewrite(event: Event) -> bytes:
        return AdminLine(event.text, b"\r\n").to_bytes() if isinstance(event, AdminLine) else event.to_bytes()

    return rewrite


def _no_terminator() -> Rewrite:
    def rewrite(event: Event) -> bytes:
        return b"" if isinstance(event, AdminLine) and event.text == b"." else event.to_bytes()

    return rewrite


def _error_to_close() -> Rewrite:
    def rewrite(event: Event) -> bytes:
        if isinstance(event, Packet) and event.type is T.ERROR:
            raise CloseConnection
        return event.to_bytes()

    return rewrite


def _malformed_error() -> Rewrite:
    def rewrite(event: Event) -> bytes:
        if isinstance(event, Packet) and event.type is T.ERROR:
            data = event.to_bytes() + b"\0"  # a NUL after the text: three arguments, off-spec
            return data[:8] + (len(data) - 12).to_bytes(4, "big") + data[12:]
        return event.to_bytes()

    return rewrite


def _twice(*types: T) -> Callable[[], Rewrite]:
    def make() -> Rewrite:
        def rewrite(event: Event) -> bytes:
            data = event.to_bytes()
            return data * 2 if isinstance(event, Packet) and event.type in types else data

        return rewrite

    return make


def _swap_priority_columns() -> Rewrite:
    def rewrite(event: Event) -> bytes:
        # 'prioritystatus' rows: FUNCTION HIGH NORMAL LOW WORKERS (the only 5-column admin rows).
        if isinstance(event, AdminLine):
            columns = event.text.split(b"\t")
            if len(columns) == 5:
                columns[1], columns[3] = columns[3], columns[1]
                return AdminLine(b"\t".join(columns), event.terminator).to_bytes()
        return event.to_bytes()

    return rewrite


def _cut_unique(limit: int) -> Callable[[], Rewrite]:
    def make() -> Rewrite:
        def rewrite(event: Event) -> bytes:
            if isinstance(event, Packet) and event.type in (T.JOB_ASSIGN_UNIQ, T.JOB_ASSIGN_ALL):
                args = list(event.args)
                args[2] = args[2][:limit]
                return Packet(event.magic, event.type, tuple(args)).to_bytes()
            return event.to_bytes()

        return rewrite

    return make


_SUBMITS = {t for t in T if t.spec.submit is not None}


_UNIQUE_SUFFIX = itertools.count(1)  # shared by every connection: no two submits stay alike


def _no_coalesce() -> Rewrite:
    counter = _UNIQUE_SUFFIX

    def rewrite(event: Event) -> bytes:
        if isinstance(event, Packet) and event.type in _SUBMITS and event.args[1]:
            args = list(event.args)
            args[1] = args[1] + b"~" + str(next(counter)).encode()
            return Packet(event.magic, event.type, tuple(args)).to_bytes()
        return event.to_bytes()

    return rewrite


_INVERTED = {
    T.SUBMIT_JOB_HIGH: T.SUBMIT_JOB_LOW, T.SUBMIT_JOB_LOW: T.SUBMIT_JOB_HIGH,
    T.SUBMIT_JOB_HIGH_BG: T.SUBMIT_JOB_LOW_BG, T.SUBMIT_JOB_LOW_BG: T.SUBMIT_JOB_HIGH_BG,
}


def _invert_priority() -> Rewrite:
    def rewrite(event: Event) -> bytes:
        if isinstance(event, Packet) and event.type in _INVERTED:
            return Packet(event.magic, _INVERTED[event.type], event.args).to_bytes()
        return event.to_bytes()

    return rewrite


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault("request-magic", TO_CLIENT, "responses carry \\0REQ magic", _request_magic),
        Fault("swallow-error", TO_CLIENT, "ERROR packets are never sent", _drop(T.ERROR)),
        Fault("drop-work-data", TO_CLIENT, "WORK_DATA never reaches clients", _drop(T.WORK_DATA)),
        Fault("drop-noop", TO_CLIENT, "sleeping workers are never woken (NOOP dropped)", _drop(T.NOOP)),
        Fault("swap-status", TO_CLIENT, "STATUS_RES numerator and denominator swapped", _swap_status),
        Fault("admin-spaces", TO_CLIENT, "admin columns separated by spaces, not tabs", _admin_spaces),
        Fault("crlf-admin", TO_CLIENT, "every admin reply line ends in CRLF, block rows too", _crlf_admin),
        Fault("duplicate-status-unique", TO_CLIENT, "STATUS_RES_UNIQUE is sent twice", _twice(T.STATUS_RES_UNIQUE)),
        Fault("no-terminator", TO_CLIENT, "admin blocks miss their closing '.' line", _no_terminator),
        Fault("no-coalesce", TO_SERVER, "jobs with the same unique id are never merged", _no_coalesce),
        Fault("invert-priority", TO_SERVER, "HIGH jobs are queued as LOW and LOW as HIGH", _invert_priority),
        Fault("error-to-close", TO_CLIENT, "the connection is closed where an ERROR was due", _error_to_close),
        Fault("malformed-error", TO_CLIENT, "ERROR packets end in a stray NUL (three arguments)", _malformed_error),
        Fault("duplicate-error", TO_CLIENT, "every ERROR packet is sent twice", _twice(T.ERROR)),
        Fault("duplicate-ending", TO_CLIENT, "WORK_COMPLETE and WORK_FAIL reach clients twice", _twice(T.WORK_COMPLETE, T.WORK_FAIL)),
        Fault("duplicate-noop", TO_CLIENT, "a sleeping worker is woken with two NOOPs", _twice(T.NOOP)),
        Fault("swap-priority-columns", TO_CLIENT, "'prioritystatus' rows list LOW where HIGH belongs and HIGH where LOW does", _swap_priority_columns),
        Fault("cut-assigned-unique", TO_CLIENT, "uniques in JOB_ASSIGN_UNIQ/ALL are cut to 63 bytes", _cut_unique(63)),
        Fault("empty-assigned-unique", TO_CLIENT, "JOB_ASSIGN_UNIQ/ALL carry an empty unique", _cut_unique(0)),
    )
}


class FaultProxy:
    """A threaded TCP proxy on an ephemeral port applying `faults` to every connection."""

    def __init__(self, upstream: tuple[str, int], faults: Sequence[str] = (), host: str = "127.0.0.1") -> None:
        unknown = [f for f in faults if f not in FAULTS]
        if unknown:
            raise ValueError(f"unknown fault {unknown[0]!r}; known: {', '.join(FAULTS)}")
        self.upstream = upstream
        self.faults = [FAULTS[f] for f in faults]
        self.listener = socket.create_server((host, 0))
        self.host, self.port = self.listener.getsockname()[:2]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        except OSError:
            pass
        try:
            self.listener.close()
        except OSError:
            pass
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.close()
                except OSError:
                    pass
            self._sockets.clear()
        self._thread.join(timeout=2)

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets += [client, server]
            pair = _Pair(self, client, server)
            for src, dst, direction in ((client, server, TO_SERVER), (server, client, TO_CLIENT)):
                rewrites = [f.make() for f in self.faults if f.direction == direction]
                accept = Magic.REQ if direction == TO_SERVER else Magic.RES
                threading.Thread(
                    target=pair.pump, args=(src, dst, accept, rewrites), name=f"fault-proxy {direction}", daemon=True
                ).start()


class _Pair:
    """One proxied connection: the second direction to end closes both sockets, so a long
    run does not keep every connection's file descriptors until the proxy closes."""

    def __init__(self, proxy: FaultProxy, client: socket.socket, server: socket.socket) -> None:
        self.proxy, self.sockets, self.pumping = proxy, (client, server), 2

    def pump(self, src: socket.socket, dst: socket.socket, accept: Magic, rewrites: list[Rewrite]) -> None:
        _pump(src, dst, accept, rewrites)
        with self.proxy._lock:
            self.pumping -= 1
            if self.pumping or self.proxy._closed:
                return
            for sock in self.sockets:
                sock.close()
                self.proxy._sockets.remove(sock)


def _apply(rewrites: list[Rewrite], event: Event) -> bytes:
    """Run each rewrite over the output of the previous one (off-spec packets pass as they are)."""
    if isinstance(event, RawPacket):
        return event.to_bytes()
    events: list[Event] = [event]
    for rewrite in rewrites:
        events = [e for old in events for e in decode(rewrite(old), lenient=True)]
    return b"".join(e.to_bytes() for e in events)


def _pump(src: socket.socket, dst: socket.socket, accept: Magic, rewrites: list[Rewrite]) -> None:
    """Copy src to dst, rewriting decoded events; after undecodable bytes copy raw."""
    decoder = Decoder(accept, lenient=True)
    raw = not rewrites
    try:
        while True:
            chunk = src.recv(65536)
            if not chunk:
                break
            if raw:
                dst.sendall(chunk)
                continue
            decoder.receive_data(chunk)
            out = bytearray()
            try:
                for event in decoder:
                    out += _apply(rewrites, event)
            except ProtocolError:
                # Framing is lost (e.g. a case sent bad magic): forward the rest untouched.
                out += bytes(decoder._buf[decoder._pos:]) + b"".join(decoder._more)
                raw = True
            except CloseConnection:
                if out:
                    dst.sendall(out)
                _close_both(src, dst)
                return
            if out:
                dst.sendall(out)
    except OSError:
        pass
    finally:
        for sock, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            try:
                sock.shutdown(how)
            except OSError:
                pass


def _close_both(src: socket.socket, dst: socket.socket) -> None:
    """End both directions at once, as a server closing the connection would."""
    for sock in (dst, src):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gearspec.conformance.faults", description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", required=True, metavar="HOST:PORT")
    parser.add_argument("--fault", action="append", default=[], choices=sorted(FAULTS))
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args(argv)
    if args.list:
        for fault in FAULTS.values():
            print(f"{fault.name:16} {fault.direction:10} {fault.description}")
        return 0
    try:
        upstream = parse_address(args.upstream)
    except AddressError as exc:
        parser.error(str(exc))
    with FaultProxy(upstream, args.fault) as proxy:
        print(f"fault proxy: listening on {proxy.host}:{proxy.port}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
