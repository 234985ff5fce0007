"""Run Wireshark's Gearman dissector (tshark) over a capture and return its packets as data.

Test support for the tshark oracle: tshark (Debian package `tshark`) is an independent
implementation of Gearman framing, so where it and gearspec agree on type, length and
fields, both are probably right; where they disagree the tests name which one is wrong.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# tshark field -> gearspec argument name (the data argument maps from three fields).
FIELD_TO_ARG = {
    "gearman.func.name": "function",
    "gearman.uniq_id": "unique",
    "gearman.job.handle": "handle",
    "gearman.numerator": "numerator",
    "gearman.denominator": "denominator",
    "gearman.job.known": "known",
    "gearman.job.running": "running",
    "gearman.client_count": "client_count",
    "gearman.reducer": "reducer",
    "gearman.err.code": "code",
    "gearman.err.text": "text",
    "gearman.opt.name": "option",
    "gearman.client_id": "client_id",
    "gearman.timeout.value": "timeout",
    "gearman.submit_job.epoch_time": "epoch",
    "gearman.submit_job_sched.minute": "minute",
    "gearman.submit_job_sched.hour": "hour",
    "gearman.submit_job_sched.day_of_month": "day_of_month",
    "gearman.submit_job_sched.month": "month",
    "gearman.submit_job_sched.day_of_week": "day_of_week",
    "gearman.func.arg": "data",
    "gearman.func.result": "data",
    "gearman.echo_text": "data",
}


@dataclass
class TsharkPdu:
    """One Gearman PDU as tshark decoded it."""

    frame: int
    admin: str | None = None  # a management command line (gearman.mgr_cmd)
    magic: str | None = None
    type: int | None = None
    size: int | None = None
    fields: dict[str, str] = field(default_factory=dict)  # gearspec argument name -> value
    unknown_command: bool = False  # tshark flagged the type as "Unknown command"


def tshark_path() -> str:
    path = shutil.which("tshark")
    if path is None:
        message = "tshark is not installed (apt-get install tshark)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _leaves(tree: Any, out: dict[str, str]) -> None:
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key == "_ws.expert":
                continue
            if isinstance(value, str) and key in FIELD_TO_ARG:
                out[FIELD_TO_ARG[key]] = value
            else:
                _leaves(value, out)


def run_tshark(capture: Path, ports: tuple[int, ...] = ()) -> list[TsharkPdu]:
    """Every Gearman PDU tshark finds in `capture`, in frame order."""
    argv = [tshark_path(), "-r", str(capture), "-T", "json", "--no-duplicate-keys", "-o", "tcp.desegment_tcp_streams:TRUE"]
    for port in ports:
        argv += ["-d", f"tcp.port=={port},gearman"]
    done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    pdus: list[TsharkPdu] = []
    for packet in json.loads(done.stdout or b"[]"):
        layers = packet["_source"]["layers"]
        frame = int(layers["frame"]["frame.number"])
        gearman = layers.get("gearman")
        if gearman is None:
            continue
        for layer in gearman if isinstance(gearman, list) else [gearman]:
            pdus.extend(_pdus(frame, layer))
    return pdus


def _pdus(frame: int, layer: Any) -> list[TsharkPdu]:
    if not isinstance(layer, dict):
        return [TsharkPdu(frame, admin=str(layer))]  # an undecoded fragment tshark took for text
    if "gearman.mgr_cmd" in layer:
        value = layer["gearman.mgr_cmd"]
        return [TsharkPdu(frame, admin=v) for v in (value if isinstance(value, list) else [value])]
    out: list[TsharkPdu] = []
    for key, body in layer.items():
        if not isinstance(body, dict) or "gearman.pkt_type" not in body:
            if not out and key not in ("gearman.mgr_cmd",):
                out.append(TsharkPdu(frame, admin=key))  # a text line without a command field
            continue
        pdu = TsharkPdu(frame, magic=body["gearman.magic_code"], type=int(body["gearman.pkt_type"]),
                        size=int(body["gearman.data_size"]))
        tree = body.get("gearman.data_content_tree", {})
        pdu.unknown_command = "gearman.pkt_type.unknown" in json.dumps(tree)
        _leaves(tree, pdu.fields)
        out.append(pdu)
    return out
