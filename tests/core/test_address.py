"""gearspec.address: the one HOST:PORT parser every command uses (IPv6, port 0, bad input)."""

from __future__ import annotations

import pytest

from gearspec import DEFAULT_PORT
from gearspec.address import AddressError, format_address, parse_address
from gearspec.errors import GearspecError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:4731", ("127.0.0.1", 4731)),
        ("gearman.internal", ("gearman.internal", DEFAULT_PORT)),
        ("  10.0.0.2:7003 ", ("10.0.0.2", 7003)),
        ("[::1]:7003", ("::1", 7003)),
        ("[::1]", ("::1", DEFAULT_PORT)),
        ("::1", ("::1", DEFAULT_PORT)),
        ("fe80::1%lo", ("fe80::1%lo", DEFAULT_PORT)),
        ("host:65535", ("host", 65535)),
    ],
)
def test_good_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no host"),
        ("   ", "no host"),
        (":4730", "no host"),
        ("[]:4730", "no host"),
        ("host:", "no port after ':'"),
        ("host:notaport", "port 'notaport' is not a number"),
        ("host:-1", "port '-1' is not a number"),
        ("host:٣", "port '٣' is not a number"),  # a digit, but not an ASCII one
        ("host:65536", "port 65536 is not in 1-65535"),
        ("host:99999", "port 99999 is not in 1-65535"),
        ("host:0", "port 0 ('any free port') is for listening only"),
        ("a:b:c", "write an IPv6 address as [::1]:4730"),
        ("::1:4730:zz", "write an IPv6 address as [::1]:4730"),
        ("[::1", "write an IPv6 address as [::1]:4730"),
        ("[::1]4730", "write an IPv6 address as [::1]:4730"),
    ],
)
def test_bad_addresses_say_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_address(text)
    message = str(info.value)
    assert message.startswith(f"{text.strip()!r} is not HOST:PORT: ") and reason in message, message
    assert "\n" not in message
    # One hierarchy: callers may catch it as gearspec's error or as a ValueError.
    assert isinstance(info.value, GearspecError) and isinstance(info.value, ValueError)


def test_port_zero_only_for_listening() -> None:
    assert parse_address("127.0.0.1:0", listen=True) == ("127.0.0.1", 0)
    assert parse_address("[::1]:0", listen=True) == ("::1", 0)
    with pytest.raises(AddressError, match="port 65536 is not in 0-65535"):
        parse_address("127.0.0.1:65536", listen=True)


def test_missing_port_when_required() -> None:
    with pytest.raises(AddressError, match="no port"):
        parse_address("gearman.internal", None)
    with pytest.raises(AddressError, match="no port"):
        parse_address("[::1]", None)
    assert parse_address("gearman.internal", 4731) == ("gearman.internal", 4731)


def test_format_round_trips() -> None:
    for host, port in (("127.0.0.1", 4730), ("::1", 7003), ("gearman.internal", 1)):
        assert parse_address(format_address(host, port)) == (host, port)
    assert format_address("::1", 7003) == "[::1]:7003"
