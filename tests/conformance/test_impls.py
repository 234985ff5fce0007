"""The implementations registry (conformance/impls/NAME/): valid, complete, and strict about mistakes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from gearspec.conformance.drivers import DRIVERS
from gearspec.conformance.harness import Outcome
from gearspec.conformance.impls import IMPLS_DIR, Registry, RegistryError, load_registry
from gearspec.conformance.interop import SCENARIOS, cell_case, known_deviation
from gearspec.conformance.runner import Deviation, Result, Verdict, deviation_outcomes
from gearspec.conformance.servers import RunningServer

REQUIRED_SERVERS = {"gearmand", "perl", "gear", "reference", "abraxas", "rustygeard"}
REQUIRED_CLIENTS = {"gearmand", "perl", "php", "gear", "gearman3", "node", "reference"}


def test_shipped_registry_has_every_required_implementation() -> None:
    registry = load_registry()
    assert REQUIRED_SERVERS <= {i.name for i in registry.with_role("server")}
    assert REQUIRED_CLIENTS <= {i.name for i in registry.with_role("client")}
    assert REQUIRED_CLIENTS <= {i.name for i in registry.with_role("worker")}


def test_every_server_starts_both_ways_and_every_library_has_a_driver() -> None:
    registry = load_registry()
    for impl in registry.with_role("server"):
        assert impl.local, impl.name
        assert impl.image and impl.command and impl.dockerfile_path and impl.dockerfile_path.is_file(), impl.name
        assert any("{port}" in a for a in impl.command), impl.name
        assert impl.version, impl.name
    for impl in registry.with_role("client"):
        assert impl.driver in DRIVERS, f"{impl.name}: driver {impl.driver!r} is not in DRIVERS"
        assert registry.by_image(impl.driver_image or "") is not None, f"{impl.name}: no entry builds {impl.driver_image}"


def test_dockerfiles_start_from_the_base_image_with_few_layers() -> None:
    paths = sorted(IMPLS_DIR.glob("*/Dockerfile"))
    assert len(paths) >= 5
    for path in paths:
        text = path.read_text()
        assert "ARG BASE=gearspec-base:bookworm" in text and "FROM ${BASE}" in text, path
        # The vfs storage driver copies the whole image for every step after FROM (ENV, LABEL
        # and ARG included): keep them few.
        after_from = text.split("FROM ${BASE}", 1)[1]
        steps = re.findall(r"^([A-Z]+)\s", after_from, flags=re.M)
        assert len(steps) <= 3, f"{path}: {steps}"


def test_expected_failures_have_reasons_and_name_real_things() -> None:
    registry = load_registry()
    names = set(registry.impls) | {"*"}
    for row in registry.expected:
        assert len(row.reason) > 20
        for glob in (*row.client, *row.server):
            assert glob in names or any(ch in glob for ch in "*?["), glob
        for glob in row.scenario:
            assert glob in SCENARIOS or glob == "*", glob


def test_version_probe_runs_for_an_installed_server() -> None:
    impl = load_registry()["reference"]
    version = impl.probe_version()
    assert version is not None and version.startswith("gearspec ")


def _load(tmp_path: Path, text: str) -> Registry:
    path = tmp_path / "mine.toml"
    path.write_text(text)
    return load_registry([path])


def test_a_user_adds_an_implementation_with_one_entry(tmp_path: Path) -> None:
    registry = _load(tmp_path, """
