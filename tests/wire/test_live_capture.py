"""Live gearmand traffic, captured two ways, dissected by gearspec and by tshark.

1. dumpcap on the loopback interface while gearmand's `gearman` worker and client run a
   job and `gearadmin` asks for status (a real kernel capture, pcapng).
2. The same traffic through `gearspec proxy --pcap` (the proxy's synthetic TCP streams).

Both captures must decode to the same packets in gearspec and tshark, and gearspec must
flag no violation: gearmand and libgearman follow the protocol in this exchange.
"""

from __future__ import annotations

from pathlib import Path

from gearspec.conformance.servers import RunningServer

from gearspec.codec import AdminLine, Packet
from gearspec.wire.dissect import StreamReport, dissect

from .helpers import dumpcap, gearadmin_status, proxy_process, run_gearman_job
from .test_tshark_oracle import compare
from .tshark import run_tshark


def _agree_with_tshark(path: Path, port: int, reports: list[StreamReport]) -> None:
    ours = [o.event for r in sorted(reports, key=lambda r: r.events[0].time if r.events else 0) for o in r.events]
    theirs = run_tshark(path, ports=(port,))
    our_packets = [e for e in ours if isinstance(e, Packet)]
    their_packets = [t for t in theirs if t.type is not None]
    assert len(our_packets) == len(their_packets)
    # Streams interleave in time; match each stream's packets in order.
    remaining = list(their_packets)
    problems = []
    for packet in our_packets:
        index = next(i for i, t in enumerate(remaining) if t.type == int(packet.type) and t.magic == packet.magic.name)
        problems += compare(packet, remaining.pop(index))
    assert problems == []
    commands = [e.text.decode() for e in ours if isinstance(e, AdminLine) and e.text == b"status"]
    assert commands == [t.admin for t in theirs if t.admin == "status"]


def _names(reports: list[StreamReport]) -> set[str]:
    return {o.event.type.name for r in reports for o in r.events if isinstance(o.event, Packet)}


def test_dumpcap_capture_of_gearmand_traffic(gearmand: RunningServer, tmp_path: Path) -> None:
    capture = tmp_path / "live.pcapng"
    with dumpcap(gearmand.port, capture):
        assert run_gearman_job(gearmand.host, gearmand.port, "reverse", "hello") == "olleh"
        assert "reverse" in gearadmin_status(gearmand.host, gearmand.port)
    reports = [r for r in dissect(capture, port=gearmand.port) if r.events]  # dumpcap probes are empty
    assert {"CAN_DO", "SUBMIT_JOB", "JOB_CREATED", "WORK_COMPLETE"} <= _names(reports)
    assert [v.describe() for r in reports for v in r.violations] == []
    _agree_with_tshark(capture, gearmand.port, reports)


def test_proxy_pcap_of_gearmand_traffic(gearmand: RunningServer, tmp_path: Path) -> None:
    capture = tmp_path / "proxy.pcap"
    with proxy_process(gearmand.address, "--pcap", str(capture)) as proxy:
        assert run_gearman_job(proxy.host, proxy.port, "reverse", "hello") == "olleh"
        assert "reverse" in gearadmin_status(proxy.host, proxy.port)
        output = proxy.stop()
    assert "0 violation(s)" in output, output
    reports = [r for r in dissect(capture, port=gearmand.port) if r.events]  # dumpcap probes are empty
    assert len(reports) == 3  # worker, client, admin
    assert {"CAN_DO", "SUBMIT_JOB", "JOB_CREATED", "WORK_COMPLETE"} <= _names(reports)
    assert [v.describe() for r in reports for v in r.violations] == []
    _agree_with_tshark(capture, gearmand.port, reports)
