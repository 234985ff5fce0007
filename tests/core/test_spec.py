"""The packet table checks itself: every rule the codec and the strategies rely on."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gearspec.errors import LocalProtocolError
from gearspec.spec import KIND_RULES, PACKETS, ArgKind, Magic, PacketType, Priority, Role, packet_spec
from gearspec.strategies import ARG_STRATEGIES

ROWS = [row for row in PACKETS if not row.reserved]
ROW_IDS = [row.name for row in ROWS]


def test_numbers_are_0_to_42_in_order() -> None:
    assert [row.code for row in PACKETS] == list(range(43))


def test_names_are_unique_upper_snake() -> None:
    names = [row.name for row in PACKETS]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[A-Z][A-Z_]*", n) for n in names)


def test_only_0_and_5_are_reserved() -> None:
    assert {row.code for row in PACKETS if row.reserved} == {0, 5}
    for row in PACKETS:
        if row.reserved:
            assert not row.magics and not row.senders and not row.args and row.note


def test_packet_type_enum_matches_table() -> None:
    assert {m.name: m.value for m in PacketType} == {row.name: row.code for row in PACKETS}
    for member in PacketType:
        assert member.spec is PACKETS[member.value]


def test_lookup_by_number_name_and_enum() -> None:
    assert packet_spec(7) is packet_spec("SUBMIT_JOB") is packet_spec("submit_job") is packet_spec(PacketType.SUBMIT_JOB)
    with pytest.raises(KeyError, match="43"):
        packet_spec(43)
    with pytest.raises(KeyError, match="NOPE"):
        packet_spec("NOPE")


@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_argument_names_unique_and_data_only_last(row) -> None:
    names = [a.name for a in row.args]
    assert len(names) == len(set(names))
    for arg in row.args[:-1]:
        assert not KIND_RULES[arg.kind].only_last, f"{row.name}.{arg.name} ({arg.kind}) may only be last"
    assert row.has_data == (bool(row.args) and row.args[-1].kind is ArgKind.DATA)
    assert row.arg_index == {a.name: i for i, a in enumerate(row.args)}


@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_magic_matches_senders(row) -> None:
    """REQ only from clients and workers, RES only from the server, and nobody else."""
    assert row.magics and row.senders
    assert (Magic.REQ in row.magics) == bool(row.senders & (Role.CLIENT | Role.WORKER))
    assert (Magic.RES in row.magics) == bool(row.senders & Role.SERVER)
    assert row.sent_to_server == (Magic.REQ in row.magics)
    assert row.sent_by_server == (Magic.RES in row.magics)


@pytest.mark.parametrize("row", PACKETS, ids=[r.name for r in PACKETS])
def test_every_row_cites_a_source(row) -> None:
    assert row.source.strip()
    assert "PROTOCOL" in row.source or "gearmand" in row.source or re.search(r"\w+/\w+\.(cc|h)\b", row.source)
    assert row.origin in {"core", "gearmand"}


def test_extensions_are_35_to_42_and_reserved_0() -> None:
    assert {row.code for row in PACKETS if row.origin == "gearmand"} == {0, *range(35, 43)}


def test_submit_family_attributes_match_names() -> None:
    submits = {row.name: row.submit for row in PACKETS if row.submit is not None}
    assert set(submits) == {
        "SUBMIT_JOB", "SUBMIT_JOB_BG", "SUBMIT_JOB_HIGH", "SUBMIT_JOB_HIGH_BG", "SUBMIT_JOB_LOW",
        "SUBMIT_JOB_LOW_BG", "SUBMIT_JOB_SCHED", "SUBMIT_JOB_EPOCH", "SUBMIT_REDUCE_JOB",
        "SUBMIT_REDUCE_JOB_BACKGROUND",
    }
    for name, attrs in submits.items():
        assert attrs is not None
        assert attrs.background == (name.endswith(("_BG", "_BACKGROUND")) or attrs.scheduled is not None), name
        expected = Priority.HIGH if "_HIGH" in name else Priority.LOW if "_LOW" in name else Priority.NORMAL
        assert attrs.priority is expected, name
        assert attrs.reduce == ("REDUCE" in name)
        row = packet_spec(name)
        assert row.args[0].name == "function" and row.args[1].name == "unique" and row.has_data
        assert row.magics == {Magic.REQ} and row.senders == Role.CLIENT
    # The six plain variants are the classic background x priority grid.
    grid = {(a.background, a.priority) for n, a in submits.items() if a and not a.scheduled and not a.reduce}
    assert len(grid) == 6


def test_family_flags() -> None:
    assert {r.name for r in PACKETS if r.grab} == {"GRAB_JOB", "GRAB_JOB_UNIQ", "GRAB_JOB_ALL"}
    assert {r.name for r in PACKETS if r.assign} == {"JOB_ASSIGN", "JOB_ASSIGN_UNIQ", "JOB_ASSIGN_ALL"}
    updates = {r.name for r in PACKETS if r.work_update}
    assert updates == {"WORK_STATUS", "WORK_COMPLETE", "WORK_FAIL", "WORK_EXCEPTION", "WORK_DATA", "WORK_WARNING"}
    assert {r.name for r in PACKETS if r.terminal} == {"WORK_COMPLETE", "WORK_FAIL", "WORK_EXCEPTION"}
    for row in PACKETS:
        if row.work_update:
            assert row.magics == {Magic.REQ, Magic.RES} and row.args[0].name == "handle"
        if row.assign:
            assert row.args[0].name == "handle" and row.has_data
    assert {r.name for r in PACKETS if not r.served_by_gearmand} == {"ALL_YOURS", "SUBMIT_JOB_SCHED"}


def test_documented_deviations_from_protocol() -> None:
    """Where PROTOCOL and gearmand disagree the table follows gearmand, and says so."""
    for name in ("SUBMIT_REDUCE_JOB", "SUBMIT_REDUCE_JOB_BACKGROUND"):
        row = packet_spec(name)
        assert [a.name for a in row.args] == ["function", "unique", "reducer", "aggregator", "data"]
    assert "PROTOCOL lists 4" in packet_spec("SUBMIT_REDUCE_JOB").note
    unique_first = packet_spec("STATUS_RES_UNIQUE")
    assert unique_first.args[0].name == "unique" and unique_first.args[-1].name == "client_count"
    assert "PROTOCOL" in unique_first.note and "unique" in unique_first.note
    assert len(packet_spec("SUBMIT_JOB_SCHED").args) == 8  # 7 fields before the data
    assert packet_spec("JOB_ASSIGN_ALL").arg_index["reducer"] == 3


def test_every_kind_has_encoder_validator_and_strategy() -> None:
    assert set(KIND_RULES) == set(ArgKind)
    assert set(ARG_STRATEGIES) == set(ArgKind)
    used = {a.kind for row in PACKETS for a in row.args}
    assert used == set(ArgKind), "a kind no packet uses is dead weight"
    for kind, rule in KIND_RULES.items():
        assert callable(rule.encode) and callable(rule.problem), kind


@pytest.mark.parametrize("kind", list(ArgKind), ids=[k.value for k in ArgKind])
@settings(max_examples=50, derandomize=True, deadline=None)
@given(data=st.data())
def test_strategy_values_pass_their_validator(kind: ArgKind, data: st.DataObject) -> None:
    value = data.draw(ARG_STRATEGIES[kind])
    rule = KIND_RULES[kind]
    assert rule.problem(value) is None
    assert rule.encode(value) == value


def test_validators_refuse_what_they_should() -> None:
    for kind in (ArgKind.FUNCTION, ArgKind.UNIQUE, ArgKind.HANDLE, ArgKind.TOKEN, ArgKind.TEXT):
        assert KIND_RULES[kind].problem(b"a\0b") is not None
    assert KIND_RULES[ArgKind.DATA].problem(b"a\0b") is None
    for bad in (b"", b"-1", b"1.5", b" 1", b"\xd9\xa3"):  # \xd9\xa3 is ARABIC-INDIC DIGIT THREE
        assert KIND_RULES[ArgKind.NUMBER].problem(bad) is not None
    assert KIND_RULES[ArgKind.NUMBER].encode(42) == b"42"
    with pytest.raises(ValueError):
        KIND_RULES[ArgKind.NUMBER].encode(-1)
    with pytest.raises(TypeError):
        KIND_RULES[ArgKind.NUMBER].encode(True)
    with pytest.raises(TypeError):
        KIND_RULES[ArgKind.FUNCTION].encode(3.5)
    assert KIND_RULES[ArgKind.FUNCTION].encode("naïve") == "naïve".encode()


def test_encoder_refuses_off_table_packets() -> None:
    from gearspec.codec import Packet, encode

    with pytest.raises(LocalProtocolError, match="reserved"):
        Packet.request(0)
    with pytest.raises(LocalProtocolError, match="43"):
        encode(43)
    with pytest.raises(LocalProtocolError, match="RES magic"):
        Packet.response("SUBMIT_JOB", "f", "u", b"")
    with pytest.raises(LocalProtocolError, match="both ways"):
        Packet.make("WORK_COMPLETE", "H:1", b"")
    with pytest.raises(LocalProtocolError, match="takes 3 arguments"):
        encode("SUBMIT_JOB", "f", "u")
    with pytest.raises(LocalProtocolError, match="NUL"):
        encode("CAN_DO", "a\0b")
    with pytest.raises(LocalProtocolError, match="decimal"):
        encode("CAN_DO_TIMEOUT", "f", "soon")
    with pytest.raises(LocalProtocolError, match="no argument named"):
        encode("CAN_DO", function="f", extra="x")
    with pytest.raises(LocalProtocolError, match="needs argument"):
        encode("SUBMIT_JOB", "f", data=b"")
    assert encode("SUBMIT_JOB", "f", data=b"d", unique="u") == encode("SUBMIT_JOB", "f", "u", b"d")
    assert encode("WORK_FAIL", "H:1", magic=Magic.RES)[:4] == b"\0RES"
