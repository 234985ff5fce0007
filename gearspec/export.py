"""Plain-data views of the tables and of decoded events, for JSON and other languages."""

from __future__ import annotations

from typing import Any

from gearspec.admin import ADMIN_COMMANDS
from gearspec.codec import AdminLine, Event, Packet, RawPacket
from gearspec.spec import PACKETS, Role

__all__ = ["event_as_data", "show_bytes", "spec_as_data"]

_ROLE_NAMES = (Role.CLIENT, Role.WORKER, Role.SERVER)


def show_bytes(value: bytes) -> str | dict[str, str]:
    """A string when the bytes are printable UTF-8, else ``{"hex": "..."}``: never lossy."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return {"hex": value.hex()}
    if all(c.isprintable() or c in "\t" for c in text):
        return text
    return {"hex": value.hex()}


def spec_as_data() -> dict[str, Any]:
    """Both tables as JSON-ready data."""
    packets = []
    for row in PACKETS:
        packets.append(
            {
                "code": row.code,
                "name": row.name,
                "magic": sorted(m.name for m in row.magics),
                "senders": [r.name.lower() for r in _ROLE_NAMES if r in row.senders],  # type: ignore[union-attr]
                "args": [
                    {"name": a.name, "kind": a.kind.value, "max_size": a.max_size, "note": a.note or None}
                    for a in row.args
                ],
                "origin": row.origin,
                "reserved": row.reserved,
                "served_by_gearmand": row.served_by_gearmand,
                "submit": None
                if row.submit is None
                else {
                    "background": row.submit.background,
                    "priority": row.submit.priority.name,
                    "scheduled": row.submit.scheduled,
                    "reduce": row.submit.reduce,
                },
                "grab": row.grab,
                "assign": row.assign,
                "work_update": row.work_update,
                "terminal": row.terminal,
                "source": row.source,
                "note": row.note or None,
            }
        )
    admin = [
        {
            "command": cmd.name,
            "args": [{"name": a.name, "optional": a.optional} for a in cmd.args],
            "reply": cmd.reply.value,
            "reply_format": cmd.reply_format,
            "summary": cmd.summary,
            "origin": cmd.origin,
            "source": cmd.source,
            "note": cmd.note or None,
        }
        for cmd in ADMIN_COMMANDS
    ]
    return {
        "framing": {
            "header": "magic(4) type(uint32 BE) size(uint32 BE)",
            "magic": {"REQ": "\\0REQ", "RES": "\\0RES"},
            "separator": "NUL between arguments; the last runs to the end of the payload",
            "admin": "a line whose first byte is not NUL, ending in \\n (\\r\\n accepted)",
        },
        "packets": packets,
        "admin_commands": admin,
    }


def event_as_data(event: Event, offset: int | None = None) -> dict[str, Any]:
    """One decoded event as JSON-ready data: magic, type, name, args by name."""
    out: dict[str, Any]
    if isinstance(event, Packet):
        out = {
            "magic": event.magic.name,
            "type": int(event.type),
            "name": event.type.name,
            "args": {k: show_bytes(v) for k, v in event.fields.items()},
        }
    elif isinstance(event, RawPacket):
        out = {
            "magic": show_bytes(event.magic),
            "type": event.code,
            "name": event.name,
            "payload": show_bytes(event.payload),
            "error": {"code": event.problem.code.value, "message": event.problem.message, "offset": event.problem.offset},
        }
    elif isinstance(event, AdminLine):
        out = {"admin": show_bytes(event.text), "terminator": show_bytes(event.terminator)}
    else:  # pragma: no cover - Event is closed
        raise TypeError(f"not an event: {event!r}")
    if offset is not None:
        out["offset"] = offset
    return out
