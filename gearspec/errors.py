"""One exception hierarchy for everything gearspec's core can refuse.

Every protocol error says what was wrong, at which byte offset of the stream, and carries the
ERROR code a job server would answer with. Decoding garbage raises nothing but
`RemoteProtocolError`.
"""

from __future__ import annotations

import enum
import os

__all__ = [
    "ErrorCode",
    "GearspecError",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "os_reason",
]


class ErrorCode(str, enum.Enum):  # noqa: UP042 - str mixin kept for 3.11 format() behaviour
    """Codes carried by ERROR packets (gearmand's names, `gearmand_strerror`)."""

    INVALID_MAGIC = "INVALID_MAGIC"  # a packet with the wrong magic for its direction
    INVALID_COMMAND = "INVALID_COMMAND"  # a type the sender may not send, or an unknown type
    INVALID_PACKET = "INVALID_PACKET"  # wrong argument count or an argument of the wrong form
    ARGUMENT_TOO_LARGE = "ARGUMENT_TOO_LARGE"  # e.g. a unique id over 64 bytes
    DATA_TOO_LARGE = "DATA_TOO_LARGE"  # a packet or admin line over the size limit
    UNKNOWN_OPTION = "UNKNOWN_OPTION"
    JOB_NOT_FOUND = "JOB_NOT_FOUND"
    QUEUE_ERROR = "QUEUE_ERROR"
    LOST_CONNECTION = "LOST_CONNECTION"  # the stream ended inside a packet
    PERMISSION_DENIED = "PERMISSION_DENIED"  # refused by an access-control list (python gear's geard word)

    def __str__(self) -> str:
        return self.value


class GearspecError(Exception):
    """Base class of every error gearspec raises on purpose."""


class ProtocolError(GearspecError):
    """Bytes that break the protocol.

    `offset` is the stream offset of the offending byte (None when it has no place in a
    stream). `fatal` is True when framing is lost and nothing after this point can be
    trusted; otherwise the offending packet was consumed whole and decoding can go on.
    """

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode = ErrorCode.INVALID_PACKET,
        offset: int | None = None,
        fatal: bool = False,
    ) -> None:
        self.message = message
        self.code = code
        self.offset = offset
        self.fatal = fatal
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{message}{where} [{code.value}]")


class LocalProtocolError(ProtocolError):
    """We were asked to encode something the protocol does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes the protocol does not allow."""


def os_reason(exc: OSError) -> str:
    """The system's words for an OSError, e.g. "connection refused", without "[Errno N]".

    asyncio puts "Connect call failed ('127.0.0.1', 1)" in strerror; the errno says more.
    """
    if exc.errno and exc.errno > 0:  # getaddrinfo's errors are negative: their strerror says it
        text = os.strerror(exc.errno)
    else:
        text = exc.strerror or str(exc) or type(exc).__name__
    return text[:1].lower() + text[1:]