[[impl]]
name = "my-server"
roles = ["server"]
local = ["/usr/sbin/gearmand", "--listen={host}", "--port={port}", "--threads=0", "--log-file=stderr"]
""")
    assert "my-server" in registry and "gearmand" in registry
    assert registry["my-server"].local_argv()[0] == "/usr/sbin/gearmand"


def test_user_files_from_the_environment_override_shipped_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "override.toml"
    path.write_text('[[impl]]\nname = "gearmand"\nroles = ["server"]\nlocal = ["gearmand", "--port={port}"]\n')
    monkeypatch.setenv("GEARSPEC_IMPLS", str(path))
    assert load_registry()["gearmand"].local == ("gearmand", "--port={port}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[impl]]\nname = "x"\nroles = ["server"]\nlocal = ["x", "--port={port}"]\ncolour = "red"\n', "unknown field(s) colour"),
        ('[[impl]]\nname = "x"\nroles = ["broker"]\n', "unknown role(s) broker"),
        ('[[impl]]\nname = "x y"\n', "name must be"),
        ('[[impl]]\nname = "x"\nroles = ["server"]\n', "a server needs `local` or `image` and `command`"),
        ('[[impl]]\nname = "x"\nroles = ["server"]\nimage = "i"\ncommand = ["srv", "--port=4730"]\n', "must pass {port}"),
        ('[[impl]]\nname = "x"\nroles = ["client"]\n', "needs `driver`"),
        ('[[impl]]\nname = "x"\nroles = ["server"]\nlocal = "no-such-peer"\n', "not a known server"),
        ('[[expected]]\nclient = "php"\n', "needs a reason"),
        ('[[expected]]\noutcomes = ["teleported"]\nreason = "r"\n', "outcomes: unknown outcome in ['teleported']"),
        ('[[expected]]\noutcomes = ["pass"]\noutcome = ["fail"]\nreason = "r"\n', "has both outcomes and outcome"),
        ('[[server]]\nname = "x"\n', "unknown table(s) server"),
        ("[[impl]\n", "not valid TOML"),
    ],
)
def test_malformed_entries_get_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(RegistryError) as info:
        _load(tmp_path, text)
    assert message in str(info.value)
    assert "mine.toml" in str(info.value)


RACE = """
[[expected]]
server = "reference"
client = "gear"
scenario = "streaming"
reason = "a race, listed by this test"
"""


@pytest.mark.parametrize(
    ("listed", "verdicts"),
    [
        # No outcomes: the suite's default (any outcome but pass), so a pass is unexpected.
        ("", {Outcome.PASS: Verdict.UNEXPECTED_PASS, Outcome.FAIL: Verdict.EXPECTED_FAIL,
              Outcome.NON_STRICT: Verdict.EXPECTED_FAIL}),
        ('outcomes = ["pass", "fail"]\n', {Outcome.PASS: Verdict.PASS, Outcome.FAIL: Verdict.EXPECTED_FAIL,
                                           Outcome.NON_STRICT: Verdict.NON_STRICT}),
        ('outcome = "fail"\n', {Outcome.PASS: Verdict.UNEXPECTED_PASS, Outcome.FAIL: Verdict.EXPECTED_FAIL}),
    ],
)
def test_an_expected_row_is_graded_as_the_suite_grades_a_deviation(
    tmp_path: Path, listed: str, verdicts: dict[Outcome, Verdict]
) -> None:
    registry = _load(tmp_path, RACE + listed)
    case = cell_case("reference", "gear", "gear", "streaming")
    deviation = known_deviation(registry, "reference", "gear", "gear", "streaming")
    assert deviation is not None and deviation.reason == "a race, listed by this test"
    if not listed:
        assert deviation.outcomes == Deviation("x", deviation_outcomes(None), "").outcomes
    for outcome, verdict in verdicts.items():
        assert Result(case, outcome, deviation=deviation).verdict is verdict, outcome
    # The row names this cell only.
    assert known_deviation(registry, "reference", "gear", "gear", "foreground") is None


def test_a_missing_registry_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"cannot read implementations file .*absent.toml"):
        load_registry([tmp_path / "absent.toml"])


def test_a_missing_dockerfile_is_named_when_building(tmp_path: Path) -> None:
    from gearspec.conformance.servers.docker import ImageBuildError, build_image

    registry = _load(tmp_path, '[[impl]]\nname = "x"\nimage = "i"\ndockerfile = "nope.Dockerfile"\n')
    with pytest.raises(ImageBuildError, match=r"cannot build i:latest: its Dockerfile .*nope.Dockerfile does not exist"):
        build_image(registry["x"])


def _twin(root: Path) -> Path:
    """A throwaway implementation folder: the reference server under another name."""
    folder = root / "twin"
    folder.mkdir(parents=True)
    (folder / "impl.toml").write_text(
        'description = "the reference server, renamed"\n'
        'label = "Twin Server 9.9"\n'
        'roles = ["server"]\n'
        'version = ["{python}", "-m", "gearspec", "--version"]\n'
        'local = ["{python}", "-m", "gearspec", "serve", "--host", "{host}", "--port", "{port}", "--queue", "memory"]\n'
        "[fuzz]\n"
        'requeue_position = "head"\n'
        "[[expected]]\n"
        'client = "reference"\n'
        'scenario = "background"\n'
        'reason = "a made-up known failure, to see that the matrix reads this folder\'s rows"\n'
    )
    (folder / "expectations.toml").write_text('[target]\nname = "twin 9.9"\n')
    return folder


def _run(*argv: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=timeout, env=env)


def test_adding_a_server_is_one_folder(tmp_path: Path) -> None:
    """One folder in GEARSPEC_IMPLS, and the server is in --local/--impl/--profile, compat,
    interop and the fuzz profiles, with nothing else edited."""
    _twin(tmp_path / "impls")
    env = {**os.environ, "GEARSPEC_IMPLS": str(tmp_path / "impls"), "DOCKER_HOST": f"unix://{tmp_path}/no.sock"}

    help_text = _run("-m", "gearspec", "test", "--help", env=env).stdout
    assert "twin" in " ".join(help_text.split())
    # --impl: no Docker image in its folder, so it starts as a local process; --profile is its expectations.
    report = tmp_path / "twin.json"
    done = _run("-m", "gearspec", "test", "--impl", "twin", "--profile", "twin", "--select", "echo", "-q",
                "--json", str(report), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "has no Docker image" in done.stderr and json.loads(report.read_text())["run"]["expectations"] == "twin 9.9"
    done = _run("-m", "gearspec", "test", "--local", "twin", "--select", "echo", "-q", env=env)
    assert done.returncode == 0 and "twin (started on 127.0.0.1:" in done.stdout, done.stdout + done.stderr

    table = tmp_path / "compat.md"
    done = _run("-m", "gearspec.conformance.compat", "--servers", "twin", "--output", str(table), env=env)
    assert done.returncode == 0, done.stderr
    assert "| area | Twin Server 9.9 |" in table.read_text() and "| **all cases** | " in table.read_text()

    matrix = tmp_path / "matrix.json"
    done = _run("-m", "gearspec", "interop", "--servers", "twin", "--clients", "reference",
                "--scenarios", "foreground,background", "--json", str(matrix), "-q", env=env)
    # Its own [[expected]] row, which works: an unexpected pass, which fails the run (as in `gearspec test`).
    assert done.returncode == 1, done.stdout + done.stderr
    grades = {r["scenario"]: r["verdict"] for r in json.loads(matrix.read_text())["cases"]}
    assert grades == {"foreground": "pass", "background": "unexpected-pass"}

    probe = "from gearspec.fuzz.model import PROFILES; print(PROFILES['twin'].requeue_position)"
    assert _run("-c", probe, env=env).stdout.strip() == "head"
    assert "twin" in _run("-m", "gearspec", "fuzz", "--help", env=env).stdout


def test_a_folder_with_a_bad_fuzz_option_is_named(tmp_path: Path, reference_server: RunningServer) -> None:
    folder = _twin(tmp_path)
    (folder / "impl.toml").write_text((folder / "impl.toml").read_text().replace("requeue_position", "requeue_place"))
    env = {**os.environ, "GEARSPEC_IMPLS": str(folder)}
    done = _run("-m", "gearspec", "fuzz", "--target", reference_server.address, "--model", "--profile", "twin",
                "--budget", "1s", env=env)
    assert done.returncode == 2 and "unknown fuzz option(s) requeue_place" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_bad_gearspec_impls_is_one_line_in_every_command(tmp_path: Path) -> None:
    env = {**os.environ, "GEARSPEC_IMPLS": str(tmp_path / "absent")}
    for argv in (["test", "--list"], ["interop", "--servers", "reference"], ["test", "--local", "reference"]):
        done = _run("-m", "gearspec", *argv, env=env, timeout=60)
        assert done.returncode == 2, (argv, done.stderr)
        assert f"cannot read implementations file {tmp_path / 'absent'}" in done.stderr, (argv, done.stderr)
        assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, (argv, done.stderr)


def test_compat_servers_are_the_registry_s() -> None:
    done = _run("-m", "gearspec.conformance.compat", "--servers", "gearmand,nosuch", env=dict(os.environ), timeout=60)
    assert done.returncode == 2 and "unknown server(s) nosuch; known: abraxas, gear, gearmand, perl, reference, rustygeard" in done.stderr
