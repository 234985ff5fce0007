"""JUnit and HTML reports say what the terminal says (issue 15 item 5)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from gearspec.conformance.servers import RunningServer

from .helpers import gearspec

xmlschema = pytest.importorskip("xmlschema")  # installed by `pip install -e .[dev]`
SCHEMA = Path(__file__).with_name("junit.xsd")


def _reports(target: RunningServer, tmp_path: Path, *args: str) -> tuple[int, str, dict, ET.Element, str]:
    json_path, junit_path, html_path = tmp_path / "r.json", tmp_path / "r.xml", tmp_path / "r.html"
    result = gearspec(
        "test", "--target", target.address, "-q", *args,
        "--json", str(json_path), "--junit", str(junit_path), "--html", str(html_path),
    )
    assert "Traceback" not in result.stderr, result.stderr
    xmlschema.XMLSchema(str(SCHEMA)).validate(str(junit_path))  # raises with the reason
    return result.returncode, result.stdout, json.loads(json_path.read_text()), ET.parse(junit_path).getroot(), html_path.read_text()


def _check_junit_matches(data: dict, root: ET.Element) -> None:
    by_id = {c["id"]: c for c in data["cases"]}
    seen = {"failures": 0, "errors": 0, "skipped": 0}
    for tc in root.iter("testcase"):
        case = by_id[tc.get("name", "").split(" ")[0]]
        outcome = [child.tag for child in tc if child.tag in ("failure", "error", "skipped")]
        if case["counts_against"]:
            assert outcome in (["failure"], ["error"]), (case["id"], outcome)
            seen["errors" if outcome == ["error"] else "failures"] += 1
        elif case["verdict"] in ("fail", "error", "expected-fail", "unsupported", "non-strict") or case["message"].startswith("not run"):
            assert outcome == ["skipped"], (case["id"], case["verdict"], outcome)
            reason = tc.find("skipped").get("message", "")  # type: ignore[union-attr]
            assert case["verdict"] in reason or "not run" in reason, reason
            seen["skipped"] += 1
        else:
            assert outcome == [], (case["id"], case["verdict"], outcome)
    assert int(root.get("tests", -1)) == len(data["cases"])
    for key, count in seen.items():
        assert int(root.get(key, -1)) == count, (key, root.attrib)
    assert (seen["failures"] + seen["errors"] > 0) == data["failed"]


def test_junit_of_a_passing_run_with_tolerated_results(gearmand: RunningServer, tmp_path: Path) -> None:
    # With its profile gearmand passes, but with SHOULD failures, known deviations and
    # destructive cases not run: none of them may look like a plain pass to a dashboard.
    code, stdout, data, root, page = _reports(gearmand, tmp_path, "--profile", "gearmand")
    assert code == 0 and "\nOK: " in stdout, stdout
    _check_junit_matches(data, root)
    assert int(root.get("skipped", 0)) > 0 and root.get("failures") == "0"
    verdicts = {c["verdict"] for c in data["cases"]}
    assert "expected-fail" in verdicts
    # The HTML header does not say a bare "OK" next to areas graded below A.
    grades = re.findall(r'<td class="grade">([A-F])</td>', page)
    headline = re.search(r"<p><b>(.*?)</b>", page).group(1)  # type: ignore[union-attr]
    assert any(g != "A" for g in grades), grades  # gearmand 1.1.20's known deviations
    assert headline != "OK" and "not fully conformant" in headline, headline


def test_junit_of_a_failing_run(gearmand: RunningServer, tmp_path: Path) -> None:
    code, stdout, data, root, _ = _reports(gearmand, tmp_path, "-k", "admin/*")
    assert code == 1 and "\nFAILED: " in stdout
    _check_junit_matches(data, root)
    assert int(root.get("failures", 0)) >= 1
