"""The driver registry is consistent: scripts exist, limitations name known features, the
README documents every driver, and unavailable drivers say why."""

from __future__ import annotations

from pathlib import Path

import pytest
from gearspec.conformance.drivers import DRIVER_DIR, DRIVERS, FEATURES, PEERS
from gearspec.conformance.impls import IMPLS_DIR


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_driver_entry_is_consistent(name: str) -> None:
    driver = DRIVERS[name]
    assert driver.name == name and driver.roles <= {"client", "worker"} and driver.roles
    scripts = [a for a in driver.argv if a.endswith((".pl", ".php", ".js", ".py"))]
    # A compiled driver (Rust, Java) runs from what scripts/install-peers.sh built into .peers;
    # its sources are a project in its implementation's folder.
    assert scripts or str(PEERS) in " ".join(driver.argv), driver.argv
    for script in scripts:
        # Each driver lives in an implementation's folder, beside the impl.toml that describes it.
        assert Path(script).is_file() and Path(script).resolve().parent.parent == IMPLS_DIR, script
    for feature in driver.all_limitations():
        assert feature in FEATURES or feature in ("client", "worker"), feature
    role = sorted(driver.roles)[0]
    assert driver.command(role, "--x")[-2:] == [role, "--x"]
    with pytest.raises(KeyError):
        driver.limitation("client.teleport")
    why = driver.unavailable()
    assert why is None or why.strip()
    if why is None:
        assert driver.version(), f"{name} is available but its version cannot be found"


def test_readme_documents_every_driver_and_exit_code() -> None:
    readme = (DRIVER_DIR / "README.md").read_text()
    for name in DRIVERS:
        assert f"`{name}`" in readme, name
    for code in range(7):
        assert f"| {code} |" in readme, code
