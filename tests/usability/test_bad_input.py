"""Bad input gets one clear line naming the real cause, before any work is done (issue 15)."""

from __future__ import annotations

from pathlib import Path

from gearspec.conformance.servers import RunningServer

from .helpers import assert_clean_error, gearspec


def test_an_expectations_file_with_a_number_for_a_case_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[deviation]]\ncase = 5\nreason = "r"\n')
    assert_clean_error(gearspec("test", "--expect", str(bad), "-k", "echo/*"), str(bad), "case must be a string")
    bad.write_text('deviation = 3\n')
    assert_clean_error(gearspec("test", "--expect", str(bad), "-k", "echo/*"), "[[deviation]] tables")


def test_model_fuzz_counts_out_of_range_are_refused(reference_server: RunningServer) -> None:
    for flag in ("--examples", "--model-steps"):
        result = gearspec("fuzz", "--target", reference_server.address, "--model", flag, "0", "--budget", "2s")
        assert_clean_error(result, flag, "at least 1")
    result = gearspec("fuzz", "--target", reference_server.address, "--deadline", "0", "--budget", "2s")
    assert_clean_error(result, "--deadline")


def test_report_paths_are_checked_before_the_run(reference_server: RunningServer, tmp_path: Path) -> None:
    # Each of these used to run everything first, then fail (exit 2 or a traceback).
    target = ("--target", reference_server.address)
    assert_clean_error(gearspec("test", *target, "--html", str(tmp_path)), str(tmp_path), "is a folder")
    assert_clean_error(gearspec("test", *target, "--json", "/proc/gearspec.json"), "/proc/gearspec.json")
    missing = tmp_path / "missing" / "f.json"
    assert_clean_error(gearspec("fuzz", *target, "--budget", "30s", "--json", str(missing)), str(missing), "no folder")
    result = gearspec("fuzz", *target, "--model", "--budget", "30s", "--save-script", str(missing))
    assert_clean_error(result, str(missing), "no folder")
    assert result.stdout == ""  # nothing ran


def test_a_report_that_fails_to_write_after_the_run_keeps_the_verdict(reference_server: RunningServer) -> None:
    # /dev/full opens fine and fails on write: the run completes, its report cannot be kept.
    result = gearspec("test", "--target", reference_server.address, "-k", "echo/*", "-q", "--json", "/dev/full")
    assert "Traceback" not in result.stderr
    assert "\nOK: " in result.stdout, result.stdout
    assert result.returncode == 0, result.stderr
    assert "cannot write /dev/full: No space left on device" in result.stderr
