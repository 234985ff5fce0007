"""`gearspec dissect`: conversations and the violations the checker flags, from pcap files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from gearspec.codec import Packet, encode
from gearspec.wire.dissect import dissect
from gearspec.wire.pcap import FROM_SERVER, TO_SERVER, PcapWriter, TcpConversation

REQ, RES = Packet.request, Packet.response


def _capture(path: Path, exchanges: list[tuple[str, bytes]], port: int = 4730, retransmit: bool = False) -> None:
    with PcapWriter(path) as writer:
        conversation = TcpConversation(writer, ("192.0.2.1", 50000), ("192.0.2.2", port))
        for direction, data in exchanges:
            conversation.send(direction, data, segment_size=7)  # every packet split over segments
            if retransmit:
                conversation.retransmit(direction, data[-3:])
        conversation.close()


def _rules(path: Path, port: int = 4730) -> list[tuple[str, str]]:
    (stream,) = dissect(path, port=port)
    return [(v.rule, v.packet.event.name if v.packet else "") for v in stream.violations]  # type: ignore[union-attr]


def test_a_clean_worker_conversation_has_no_violation(tmp_path: Path) -> None:
    path = tmp_path / "worker.pcap"
    _capture(path, [
        (TO_SERVER, encode("CAN_DO", "reverse") + encode("GRAB_JOB_UNIQ")),
        (FROM_SERVER, encode("NO_JOB")),
        (TO_SERVER, encode("PRE_SLEEP")),
        (FROM_SERVER, encode("NOOP")),
        (TO_SERVER, encode("GRAB_JOB_UNIQ")),
        (FROM_SERVER, encode("JOB_ASSIGN_UNIQ", "H:1", "reverse", "u", b"abc")),
        (TO_SERVER, REQ("WORK_STATUS", "H:1", 1, 2).to_bytes() + REQ("WORK_COMPLETE", "H:1", b"cba").to_bytes()),
    ], retransmit=True)
    (stream,) = dissect(path)
    assert [o.event.name for o in stream.events] == [  # type: ignore[union-attr]
        "CAN_DO", "GRAB_JOB_UNIQ", "NO_JOB", "PRE_SLEEP", "NOOP", "GRAB_JOB_UNIQ", "JOB_ASSIGN_UNIQ",
        "WORK_STATUS", "WORK_COMPLETE",
    ]
    assert stream.violations == [] and stream.role == "worker"


def test_the_issue_s_violations_are_flagged(tmp_path: Path) -> None:
    path = tmp_path / "bad.pcap"
    _capture(path, [
        (TO_SERVER, encode("SUBMIT_JOB", "f", "", b"x")),
        (FROM_SERVER, encode("ECHO_REQ", b"x")),  # REQ magic from the server: wrong magic for the direction
        (TO_SERVER, b"\0REQ\0\0\0\x07\0\0\0\x03f\0u"),  # SUBMIT_JOB with two arguments
        (TO_SERVER, b"\0REQ\0\0\0\x08\0\0\0\x03H:1"),  # JOB_CREATED is the server's: the sender may not send it
        (FROM_SERVER, encode("JOB_CREATED", "H:1") + encode("JOB_CREATED", "H:2")),  # the second: nobody asked
        (FROM_SERVER, encode("STATUS_RES", "H:1", 1, 0, 0, 0)),  # no GET_STATUS
        (FROM_SERVER, RES("WORK_COMPLETE", "H:9", b"?").to_bytes()),  # a handle this client never got
        (TO_SERVER, REQ("WORK_FAIL", "H:1").to_bytes()),  # a client acting as a worker, for an unassigned handle
    ])
    assert _rules(path) == [
        ("wrong-magic", "ECHO_REQ"),
        ("malformed", "SUBMIT_JOB"),
        ("role", "JOB_CREATED"),
        ("unsolicited-reply", "JOB_CREATED"),
        ("unsolicited-reply", "STATUS_RES"),
        ("update-unknown-handle", "WORK_COMPLETE"),
        ("role-mix", "WORK_FAIL"),
        ("work-unassigned-handle", "WORK_FAIL"),
    ]


def test_cli_text_json_and_strict_exit_status(tmp_path: Path) -> None:
    path = tmp_path / "noop.pcap"
    _capture(path, [(TO_SERVER, encode("CAN_DO", "f")), (FROM_SERVER, encode("NOOP"))], port=7003)
    run = [sys.executable, "-m", "gearspec", "dissect", str(path), "--port", "7003"]
    text = subprocess.run(run, capture_output=True, text=True, timeout=60, check=False)
    assert text.returncode == 0
    assert "-> REQ CAN_DO function='f'" in text.stdout and "[noop-while-awake]" in text.stdout
    data = json.loads(subprocess.run([*run, "--json"], capture_output=True, text=True, timeout=60, check=True).stdout)
    (stream,) = data["streams"]
    assert stream["server"] == "192.0.2.2:7003"
    assert [e["name"] for e in stream["events"]] == ["CAN_DO", "NOOP"]
    assert stream["violations"][0]["rule"] == "noop-while-awake"
    assert stream["violations"][0]["before"][0]["name"] == "CAN_DO"
    strict = subprocess.run([*run, "--strict"], capture_output=True, text=True, timeout=60, check=False)
    assert strict.returncode == 1
    wrong_port = subprocess.run([*run[:-1], "4730"], capture_output=True, text=True, timeout=60, check=False)
    assert wrong_port.returncode == 0 and "no TCP traffic on port 4730" in wrong_port.stderr


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "not.pcap"
    path.write_bytes(b"this is not a capture file")
    done = subprocess.run([sys.executable, "-m", "gearspec", "dissect", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "not a pcap or pcapng file" in done.stderr and "Traceback" not in done.stderr
    truncated = tmp_path / "cut.pcap"
    _capture(truncated, [(TO_SERVER, encode("CAN_DO", "f"))])
    truncated.write_bytes(truncated.read_bytes()[:-10])
    done = subprocess.run([sys.executable, "-m", "gearspec", "dissect", str(truncated)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "file ends inside" in done.stderr


def test_out_of_order_duplicate_and_missing_segments(tmp_path: Path) -> None:
    # Segments written by hand: the second half before the first, a duplicate, then a
    # packet after a hole the capture lost.
    from gearspec.wire.pcap import PcapWriter as Writer

    client, server = ("192.0.2.1", 50001), ("192.0.2.2", 4730)
    first, second = encode("ECHO_REQ", b"one"), encode("ECHO_REQ", b"two")
    blob = first + second
    path = tmp_path / "reorder.pcap"
    with Writer(path) as writer:
        writer.write_tcp(1.0, client, server, 99, 0, 0x02)  # SYN: data starts at 100
        writer.write_tcp(1.1, client, server, 100 + 10, 0, 0x18, blob[10:])
        writer.write_tcp(1.2, client, server, 100, 0, 0x18, blob[:10])
        writer.write_tcp(1.3, client, server, 100, 0, 0x18, blob[:10])  # retransmitted
        third = encode("ECHO_REQ", b"three")
        writer.write_tcp(1.4, client, server, 100 + len(blob) + 5, 0, 0x18, third)  # 5 bytes never captured
    (stream,) = dissect(path)
    names = [o.event.name for o in stream.events]  # type: ignore[union-attr]
    assert names[:2] == ["ECHO_REQ", "ECHO_REQ"]
    assert [bytes(o.event) for o in stream.events[:2]] == [first, second]
    assert stream.gaps == {"to_server": 5}
    assert bytes(stream.events[-1].event).endswith(third)  # decoding resumes after the hole
