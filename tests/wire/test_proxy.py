"""The validating proxy over real sockets: byte-exact forwarding and violation reports.

Spec violations need a peer that commits them, and no real server does on purpose, so the
violation tests put a scripted misbehaving server (a plain asyncio socket server) behind the
proxy. Clean traffic is checked against gearmand with its own command-line tools.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path

from gearspec.conformance.servers import RunningServer

from gearspec.codec import Packet, encode
from gearspec.wire.dissect import dissect
from gearspec.wire.proxy import ValidatingProxy

from .helpers import gearadmin_status, proxy_process, run_gearman_job

REQ = Packet.request
RES = Packet.response


async def _scripted_exchange(
    to_server: list[bytes], server_replies: list[bytes], **proxy_options: object
) -> tuple[bytes, bytes, ValidatingProxy]:
    """The client sends chunk i, the scripted upstream answers it with reply i, through the
    proxy. Returns (bytes the upstream got, bytes the client got, the closed proxy)."""
    received_upstream = bytearray()
    served = asyncio.Event()
    sent_marks = [sum(map(len, to_server[: i + 1])) for i in range(len(to_server))]
    reply_marks = [sum(map(len, server_replies[: i + 1])) for i in range(len(server_replies))]

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for mark, reply in zip(sent_marks, server_replies, strict=False):
            while len(received_upstream) < mark:
                data = await reader.read(65536)
                assert data, "the proxy closed the upstream connection early"
                received_upstream.extend(data)
            writer.write(reply)
            await writer.drain()
        received_upstream.extend(await reader.read())  # until the client closes
        writer.close()
        served.set()

    server = await asyncio.start_server(upstream, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proxy = ValidatingProxy("127.0.0.1", 0, "127.0.0.1", port, **proxy_options)  # type: ignore[arg-type]
    host, proxy_port = await proxy.start()
    reader, writer = await asyncio.open_connection(host, proxy_port)
    got = bytearray()
    for chunk, mark in zip(to_server, reply_marks, strict=False):
        writer.write(chunk)
        await writer.drain()
        while len(got) < mark:
            data = await asyncio.wait_for(reader.read(65536), 10)
            assert data, "the proxy closed the client connection early"
            got.extend(data)
    writer.write_eof()
    got.extend(await asyncio.wait_for(reader.read(), 10))
    await asyncio.wait_for(served.wait(), 10)
    writer.close()
    async with asyncio.timeout(10):  # the proxy reports the last violations as the connection ends
        while proxy._tasks:
            await asyncio.sleep(0.01)
    await proxy.close()
    server.close()
    await server.wait_closed()
    return bytes(received_upstream), bytes(got), proxy


def test_state_violations_are_reported_with_surrounding_packets(tmp_path: Path) -> None:
    submit = REQ("SUBMIT_JOB", "reverse", "", b"hello").to_bytes()
    bad_worker_packet = REQ("WORK_COMPLETE", "H:never", b"x").to_bytes()
    garbage = b"\0XYZ" + b"\0\0\0\x01\0\0\0\0"  # bad magic: forwarded, flagged, never fixed
    to_server = [submit, bad_worker_packet, garbage]
    replies = [
        RES("JOB_CREATED", "H:1").to_bytes() + RES("WORK_DATA", "H:1", b"he").to_bytes(),
        RES("JOB_CREATED", "H:2").to_bytes()  # nobody submitted a second job
        + RES("WORK_COMPLETE", "H:9", b"?").to_bytes()  # a handle this client never got
        + encode("NOOP"),  # the client never slept
        RES("WORK_COMPLETE", "H:1", b"olleh").to_bytes() + RES("WORK_FAIL", "H:1").to_bytes(),
    ]
    trace = tmp_path / "trace.jsonl"
    pcap = tmp_path / "proxy.pcap"
    upstream_got, client_got, proxy = asyncio.run(
        _scripted_exchange(to_server, replies, trace=str(trace), pcap=str(pcap))
    )
    assert upstream_got == b"".join(to_server)  # forwarded unchanged, garbage included
    assert client_got == b"".join(replies)
    rules = [v.rule for _, v in proxy.violations]
    assert rules == [
        "role-mix",  # a client connection sending a worker packet: a warning
        "work-unassigned-handle",
        "unsolicited-reply",
        "update-unknown-handle",
        "noop-while-awake",
        "wrong-magic",
        "update-after-end",
    ]
    assert [v.severity for _, v in proxy.violations].count("warning") == 1
    unsolicited = proxy.violations[2][1]
    assert [o.event.name for o in unsolicited.before][-2:] == ["WORK_DATA", "WORK_COMPLETE"]  # type: ignore[union-attr]
    assert [o.event.name for o in unsolicited.after] == ["WORK_COMPLETE", "NOOP"]  # type: ignore[union-attr]
    # The trace and the pcap hold the same conversation.
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    assert sum(1 for r in records if "violation" in r) == len(proxy.violations)
    traced = [r["name"] for r in records if "name" in r]
    (stream,) = dissect(pcap, port=stream_port(records, pcap))
    assert [o.event.name for o in stream.events if not isinstance(o.event, bytes)] == traced  # type: ignore[union-attr]
    assert [v.rule for v in stream.violations] == [v.rule for _, v in proxy.violations]


def stream_port(records: list[dict[str, object]], pcap: Path) -> int:
    from gearspec.wire.pcap import read_segments

    first = next(iter(read_segments(pcap)))
    return first.dst[1]


def test_proxy_cli_with_gearmand_reports_nothing_and_writes_trace(gearmand: RunningServer, tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    with proxy_process(gearmand.address, "--trace", str(trace)) as proxy:
        assert run_gearman_job(proxy.host, proxy.port, "reverse", "abc") == "cba"
        assert "reverse" in gearadmin_status(proxy.host, proxy.port)
        output = proxy.stop()
    assert "3 connection(s), 0 violation(s), 0 error(s)" in output
    names = [json.loads(line).get("name") for line in trace.read_text().splitlines()]
    for expected in ("CAN_DO", "SUBMIT_JOB", "JOB_CREATED", "JOB_ASSIGN_UNIQ", "WORK_COMPLETE"):
        assert expected in names


def test_unreachable_upstream_closes_the_peer_and_says_why() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago and nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    with proxy_process(f"127.0.0.1:{dead}") as proxy:
        with socket.create_connection((proxy.host, proxy.port), timeout=10) as peer:
            peer.sendall(encode("ECHO_REQ", b"x"))
            assert peer.recv(100) == b""  # closed, not hung
        output = proxy.stop()
    assert f"cannot reach upstream 127.0.0.1:{dead}" in output


def test_bad_cli_arguments_give_a_clear_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gearspec", "proxy", "--listen", "nowhere:port", "--upstream", "127.0.0.1:4730"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert done.returncode == 2
    assert "'nowhere:port' is not HOST:PORT: port 'port' is not a number" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "gearspec", "dissect", "/nonexistent.pcap"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert done.returncode == 2 and "cannot read" in done.stderr and "Traceback" not in done.stderr


def test_large_packets_pass_through_byte_for_byte(gearmand: RunningServer) -> None:
    payload = bytes(range(256)) * 16384  # 4 MiB, every byte value, more than the proxy buffers
    request = encode("ECHO_REQ", payload)
    with proxy_process(gearmand.address) as proxy:
        with socket.create_connection((proxy.host, proxy.port), timeout=30) as peer:
            peer.sendall(request)
            expected = encode("ECHO_RES", payload)
            got = bytearray()
            while len(got) < len(expected):
                chunk = peer.recv(1 << 20)
                assert chunk, "connection closed early"
                got.extend(chunk)
        output = proxy.stop()
    assert bytes(got) == expected
    assert "0 violation(s)" in output
