"""What the target has shown it supports, probed once per run before any case.

Cases use round trips and setup steps that are not what they are about: an ordering barrier
(ECHO_REQ, or GET_STATUS of a made-up handle), a grab packet to take a job, a priority
variant to queue one. A server that lacks ECHO or plain GRAB_JOB must not fail a case about
split packets or FIFO order for that. So the runner probes each such feature once, here, and
every case picks a route the target answers; a case ends "unsupported: needs X" only when no
route works (see `Session.barrier`, `Session.grab_type` and `_jobs.submit_variant`).

A probe accepts any reply of the right name, with the right magic or not: a wrong reply is
for the case about that packet to grade (framing/magic/1 grades the magic of ECHO_RES), not
for the probe to hide by picking another route.
"""

from __future__ import annotations

import functools
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gearspec.codec import AdminLine, Decoder, Packet, RawPacket
from gearspec.spec import Magic, PacketType

__all__ = ["GRAB_PREFERENCE", "PROBED_SUBMITS", "REPLY_LINE_LIMIT", "Capabilities", "detect_capabilities"]

# The longest admin reply line the suite reads. Not gearmand's 8192-byte receive buffer (the
# codec's default): a `status` or `workers` row naming a legal 8191-byte function is longer,
# and the target keeps such rows after bounds/function/3 made them.
REPLY_LINE_LIMIT = 1 << 20

# The grab packet generic cases use: the first of these the target answers with a job.
GRAB_PREFERENCE = (PacketType.GRAB_JOB, PacketType.GRAB_JOB_UNIQ, PacketType.GRAB_JOB_ALL)
# Submit variants that cases use as setup steps (priority and background siblings).
PROBED_SUBMITS = (
    PacketType.SUBMIT_JOB, PacketType.SUBMIT_JOB_BG, PacketType.SUBMIT_JOB_HIGH, PacketType.SUBMIT_JOB_HIGH_BG,
    PacketType.SUBMIT_JOB_LOW, PacketType.SUBMIT_JOB_LOW_BG,
)
_ASSIGNS = frozenset({"JOB_ASSIGN", "JOB_ASSIGN_UNIQ", "JOB_ASSIGN_ALL"})


@dataclass(frozen=True)
class Capabilities:
    """The probe results: which round trips, grab packets and submit variants work."""

    echo: bool = True
    status: bool = True  # GET_STATUS of an unknown handle gets a STATUS_RES
    admin: bool = True  # the admin line "status" gets an answer
    grabs: tuple[PacketType, ...] = GRAB_PREFERENCE  # grab packets answered with a job
    submits: frozenset[PacketType] = frozenset(PROBED_SUBMITS)  # answered with JOB_CREATED
    probed: bool = False  # False: the optimistic defaults, nothing was probed
    notes: tuple[str, ...] = field(default=())

    @property
    def responsive(self) -> bool:
        """Whether the target answered any probe at all (a silent target is broken, not lacking)."""
        return self.echo or self.status or self.admin or bool(self.grabs) or len(self.submits) > 1

    @property
    def barrier(self) -> str | None:
        """The ordering round trip to use: "echo", "status", or None when neither works.

        A target that answered nothing keeps "echo", so its cases fail on the silence
        instead of ending unsupported.
        """
        if self.echo or not self.responsive:
            return "echo"
        return "status" if self.status else None

    @property
    def grab(self) -> PacketType | None:
        """The grab packet generic cases use, or None when no grab packet hands out jobs."""
        return self.grabs[0] if self.grabs else None

    def summary(self) -> str:
        """One line for the run header: what works and what was refused."""
        if not self.probed:
            return "not probed"
        yes_no = {True: "yes", False: "no"}
        refused = [t.name for t in PROBED_SUBMITS if t not in self.submits]
        parts = [
            f"ECHO {yes_no[self.echo]}", f"GET_STATUS {yes_no[self.status]}", f"admin {yes_no[self.admin]}",
            f"grabs {'/'.join(t.name for t in self.grabs) or 'none'}",
        ]
        if refused:
            parts.append(f"refused {', '.join(refused)}")
        return "; ".join(parts)


_CONNECT_TIMEOUT = 5.0  # a busy single-threaded server (gear) may accept a burst of probes slowly


