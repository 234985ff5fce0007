"""The sans-IO incremental decoder, in pure Python (`PythonDecoder`; usage: gearspec.codec).

Nothing here is written per packet type: it reads `gearspec.plans`. `gearspec.accelerated`
puts the C hot path in front of it (`gearspec.codec.Decoder`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from gearspec.errors import ErrorCode, RemoteProtocolError
from gearspec.events import CLOSED, NEED_DATA, AdminLine, Event, Packet, RawPacket, _count_message, _Sentinel, _short
from gearspec.plans import FRAME_PLAN_TUPLES, HEADER, KEY_AND_SIZE, LARGE_PAYLOAD, MAGIC_BY_BYTES, PLAN_TUPLES
from gearspec.spec import HEADER_SIZE, PACKETS, Magic, is_number

__all__ = ["DEFAULT_MAX_LINE", "DEFAULT_MAX_PACKET_SIZE", "PythonDecoder"]

DEFAULT_MAX_PACKET_SIZE: Final = 64 * 1024 * 1024
DEFAULT_MAX_LINE: Final = 8192  # gearmand's receive buffer for one admin line

# Imported names rebound by assignment: CPython 3.11.7 calls a method of a name bound by an
# import statement without the LOAD_METHOD shortcut (it may be a module).
_PLANS = PLAN_TUPLES
_MAGICS = MAGIC_BY_BYTES
_unpack_key_and_size = KEY_AND_SIZE.unpack_from
_unpack_header = HEADER.unpack_from

_NOTHING: Final[Iterator[Event]] = iter(())  # an exhausted iterator stays exhausted: one serves every call
_new_object = object.__new__  # Packet(...) costs an __init__ frame; the hot paths set the slots themselves


class PythonDecoder:
    """Sans-IO incremental decoder for one direction of one connection (pure Python).

    `Decoder` is this class, or its C-accelerated subclass when `gearspec._speedups` is
    built (`ACCELERATED`); both decode every stream to the same events and errors.

    `accept` is the magic this side expects (REQ for a server, RES for a client), or None
    for either (dissectors). In strict mode (the default) anything off-spec raises
    `RemoteProtocolError`; when the error is not `fatal` the bad packet was consumed and the
    next call goes on with the following bytes. In lenient mode such packets come back as
    `RawPacket` values instead, and only lost framing raises.
    """

    def __init__(
        self,
        accept: Magic | None = None,
        *,
        lenient: bool = False,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
        max_line: int = DEFAULT_MAX_LINE,
        admin: bool = True,
    ) -> None:
        self.accept = accept
        self.lenient = lenient
        self.max_packet_size = max_packet_size
        self.max_line = max_line
        self.admin = admin
        self._fast_plans = FRAME_PLAN_TUPLES[accept]
        self._need = 0  # undecoded bytes the packet at self._pos needs (0: not known)
        self._buf = b""
        self._pos = 0
        self._more: list[bytes | memoryview] = []  # received after self._buf; a view is a chunk's rest
        self._more_len = 0
        self._base = 0  # stream offset of self._buf[0]
        self._eof = False
        self._error: RemoteProtocolError | None = None
        self._set_up()

    def _set_up(self) -> None:
        """Called last by __init__ (the C-accelerated subclass sets its core up here)."""

    # -- input ---------------------------------------------------------------------------
    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes as they arrive; b"" marks the end of the stream."""
        if not data:
            self._eof = True
            return
        if self._eof:
            raise RuntimeError("received data after end of stream")
        if self._pos == len(self._buf) and not self._more_len:
            # Everything before was decoded: the new bytes become the buffer as they are,
            # so the hot path can read them without a join.
            self._base += self._pos
            self._buf = data if data.__class__ is bytes else bytes(data)
            self._pos = 0
        else:
            chunk = data if data.__class__ is bytes else bytes(data)
            self._more.append(chunk)
            self._more_len += len(chunk)  # in bytes, whatever the format of a memoryview

    @property
    def offset(self) -> int:
        """Stream offset of the next byte to decode."""
        return self._base + self._pos

    @property
    def buffered(self) -> int:
        """Bytes received but not yet decoded."""
        return len(self._buf) - self._pos + self._more_len

    def _have(self, n: int) -> bool:
        """Make at least n undecoded bytes contiguous in self._buf, if they have arrived."""
        have = len(self._buf) - self._pos
        if have >= n:
            return True
        if have + self._more_len < n:
            return False
        self._base += self._pos
        self._buf = self._buf[self._pos:] + b"".join(self._more)
        self._pos = 0
        self._more = []
        self._more_len = 0
        return True

    def _pieces(self, start: int, need: int) -> tuple[list[bytes | memoryview], int, int]:
        # The packet at self._pos needs `need` bytes, and they are here: the buffer from
        # `start` on and the chunks received after it that the packet reaches into; how many
        # bytes those span counted from self._pos, and how many chunks they are.
        buf, pos, more = self._buf, self._pos, self._more
        got = len(buf) - pos + self._more_len
        if got - len(more[-1]) < need:  # the usual case: it ends in the last chunk received
            return [memoryview(buf)[start:], *more], got, len(more)
        parts: list[bytes | memoryview] = [memoryview(buf)[start:]]
        got = len(buf) - pos
        taken = 0
        while got < need:
            got += len(more[taken])
            parts.append(more[taken])
            taken += 1
        return parts, got, taken

    def _take_packet(self, need: int) -> None:
        # The packet at self._pos needs `need` bytes, and they are here: copy just them into
        # one buffer. The chunk it ends in is not copied: its rest is kept as a view, which
        # becomes the buffer again once the packet is decoded (see _next_chunk).
        buf, pos = self._buf, self._pos
        parts, got, taken = self._pieces(pos, need)
        rest = self._more[taken:]
        over = got - need
        if over:
            last = memoryview(parts[-1])
            parts[-1] = last[:len(last) - over]
            rest.insert(0, last[len(last) - over:])
        self._base += pos
        self._buf = b"".join(parts)
        self._pos = 0
        self._more = rest
        self._more_len -= need - (len(buf) - pos)

    def _take_large(self, need: int) -> Packet | None:
        # A well-formed packet with bulk data that arrived in several chunks: cut its leading
        # arguments out of the buffer and join its data straight from the chunks, so that the
        # data is copied once (not joined, then sliced out again). None, touching nothing, for
        # anything else (the arguments before the data reach past the buffer, a flaw): the
        # caller then takes the packet whole, and the checked path judges it.
        buf, pos = self._buf, self._pos
        key, size = _unpack_key_and_size(buf, pos)
        plan = self._fast_plans.get(key)
        if plan is None or size > self.max_packet_size:
            return None
        magic, ptype, n, has_data, numbers, _, _, _ = plan
        if not has_data or n < 2:
            return None
        start = pos + HEADER_SIZE
        args = []
        for _ in range(n - 1):
            cut = buf.find(b"\0", start)  # all of the buffer from pos on is this packet's
            if cut < 0:
                return None
            args.append(buf[start:cut])
            start = cut + 1
        for i in numbers:
            if not is_number(args[i]):
                return None
        more = self._more
        parts, got, taken = self._pieces(start, need)
        last = parts[-1]
        over = got - need  # bytes of the last chunk after the packet
        if over:
            parts[-1] = memoryview(last)[:len(last) - over]
        args.append(b"".join(parts))
        # Go on in the last chunk, after the packet, as it is.
        whole: bytes = last.obj if last.__class__ is memoryview else last  # type: ignore[assignment]
        self._base += pos + need - (len(whole) - over)
        self._buf = whole
        self._pos = len(whole) - over
        self._more = more[taken:]
        self._more_len -= need - (len(buf) - pos) + over
        packet = _new_object(Packet)
        packet.magic, packet.type, packet.args = magic, ptype, tuple(args)  # type: ignore[assignment]  # a FRAME_PLANS plan has its magic
        return packet

    def _next_chunk(self) -> None:
        # The buffer is used up: the next chunk received becomes the buffer as it is.
        chunk = self._more.pop(0)
        self._more_len -= len(chunk)
        self._base += len(self._buf)
        if chunk.__class__ is memoryview:  # the rest of a chunk (_take_packet): its bytes, from there
            whole: bytes = chunk.obj  # type: ignore[assignment]
            self._pos = len(whole) - len(chunk)
            self._base -= self._pos
            self._buf = whole
        else:
            self._buf = chunk  # type: ignore[assignment]
            self._pos = 0

    # -- output --------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Event]:
        """Events until more data is needed or the stream closed."""
        need = self._need
        if need and len(self._buf) - self._pos + self._more_len < need and not self._eof and self._error is None:
            # Still short of the packet we wait for (a large one arriving in many receives):
            # answer without building a generator.
            return _NOTHING
        return self._events()

    def _events(self) -> Iterator[Event]:
        # One tight loop decodes every complete, well-formed packet in the buffer, with what it
        # needs in locals and no method call per packet; next_event's fast path does the same
        # checks one packet at a time (tests/core/test_properties.py checks the two agree).
        # Anything else -- an admin line, a flaw, the end of the stream, a sticky error -- goes
        # to `_next_guarded`, which decides again from scratch and words the error.
        plans, limit, unpack_header, new = self._fast_plans, self.max_packet_size, _unpack_key_and_size, _new_object
        cls = Packet
        while True:
            buf, pos = self._buf, self._pos
            blen = len(buf)
            need = self._need
            if need and self._error is None:
                # Waiting for the rest of a packet: nothing to do until it is all here.
                if blen - pos + self._more_len < need:
                    if not self._eof:
                        return  # NEED_DATA
                elif self._more_len:
                    # The whole packet has arrived: copy it out of the chunks, once.
                    packet = self._take_large(need) if need - HEADER_SIZE >= LARGE_PAYLOAD else None
                    if packet is None:
                        self._take_packet(need)
                    self._need = 0
                    if packet is not None:
                        yield packet
                    continue
            elif self._error is None:
                while blen - pos >= HEADER_SIZE:
                    key, size = unpack_header(buf, pos)
                    try:
                        magic, ptype, n, has_data, numbers, _, _, _ = plans[key]
                    except KeyError:
                        break
                    if size > limit:
                        break
                    start = pos + HEADER_SIZE
                    end = start + size
                    if end > blen:
                        # A packet that is all right so far but not all here: wait for it (the
                        # end of the stream and joining are for _next_checked / the code above).
                        if not self._eof:
                            self._need = HEADER_SIZE + size
                            if blen - pos + self._more_len < HEADER_SIZE + size:
                                return  # NEED_DATA
                        break
                    if n == 0:
                        if size:
                            break
                        args: tuple[bytes, ...] = ()
                    elif n == 1:
                        arg = buf[start:end]
                        if not has_data and b"\0" in arg:
                            break
                        args = (arg,)
                    else:
                        if size < LARGE_PAYLOAD or not has_data:
                            parts = buf[start:end].split(b"\0", n - 1)
                            if len(parts) != n or (not has_data and b"\0" in parts[-1]):
                                break
                        else:
                            # Cut out each argument, so that the bulk data is copied once, not
                            # sliced and then split again.
                            parts = []
                            for _ in range(n - 1):
                                cut = buf.find(b"\0", start, end)
                                if cut < 0:
                                    break
                                parts.append(buf[start:cut])
                                start = cut + 1
                            if len(parts) != n - 1:
                                break
                            parts.append(buf[start:end])
                        flawed = False
                        for i in numbers:
                            if not is_number(parts[i]):
                                flawed = True
                                break
                        if flawed:
                            break
                        args = tuple(parts)
                    self._pos = end
                    packet = new(cls)
                    packet.magic, packet.type, packet.args = magic, ptype, args  # type: ignore[assignment]  # a FRAME_PLANS plan has its magic
                    yield packet
                    if self._buf is not buf:
                        break
                    pos = self._pos
                else:
                    if pos == blen and not self._more_len and not self._eof:
                        return  # NEED_DATA: the buffer is used up exactly
                if self._buf is not buf:
                    continue  # the caller fed data or decoded meanwhile: start afresh
                if self._more_len:
                    # Stopped short of a header or a packet, with more bytes already here: go on
                    # in the next chunk, or join what is here (when the size is known, the code
                    # above takes the packet once it is whole), and go again.
                    if pos == blen:
                        self._next_chunk()
                    elif not self._need:
                        self._have(blen - pos + self._more_len)
                    continue
            event = self._next_guarded()
            if event.__class__ is _Sentinel:  # NEED_DATA or CLOSED
                return
            yield event  # type: ignore[misc]

    def next_event(self) -> Event | _Sentinel:
        """The next packet or admin line, `NEED_DATA`, or `CLOSED` after a clean end of stream.

        Raises `RemoteProtocolError` for bytes that break the protocol (strict mode), or
        when framing is lost (either mode); a fatal error is raised again on every call.
        """
        # The hot path, inline because calls are dear in CPython: a complete, well-formed
        # packet already in the buffer. Anything else (more bytes needed, an admin line, any
        # flaw, a sticky error) goes to `_next_checked`, which decides again from scratch
        # and words the error.
        buf, pos = self._buf, self._pos
        if len(buf) - pos >= HEADER_SIZE and not self._need and self._error is None:
            key, size = _unpack_key_and_size(buf, pos)
            plan = self._fast_plans.get(key)
            if plan is not None:
                end = pos + HEADER_SIZE + size
                if end <= len(buf) and size <= self.max_packet_size:
                    magic, ptype, n, has_data, numbers, _, _, _ = plan
                    if n == 0:
                        if not size:
                            self._pos = end
                            packet = _new_object(Packet)
                            packet.magic, packet.type, packet.args = magic, ptype, ()  # type: ignore[assignment]  # a FRAME_PLANS plan has its magic
                            return packet
                    else:
                        args = buf[pos + HEADER_SIZE:end].split(b"\0", n - 1)
                        if len(args) == n and (has_data or b"\0" not in args[-1]):
                            for i in numbers:
                                if not is_number(args[i]):
                                    break
                            else:
                                self._pos = end
                                packet = _new_object(Packet)
                                packet.magic, packet.type, packet.args = magic, ptype, tuple(args)  # type: ignore[assignment]  # a FRAME_PLANS plan has its magic
                                return packet
        return self._next_guarded()

    def _next_guarded(self) -> Event | _Sentinel:
        # The full path, with the sticky-error rule.
        if self._error is not None:
            raise self._error
        try:
            return self._next_checked()
        except RemoteProtocolError as exc:
            if exc.fatal:
                self._error = exc
            raise

    def _next_checked(self) -> Event | _Sentinel:
        if self._more_len:
            if self._need and not self._eof and len(self._buf) - self._pos + self._more_len < self._need:
                return NEED_DATA  # still short of the packet we are waiting for
            # Join what has arrived; a packet split across receives is then whole, and the
            # fast path can take it (one level of recursion at most: nothing is left to join).
            self._need = 0
            self._have(len(self._buf) - self._pos + self._more_len)
            if self._error is None:
                return PythonDecoder.next_event(self)  # not the subclass's: that would hand the bytes back early
        if not self._have(1):
            return self._at_end()
        buf, pos = self._buf, self._pos
        if buf[pos] != 0:
            return self._next_line()
        if not self._have(HEADER_SIZE):
            if self._have(4) and self._buf[self._pos:self._pos + 4] not in _MAGICS:
                return self._bad_magic_early()
            return self._at_end()
        buf, pos = self._buf, self._pos
        magic_bytes, code, size = _unpack_header(buf, pos)
        start = self._base + pos
        if magic_bytes not in _MAGICS and not self.lenient:
            return self._bad_magic_early()  # framing is lost: do not wait for a payload
        if size > self.max_packet_size:
            raise RemoteProtocolError(
                f"packet size {size} exceeds the limit of {self.max_packet_size}",
                code=ErrorCode.DATA_TOO_LARGE, offset=start + 8, fatal=True,
            )
        if not self._have(HEADER_SIZE + size):
            self._need = HEADER_SIZE + size
            return self._at_end()
        buf, pos = self._buf, self._pos
        end = pos + HEADER_SIZE + size
        payload = buf[pos + HEADER_SIZE:end]
        self._pos = end

        magic = _MAGICS.get(magic_bytes)
        if magic is None:
            return self._reject(
                magic_bytes, code, payload,
                f"bad magic {magic_bytes!r} (expected {Magic.REQ.value!r} or {Magic.RES.value!r})",
                ErrorCode.INVALID_MAGIC, start, fatal=True,
            )
        plan = _PLANS.get(code)
        if plan is None:
            what = "reserved" if 0 <= code < len(PACKETS) else "unknown"
            return self._reject(
                magic_bytes, code, payload, f"{what} packet type {code}", ErrorCode.INVALID_COMMAND, start + 4
            )
        _, ptype, n, has_data, numbers, spec, _, _ = plan
        if self.accept is not None and magic is not self.accept:
            return self._reject(
                magic_bytes, code, payload,
                f"{spec.name} with {magic.name} magic where {self.accept.name} was expected",
                ErrorCode.INVALID_MAGIC, start,
            )
        if magic not in spec.magics:
            return self._reject(
                magic_bytes, code, payload,
                f"{spec.name} is never sent with {magic.name} magic", ErrorCode.INVALID_COMMAND, start,
            )
        if n == 0:
            if size:
                return self._reject(
                    magic_bytes, code, payload, f"{spec.name} takes no arguments but has a {size}-byte payload",
                    ErrorCode.INVALID_PACKET, start + HEADER_SIZE,
                )
            return Packet(magic, ptype, ())
        args = payload.split(b"\0", n - 1) if n > 1 else [payload]
        if len(args) != n:
            return self._reject(
                magic_bytes, code, payload, _count_message(spec, len(args)), ErrorCode.INVALID_PACKET, start + 8
            )
        if not has_data and b"\0" in args[-1]:
            return self._reject(
                magic_bytes, code, payload,
                f"{spec.name} has more than {n} arguments (NUL inside {spec.args[-1].name!r})",
                ErrorCode.INVALID_PACKET, start + HEADER_SIZE + len(payload) - len(args[-1]) + args[-1].index(b"\0"),
            )
        for i in numbers:
            if not is_number(args[i]):
                field_at = start + HEADER_SIZE + sum(len(a) + 1 for a in args[:i])
                return self._reject(
                    magic_bytes, code, payload,
                    f"{spec.name} argument {spec.args[i].name!r} is not a decimal number: {_short(args[i])}",
                    ErrorCode.INVALID_PACKET, field_at,
                )
        return Packet(magic, ptype, tuple(args))

    def _reject(
        self, magic: bytes, code: int, payload: bytes, message: str, error_code: ErrorCode, offset: int,
        fatal: bool = False,
    ) -> RawPacket:
        error = RemoteProtocolError(message, code=error_code, offset=offset, fatal=fatal)
        if self.lenient:
            return RawPacket(magic, code, payload, error)
        raise error

    def _bad_magic_early(self) -> Event:
        # Four bytes already rule the packet out: say so now rather than wait for a header
        # that may never come. In lenient mode we still wait for the header to keep the bytes.
        if self.lenient:
            return self._at_end()  # type: ignore[return-value]
        magic = self._buf[self._pos:self._pos + 4]
        raise RemoteProtocolError(
            f"bad magic {magic!r} (expected {Magic.REQ.value!r} or {Magic.RES.value!r})",
            code=ErrorCode.INVALID_MAGIC, offset=self.offset, fatal=True,
        )

    def _next_line(self) -> Event | _Sentinel:
        if not self.admin:
            raise RemoteProtocolError(
                f"expected a binary packet (NUL first byte), got {self._buf[self._pos:self._pos + 8]!r}",
                code=ErrorCode.INVALID_MAGIC, offset=self.offset, fatal=True,
            )
        end = self._buf.find(b"\n", self._pos)
        if end < 0 and self._more_len:
            self._have(len(self._buf) - self._pos + self._more_len)
            end = self._buf.find(b"\n", self._pos)
        pos = self._pos
        if end < 0:
            if len(self._buf) - pos > self.max_line:
                raise RemoteProtocolError(
                    f"admin line longer than {self.max_line} bytes without a newline",
                    code=ErrorCode.DATA_TOO_LARGE, offset=self.offset, fatal=True,
                )
            return self._at_end()
        if end - pos > self.max_line:
            raise RemoteProtocolError(
                f"admin line of {end - pos} bytes exceeds the limit of {self.max_line}",
                code=ErrorCode.DATA_TOO_LARGE, offset=self.offset, fatal=True,
            )
        self._pos = end + 1
        if end > pos and self._buf[end - 1] == 13:
            return AdminLine(self._buf[pos:end - 1], b"\r\n")
        return AdminLine(self._buf[pos:end], b"\n")

    def _at_end(self) -> _Sentinel:
        if not self._eof:
            return NEED_DATA
        left = self.buffered
        if left == 0:
            return CLOSED
        if self.lenient and self._buf[self._pos:self._pos + 1] != b"\0":
            self._have(left)
            line = self._buf[self._pos:]
            self._pos = len(self._buf)
            return AdminLine(line, b"")  # type: ignore[return-value]
        inside = "packet" if self._buf[self._pos:self._pos + 1] == b"\0" else "text line"
        raise RemoteProtocolError(
            f"stream ended inside a {inside} ({left} bytes left over)",
            code=ErrorCode.LOST_CONNECTION, offset=self.offset, fatal=True,
        )
