"""The broker's replies are encoded from the packet table, by type name, never by a literal number."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from gearspec.reference import broker

from gearspec.codec import decode
from gearspec.spec import Magic, PacketType

SOURCE = Path(broker.__file__).read_text()


def test_no_reply_is_packed_with_a_literal_type_number() -> None:
    assert not re.search(r"_pack\(\s*_RES\s*,\s*\d", SOURCE)


@pytest.mark.parametrize("ptype", [PacketType.JOB_CREATED, PacketType.JOB_ASSIGN_UNIQ, PacketType.WORK_COMPLETE])
def test_reply_headers_decode_as_their_type(ptype: PacketType) -> None:
    n_args = len(ptype.spec.args)
    payload = b"\0".join([b"H:x:1"] + [b"a"] * (n_args - 1))
    header = broker._reply_header(ptype)(len(payload))
    (packet,) = decode(header + payload, Magic.RES)
    assert packet.type is ptype and packet.args[0] == b"H:x:1"


def test_a_request_only_type_has_no_reply_header() -> None:
    with pytest.raises(ValueError, match="SUBMIT_JOB is never sent with RES magic"):
        broker._reply_header(PacketType.SUBMIT_JOB)
