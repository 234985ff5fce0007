"""Fixtures for the Docker launcher's tests.

Tests marked `docker` need a running engine. scripts/docker-ci.sh starts one and sets
GEARSPEC_DOCKER_TESTS=1: then a missing engine or image fails the test. Elsewhere (no engine
by default on CI machines) they are skipped with a message naming what is missing and how to
run them, so the skip is visible and never a silent pass.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gearspec.conformance.impls import Registry, load_registry
from gearspec.conformance.servers import docker as launcher


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "docker: needs a running Docker engine (scripts/docker-ci.sh runs these)")


def _missing(message: str) -> None:
    if os.environ.get("GEARSPEC_DOCKER_TESTS"):
        pytest.fail(message)
    pytest.skip(f"{message} — run scripts/docker-ci.sh to run the Docker tests")


@pytest.fixture(scope="session")
def registry() -> Registry:
    return load_registry()


@pytest.fixture(scope="session")
def engine() -> Iterator[Any]:
    """A connected Docker client (the engine DOCKER_HOST names)."""
    try:
        client = launcher.connect()
    except launcher.DockerUnavailable as exc:
        _missing(str(exc))
    yield client
    client.close()


@pytest.fixture(scope="session")
def image(engine: Any, registry: Registry) -> Callable[[str], str]:
    """`image("gearmand")`: the image ref, built if missing (fails under docker-ci.sh if it cannot be)."""

    def get(name: str) -> str:
        try:
            return launcher.ensure_image(registry[name], engine)
        except launcher.ImageBuildError as exc:
            _missing(str(exc))
            raise

    return get


@pytest.fixture
def gearspec_containers(engine: Any) -> Callable[[], list[str]]:
    """`gearspec_containers()`: names of the containers carrying gearspec's label now."""
    return lambda: [c.name for c in engine.containers.list(all=True, filters={"label": f"{launcher.LABEL}=1"})]
