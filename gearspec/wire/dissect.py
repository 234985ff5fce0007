"""Decode the Gearman conversations in a capture file and flag every spec violation.

    reports = dissect("capture.pcap", port=4730)
    for stream in reports:
        print(stream.label, len(stream.events), [v.rule for v in stream.violations])

Each TCP connection to or from the job server's port becomes one `StreamReport`: the
decoded events of both directions in capture order (time, direction, packet or admin line)
and the violations `gearspec.wire.checker.ConnectionChecker` found.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from gearspec.spec import DEFAULT_PORT
from gearspec.wire.checker import ConnectionChecker, Observed, Violation, describe_event
from gearspec.wire.pcap import TO_SERVER, TcpStream, read_segments, reassemble

__all__ = ["StreamReport", "dissect", "format_text", "reports_as_data"]


@dataclass
class StreamReport:
    """One TCP connection: who talked, what was said, what was wrong."""

    index: int
    client: tuple[str, int]
    server: tuple[str, int]
    events: list[Observed] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    gaps: dict[str, int] = field(default_factory=dict)
    role: str | None = None

    @property
    def label(self) -> str:
        return f"{self.client[0]}:{self.client[1]} -> {self.server[0]}:{self.server[1]}"

    def as_data(self) -> dict[str, Any]:
        return {
            "stream": self.index,
            "client": f"{self.client[0]}:{self.client[1]}",
            "server": f"{self.server[0]}:{self.server[1]}",
            "role": self.role,
            "events": [o.as_data() for o in self.events],
            "violations": [v.as_data() for v in self.violations],
            "missing_bytes": self.gaps,
        }


def dissect(source: str | Path | BinaryIO, port: int = DEFAULT_PORT) -> list[StreamReport]:
    """Every Gearman connection in the capture, decoded and checked."""
    checkers: dict[int, ConnectionChecker] = {}
    reports: dict[int, StreamReport] = {}
    streams: dict[int, TcpStream] = {}
    for stream, chunk in reassemble(read_segments(source), port):
        report = reports.get(stream.index)
        if report is None:
            report = reports[stream.index] = StreamReport(stream.index, stream.client, stream.server)
            checkers[stream.index] = ConnectionChecker()
            streams[stream.index] = stream
        report.events.extend(checkers[stream.index].feed(chunk.direction, chunk.data, chunk.time))
    for index, checker in checkers.items():
        checker.close()
        report = reports[index]
        report.violations = list(checker.violations)
        report.gaps = {d: n for d, n in streams[index].gaps.items() if n}
        report.role = checker.role.name.lower() if checker.role is not None and checker.role.name else None
    return [reports[i] for i in sorted(reports)]


def _clock(time: float) -> str:
    micros = round(time * 1e6)
    stamp = datetime.datetime.fromtimestamp(micros // 1_000_000, tz=datetime.UTC)
    return f"{stamp:%H:%M:%S}.{micros % 1_000_000:06d}"


def format_text(reports: list[StreamReport]) -> str:
    """The conversations as readable text, violations inline after the packet they concern."""
    lines: list[str] = []
    total = 0
    for report in reports:
        role = f" ({report.role})" if report.role else ""
        lines.append(f"== stream {report.index}: {report.label}{role}")
        by_packet: dict[int, list[Violation]] = {}
        loose: list[Violation] = []
        for violation in report.violations:
            if violation.packet is None:
                loose.append(violation)
            else:
                by_packet.setdefault(violation.packet.number, []).append(violation)
        for obs in report.events:
            arrow = "->" if obs.direction == TO_SERVER else "<-"
            lines.append(f"{_clock(obs.time)}  {arrow} {describe_event(obs.event)}")
            for violation in by_packet.get(obs.number, []):
                lines.append(f"    !! {violation.severity} [{violation.rule}] {violation.message}")
        for violation in loose:
            lines.append(f"    !! {violation.severity} [{violation.rule}] {violation.message}")
        for direction, missing in report.gaps.items():
            lines.append(f"    !! capture is missing {missing} bytes ({direction})")
        total += len(report.violations)
        lines.append("")
    lines.append(f"{len(reports)} stream(s), {sum(len(r.events) for r in reports)} event(s), {total} violation(s)")
    return "\n".join(lines)


def reports_as_data(reports: list[StreamReport]) -> dict[str, Any]:
    """JSON-ready data for `--json`."""
    return {
        "streams": [r.as_data() for r in reports],
        "violations": sum(len(r.violations) for r in reports),
    }
