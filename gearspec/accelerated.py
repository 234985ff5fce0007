"""The hand-off to the C hot path (`gearspec._speedups`): `Decoder` and `ACCELERATED`.

`Decoder` is `PythonDecoder` with the C core in front when the extension is built and
GEARSPEC_PURE_PYTHON is not set; else it is `PythonDecoder` itself. The C core knows no
protocol: it is handed `gearspec.plans`' framing plans, the NUMBER rule's byte table and the
large-payload threshold here, and does only what the pure-Python fast path does.
"""

from __future__ import annotations

import os
from typing import Final

from gearspec.decoder import PythonDecoder
from gearspec.events import CLOSED, NEED_DATA, Event, Packet, RawPacket, _Sentinel
from gearspec.plans import FRAME_PLANS, LARGE_PAYLOAD, NUMBER_BYTES

__all__ = ["ACCELERATED", "Decoder"]


def _speedups_usable() -> bool:
    if os.environ.get("GEARSPEC_PURE_PYTHON"):  # set it to use (and test) the pure-Python decoder
        return False
    try:
        import gearspec._speedups  # noqa: F401
    except ImportError:  # not built (no C compiler at install time): pure Python it is
        return False
    return True


if not _speedups_usable():
    Decoder = PythonDecoder
    ACCELERATED: Final = False
else:
    from gearspec._speedups import DecoderCore

    class Decoder(DecoderCore, PythonDecoder):  # type: ignore[no-redef]
        # The C core frames and splits well-formed packets, as PythonDecoder's fast path
        # does; anything else it hands over (_py_adopt) with the undecoded bytes, and
        # PythonDecoder decides from scratch. The bytes come back (_core_adopt) after the
        # next binary packet, so admin text, flaws and errors cost nothing on the hot path.
        __doc__ = PythonDecoder.__doc__

        def _set_up(self) -> None:
            self._core_setup(FRAME_PLANS[self.accept], self._limit, Packet, NEED_DATA, CLOSED, NUMBER_BYTES, LARGE_PAYLOAD)

        @property
        def max_packet_size(self) -> int:
            return self._limit

        @max_packet_size.setter
        def max_packet_size(self, value: int) -> None:
            self._limit = value
            self._core_set_limit(value)

        @property
        def offset(self) -> int:
            if self._core_python_mode:
                return self._base + self._pos
            return self._core_offset

        @property
        def buffered(self) -> int:
            if self._core_python_mode:
                return len(self._buf) - self._pos + self._more_len
            return self._core_buffered

        _py_receive_data = PythonDecoder.receive_data

        def _py_adopt(self, data: bytes, pos: int, base: int, eof: bool) -> None:
            self._buf, self._pos, self._base, self._eof = data, pos, base, eof
            self._more, self._more_len, self._need = [], 0, 0

        def _slow_next(self) -> Event | _Sentinel:
            event = PythonDecoder.next_event(self)
            if self._error is None and not self._eof:
                if event.__class__ is Packet or event.__class__ is RawPacket:
                    # Back to the hot path, with whatever follows the packet.
                    if self._more_len:
                        self._have(len(self._buf) - self._pos + self._more_len)
                    self._core_adopt(self._buf, self._pos, self._base)
                    self._buf, self._pos = b"", 0
                elif event is NEED_DATA and len(self._buf) == self._pos and not self._more_len:
                    self._core_adopt(b"", 0, self._base + self._pos)
            return event

    ACCELERATED: Final = True  # type: ignore[misc]
