"""The case registry checks itself: coverage of the spec tables, IDs, metadata, expectations."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from gearspec.conformance.registry import Level, all_cases, case, get_case, select_cases, uncovered
from gearspec.conformance.runner import builtin_profiles, load_expectations

from gearspec.admin import ADMIN_COMMANDS
from gearspec.spec import PACKETS

CASES = all_cases()


def test_every_packet_type_and_admin_command_is_exercised() -> None:
    packets, admin = uncovered(CASES)
    assert packets == [], f"packet types no case exercises: {packets}"
    assert admin == [], f"admin commands no case exercises: {admin}"


def test_uncovered_notices_a_missing_row() -> None:
    # The coverage check itself can fail: drop every case that touches ECHO_REQ.
    without_echo = [c for c in CASES if "ECHO_REQ" not in {p.name for p in c.packets}]
    packets, _ = uncovered(without_echo)
    assert "ECHO_REQ" in packets
    assert {row.name for row in PACKETS if row.reserved}.isdisjoint(packets)
    _, admin = uncovered([c for c in CASES if "getpid" not in c.admin])
    assert admin == ["getpid"]
    assert len(ADMIN_COMMANDS) > 10


def test_at_least_150_cases() -> None:
    assert len(CASES) >= 150, f"only {len(CASES)} cases"


def test_ids_are_hierarchical_unique_and_sorted() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    for cid in ids:
        assert re.fullmatch(r"[a-z0-9_]+(/[a-z0-9_]+)+/[0-9]+", cid), cid
    assert ids == [c.id for c in sorted(CASES, key=lambda c: c.sort_key)]


def test_every_case_states_requirement_level_and_source() -> None:
    for c in CASES:
        assert c.requirement and "\n" not in c.requirement, c.id
        assert isinstance(c.level, Level), c.id
        assert len(c.source) > 5, c.id
        assert c.packets or c.admin, f"{c.id} exercises no spec row"


def test_a_duplicate_id_is_refused() -> None:
    with pytest.raises(ValueError, match="registered twice"):

        @case("framing/magic/1", "a clash", source="test")
        def clash(s: object) -> None:  # pragma: no cover - never runs
            pass


def test_bad_ids_and_rows_are_refused() -> None:
    with pytest.raises(ValueError, match="area/topic/N"):
        case("Framing/x", "r", source="s")
    with pytest.raises(KeyError):
        case("framing/x/1", "r", packets=["NO_SUCH_PACKET"], source="s")
    with pytest.raises(KeyError):
        case("framing/x/1", "r", admin=["no such command"], source="s")


def test_select_and_exclude_globs() -> None:
    framing = select_cases(CASES, ["framing"])
    assert framing and all(c.area == "framing" for c in framing)
    magic = select_cases(CASES, ["framing/magic/*"])
    assert [c.id for c in magic][:2] == ["framing/magic/1", "framing/magic/2"]
    assert select_cases(CASES, ["framing/magic/1"]) == [get_case("framing/magic/1")]
    rest = select_cases(CASES, [], ["framing", "admin/*"])
    assert rest and not any(c.area in ("framing", "admin") for c in rest)
    assert select_cases(CASES, ["nothing/matches/this"]) == []


@pytest.mark.parametrize("profile", sorted(builtin_profiles()))
def test_expectation_files_load_and_name_real_cases(profile: str) -> None:
    expectations = load_expectations(builtin_profiles()[profile])
    ids = [c.id for c in CASES]
    for deviation in expectations.deviations:
        assert any(deviation.matches(i) for i in ids), f"{profile}: {deviation.case} matches no case"
        assert len(deviation.reason) > 10, f"{profile}: {deviation.case} needs a reason"


def test_builtin_profiles_cover_the_four_servers() -> None:
    assert {"reference", "gearmand", "perl", "gear", "abraxas", "rustygeard"} <= set(builtin_profiles())


def test_case_modules_never_sleep() -> None:
    # Cases wait for events with deadlines; a sleep would make them slow and flaky.
    import gearspec.conformance.cases as package

    folder = Path(package.__file__).parent
    offenders = [
        f"{path.name}:{number}"
        for path in sorted(folder.glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(r"\b(time|asyncio)\.sleep\(|^\s*from time import .*\bsleep\b", line)
    ]
    assert offenders == []
