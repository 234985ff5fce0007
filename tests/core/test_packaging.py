"""The built wheel holds every subpackage under gearspec/ and squats no generic top-level name."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import gearspec

ROOT = Path(gearspec.__file__).resolve().parent.parent
SKIP = shutil.ignore_patterns(".git", ".tox", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis", "reports",
                              ".peers", ".mypy_cache", ".ruff_cache", "*.so")


def _local_backend_builds_wheels() -> bool:
    """pyproject.toml asks for setuptools >= 68; below 70.1 bdist_wheel also needs `wheel`."""
    try:
        major, minor = (int(x) for x in metadata.version("setuptools").split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        return False
    if (major, minor) >= (70, 1):
        return True
    if major < 68:
        return False
    try:
        metadata.version("wheel")
    except metadata.PackageNotFoundError:
        return False
    return True


def test_wheel_contents(tmp_path: Path) -> None:
    # Build from a copy so the working tree (shared with other builds) gets no build/ litter.
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=SKIP)
    out = tmp_path / "wheels"
    # Without a local setuptools that can build wheels, pip fetches one from PyPI (build isolation).
    isolation = ["--no-build-isolation"] if _local_backend_builds_wheels() else []
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", *isolation, "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (wheel,) = out.glob("gearspec-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    dist_info = "-".join(wheel.name.split("-")[:2]) + ".dist-info"
    tops = {n.split("/")[0] for n in names}
    assert tops == {"gearspec", dist_info}, tops
    # The decoder's C hot path is built from source with the wheel (CI has a C compiler).
    assert any(n.startswith("gearspec/_speedups.") and n.endswith(".so") for n in names), names
    for required in (
        "gearspec/py.typed",
        "gearspec/vectors/__init__.py",
        "gearspec/vectors/packets.json",
        "gearspec/reference/__init__.py",
        "gearspec/conformance/__init__.py",
        "gearspec/fuzz/__init__.py",
        "gearspec/spec.py",
        "gearspec/codec.py",
        "gearspec/__main__.py",
        # Data files the installed commands read at run time (gearspec test, interop, roles):
        "gearspec/conformance/report_template.html",
        "gearspec/conformance/impls/gearmand/impl.toml",
        "gearspec/conformance/impls/gearmand/expectations.toml",
        "gearspec/conformance/impls/gearmand/Dockerfile",
        "gearspec/conformance/impls/reference/expectations.toml",
        "gearspec/conformance/impls/gear/gear-log.conf",
        "gearspec/conformance/impls/peers/Dockerfile",
        "gearspec/conformance/servers/__init__.py",
        "gearspec/conformance/drivers/README.md",
        "gearspec/conformance/impls/perl/perl_driver.pl",
        "gearspec/conformance/impls/php/php_driver.php",
        "gearspec/conformance/impls/node/node_driver.js",
        "gearspec/conformance/impls/gear/gear_driver.py",
    ):
        assert required in names, required
    entry_points = zipfile.ZipFile(wheel).read(dist_info + "/entry_points.txt").decode()
    assert "gearspec = gearspec.cli:main" in entry_points
    # Installed (not editable), the registry finds every implementation's folder and files.
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    probe = f"""
import os, gearspec.conformance.impls as impls
registry = impls.load_registry()
assert impls.__file__.startswith({str(site)!r}), impls.__file__
assert {{"gearmand", "perl", "gear", "reference"}} <= set(registry.profiles()), registry.profiles()
assert registry["peers"].dockerfile_path.is_file()
assert os.path.isfile(registry["gear"].local_argv()[-1]), registry["gear"].local_argv()
from gearspec.conformance.drivers import DRIVERS
# Script drivers ship in the wheel; compiled ones (Rust, Java) run from the checkout's .peers.
scripts = [a for d in DRIVERS.values() for a in d.argv if a.endswith((".py", ".js", ".pl", ".php"))]
assert len(scripts) >= 10 and all(os.path.isfile(a) for a in scripts), scripts
print(sorted(registry.fuzz_options()))
"""
    # -S: no site-packages, so the editable install of this checkout cannot answer instead.
    done = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(site)}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "gearmand" in done.stdout
