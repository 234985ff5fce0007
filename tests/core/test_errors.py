"""One error hierarchy: what the core raises on purpose is a GearspecError, whatever the part."""

from __future__ import annotations

import io

import pytest

from gearspec import GearspecError
from gearspec.address import AddressError, parse_address
from gearspec.admin import AdminError, AdminReplyReader
from gearspec.wire.pcap import PcapError, read_frames


def test_an_err_reply_is_a_gearspec_error() -> None:
    reply = AdminReplyReader("status").feed("ERR unknown_command Unknown+server+command")
    assert reply is not None
    error = reply.error()
    assert isinstance(error, AdminError) and isinstance(error, GearspecError)
    assert str(error) == "ERR unknown_command Unknown server command"


def test_a_bad_capture_is_a_gearspec_error() -> None:
    with pytest.raises(GearspecError) as info:
        list(read_frames(io.BytesIO(b"not a capture file")))
    assert isinstance(info.value, PcapError) and "not a pcap or pcapng file" in str(info.value)


def test_a_bad_address_is_a_gearspec_error() -> None:
    with pytest.raises(GearspecError) as info:
        parse_address("host:port")
    assert isinstance(info.value, AddressError)
