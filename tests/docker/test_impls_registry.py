"""The implementations registry (conformance/impls.toml): valid, complete, and strict about mistakes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from gearspec.conformance.drivers import DRIVERS
from gearspec.conformance.impls import DOCKERFILES, Registry, RegistryError, load_registry
from gearspec.conformance.interop import SCENARIOS

REQUIRED_SERVERS = {"gearmand", "perl", "gear", "reference"}
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
    for path in sorted(DOCKERFILES.glob("*.Dockerfile")):
        text = path.read_text()
        assert "ARG BASE=gearspec-base:bookworm" in text and "FROM ${BASE}" in text, path.name
        # The vfs storage driver copies the whole image for every step after FROM (ENV, LABEL
        # and ARG included): keep them few.
        after_from = text.split("FROM ${BASE}", 1)[1]
        steps = re.findall(r"^([A-Z]+)\s", after_from, flags=re.M)
        assert len(steps) <= 3, f"{path.name}: {steps}"


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
        ('[[server]]\nname = "x"\n', "unknown table(s) server"),
        ("[[impl]\n", "not valid TOML"),
    ],
)
def test_malformed_entries_get_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(RegistryError) as info:
        _load(tmp_path, text)
    assert message in str(info.value)
    assert "mine.toml" in str(info.value)


def test_a_missing_registry_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"cannot read implementations file .*absent.toml"):
        load_registry([tmp_path / "absent.toml"])


def test_a_missing_dockerfile_is_named_when_building(tmp_path: Path) -> None:
    from gearspec.conformance.docker import ImageBuildError, build_image

    registry = _load(tmp_path, '[[impl]]\nname = "x"\nimage = "i"\ndockerfile = "nope.Dockerfile"\n')
    with pytest.raises(ImageBuildError, match=r"cannot build i:latest: its Dockerfile .*nope.Dockerfile does not exist"):
        build_image(registry["x"])