class _Probe:
    """One probe connection: send, then wait up to `wait` for the next event (or nothing)."""

    def __init__(self, address: tuple[str, int], wait: float, tls: ssl.SSLContext | None = None) -> None:
        self.wait = wait
        self.decoder = Decoder(Magic.RES, lenient=True, max_line=REPLY_LINE_LIMIT)
        sock = socket.create_connection(address, timeout=_CONNECT_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = tls.wrap_socket(sock, server_hostname=address[0]) if tls is not None else sock

    def send(self, type: PacketType, *args: object) -> None:
        self.sock.sendall(Packet.request(type, *args).to_bytes())

    def next_event(self, skip: frozenset[str] = frozenset({"NOOP"})) -> Packet | RawPacket | AdminLine | None:
        """The next packet or admin line, or None on silence, a close or garbage."""
        deadline = time.monotonic() + self.wait
        while True:
            try:
                for event in self.decoder:
                    if isinstance(event, (Packet, RawPacket)) and event.name in skip:
                        continue
                    return event
            except Exception:  # undecodable bytes: no usable answer
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return None
            if not chunk:
                return None
            self.decoder.receive_data(chunk)

    def close(self) -> None:
        self.sock.close()


def _named(event: object, *names: str) -> bool:
    return isinstance(event, (Packet, RawPacket)) and event.name in names


def detect_capabilities(
    host: str, port: int, wait: float = 1.0, token: str = "0", tls: ssl.SSLContext | None = None
) -> Capabilities:
    """Probe the target at host:port, each feature on its own connection, all at once.

    `wait` bounds each probe (a feature that gets no answer within it counts as missing), so
    the whole detection takes about `wait` when something is missing, a few ms otherwise.
    Probe functions are named gs-probe-<token>-...; the jobs they queue are taken and completed
    again where a grab packet works, so the target is left as it was.
    """
    address = (host, port)
    found: dict[str, object] = {}
    notes: list[str] = []

    def probe(name: str, run: Callable[[], object]) -> threading.Thread:
        def go() -> None:
            try:
                found[name] = run()
            except OSError as exc:
                found[name] = False
                notes.append(f"{name}: {exc.strerror or exc}")

        thread = threading.Thread(target=go, name=f"gearspec-probe-{name}", daemon=True)
        thread.start()
        return thread

    def round_trip(type: PacketType, arg: bytes, reply: str) -> bool:
        conn = _Probe(address, wait, tls)
        try:
            conn.send(type, arg)
            return _named(conn.next_event(), reply)
        finally:
            conn.close()

    def admin() -> bool:
        conn = _Probe(address, wait, tls)
        try:
            conn.sock.sendall(b"status\n")
            line = conn.next_event()
            # A status row (4 tab-separated fields), the end of an empty listing, or an ERR
            # line: the admin protocol; anything else (an HTTP error page) is not.
            return isinstance(line, AdminLine) and (
                line.text == b"." or line.text.count(b"\t") == 3 or line.text.startswith(b"ERR ")
            )
        finally:
            conn.close()

    def grab(type: PacketType) -> bool:
        fn = f"gs-probe-{token}-{type.name.lower()}"
        client, worker = _Probe(address, wait, tls), _Probe(address, wait, tls)
        try:
            client.send(PacketType.SUBMIT_JOB_BG, fn, "", b"probe")
            if not _named(client.next_event(), "JOB_CREATED"):
                return False
            worker.send(PacketType.CAN_DO, fn)
            worker.send(type)
            return _complete(worker, worker.next_event())
        finally:
            client.close()
            worker.close()

    def submit(type: PacketType) -> bool:
        conn = _Probe(address, wait, tls)
        try:
            # Background jobs of a function no worker will ever ask for: the queue forgets
            # nothing, so tidy up below once a grab packet is known.
            conn.send(type, f"gs-probe-{token}-submit", "", b"probe")
            return _named(conn.next_event(), "JOB_CREATED")
        finally:
            conn.close()

    threads = [
        probe("echo", lambda: round_trip(PacketType.ECHO_REQ, b"gs-probe", "ECHO_RES")),
        probe("status", lambda: round_trip(PacketType.GET_STATUS, f"gs-probe-{token}".encode(), "STATUS_RES")),
        probe("admin", admin),
    ]
    # GRAB_JOB_ALL, the newest grab, goes last and alone: a server that does not know it may
    # die of it (node abraxas exits on that zero-length packet), and must not take the other
    # probes with it, which would blame it for refusing what it serves.
    last = GRAB_PREFERENCE[-1]
    threads += [probe(t.name, functools.partial(grab, t)) for t in GRAB_PREFERENCE if t is not last]
    threads += [probe(t.name, functools.partial(submit, t)) for t in PROBED_SUBMITS if t is not PacketType.SUBMIT_JOB]
    limit = time.monotonic() + _CONNECT_TIMEOUT + 2 * wait
    for thread in threads:
        thread.join(max(0.0, limit - time.monotonic()))
    final = probe(last.name, functools.partial(grab, last))
    final.join(max(0.0, time.monotonic() + _CONNECT_TIMEOUT + 2 * wait - time.monotonic()))
    grabs = tuple(t for t in GRAB_PREFERENCE if found.get(t.name) is True)
    submits = frozenset({PacketType.SUBMIT_JOB} | {t for t in PROBED_SUBMITS if found.get(t.name) is True})
    if grabs:
        _take_probe_jobs(address, f"gs-probe-{token}-submit", grabs[0], len(submits) - 1, wait, tls)
    return Capabilities(
        echo=found.get("echo") is True, status=found.get("status") is True, admin=found.get("admin") is True,
        grabs=grabs, submits=submits, probed=True, notes=tuple(notes),
    )


def _complete(worker: _Probe, job: object) -> bool:
    """Complete `job` when it is an assignment (read leniently); False when it is not one."""
    if not isinstance(job, (Packet, RawPacket)) or job.name not in _ASSIGNS:
        return False
    handle = job.args[0] if isinstance(job, Packet) else job.payload.split(b"\0", 1)[0]
    worker.send(PacketType.WORK_COMPLETE, handle, b"")
    return True


def _take_probe_jobs(
    address: tuple[str, int], fn: str, grab: PacketType, count: int, wait: float, tls: ssl.SSLContext | None
) -> None:
    """Take and complete the probe's submitted jobs (a foreground one may be gone already)."""
    try:
        worker = _Probe(address, wait, tls)
    except OSError:
        return
    try:
        worker.send(PacketType.CAN_DO, fn)
        for _ in range(count):
            worker.send(grab)
            if not _complete(worker, worker.next_event()):
                return
    except OSError:
        return
    finally:
        worker.close()
