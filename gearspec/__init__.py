"""gearspec: the Gearman protocol as a declarative spec, with everything derived from it.

The core (this package) is importable alone: the packet table (`PACKETS`, `PacketType`),
the admin-command table (`ADMIN_COMMANDS`), the codec (`Packet`, `encode`, `Decoder`) and
one error hierarchy (`GearspecError`). The reference server, conformance suite and fuzzers
live in `gearspec.reference`, `gearspec.conformance` and `gearspec.fuzz`.
"""

from gearspec.admin import (
    ADMIN_COMMANDS,
    AdminCommand,
    AdminError,
    AdminReply,
    AdminReplyReader,
    ReplyFraming,
    admin_command,
    encode_admin,
    match_admin_command,
    parse_ok,
    parse_prioritystatus,
    parse_show_jobs,
    parse_show_unique_jobs,
    parse_status,
    parse_workers,
)
from gearspec.codec import (
    CLOSED,
    NEED_DATA,
    AdminLine,
    Decoder,
    Event,
    Packet,
    RawPacket,
    decode,
    encode,
)
from gearspec.errors import (
    ErrorCode,
    GearspecError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
)
from gearspec.spec import (
    DEFAULT_PORT,
    HEADER_SIZE,
    PACKETS,
    Arg,
    ArgKind,
    Magic,
    PacketSpec,
    PacketType,
    Priority,
    Role,
    SubmitAttrs,
    packet_spec,
)

__version__ = "0.1.0"

__all__ = [
    "ADMIN_COMMANDS",
    "CLOSED",
    "DEFAULT_PORT",
    "HEADER_SIZE",
    "NEED_DATA",
    "PACKETS",
    "AdminCommand",
    "AdminError",
    "AdminLine",
    "AdminReply",
    "AdminReplyReader",
    "Arg",
    "ArgKind",
    "Decoder",
    "ErrorCode",
    "Event",
    "GearspecError",
    "LocalProtocolError",
    "Magic",
    "Packet",
    "PacketSpec",
    "PacketType",
    "Priority",
    "ProtocolError",
    "RawPacket",
    "RemoteProtocolError",
    "ReplyFraming",
    "Role",
    "SubmitAttrs",
    "__version__",
    "admin_command",
    "decode",
    "encode",
    "encode_admin",
    "match_admin_command",
    "packet_spec",
    "parse_ok",
    "parse_prioritystatus",
    "parse_show_jobs",
    "parse_show_unique_jobs",
    "parse_status",
    "parse_workers",
]
