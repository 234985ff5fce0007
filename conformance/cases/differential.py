"""Cases for differences `gearspec diff` found that no other case graded (area `differential`).

Each case here started as a difference between transcripts of `gearspec diff --source model`
(docs/conformance.md, "Differential runs"); docs/findings.md has the source lines.

Sources: gearmand `PROTOCOL` (STATUS_RES: numerator and denominator are numbers);
`libgearman-server/server.cc` `gearman_server_run_command` (GET_STATUS of a known job sends
the job's numerator and denominator, 0 and 0 until a WORK_STATUS).
"""

from __future__ import annotations

from gearspec.conformance.cases._jobs import PERL_CLIENT, PROTOCOL, RUN, start_job, status_of
from gearspec.conformance.harness import Session, describe
from gearspec.conformance.registry import SHOULD, case

from gearspec.codec import Packet
from gearspec.spec import PacketType as T

_EMPTY = "numerator and denominator are empty strings (Perl Gearman::Server, python gear)"
_SOURCE = (
    f"{PROTOCOL} (STATUS_RES); {RUN} (GET_STATUS: the job's numbers, '0' before any WORK_STATUS); "
    f"{PERL_CLIENT} CMD_get_status and gear/__init__.py Server.handleGetStatus (empty fields)"
)


def _zero_numbers(s: Session, numbers: tuple[bytes, ...]) -> None:
    if numbers == (b"", b""):
        s.non_strict("empty")
    s.check_equal(numbers, (b"0", b"0"), "numerator, denominator")


@case(
    "differential/status_numbers/1",
    "STATUS_RES for a queued job reports numerator and denominator 0 (numbers, not empty fields)",
    level=SHOULD,
    packets=["SUBMIT_JOB_BG", "GET_STATUS", "STATUS_RES"],
    source=_SOURCE,
    alternatives={"empty": _EMPTY},
)
def queued_numbers(s: Session) -> None:
    client = s.client()
    handle = client.submit(s.name("fn"), b"", b"", T.SUBMIT_JOB_BG)
    _zero_numbers(s, status_of(s, client, handle)[2:])


@case(
    "differential/status_numbers/2",
    "STATUS_RES for a running job without a WORK_STATUS yet reports numerator and denominator 0",
    level=SHOULD,
    packets=["SUBMIT_JOB", "JOB_ASSIGN", "GET_STATUS", "STATUS_RES"],
    source=_SOURCE,
    alternatives={"empty": _EMPTY},
)
def running_numbers(s: Session) -> None:
    # A unique id of its own: rustygeard coalesces jobs on the empty unique (coalesce/* grades that).
    client, _worker, handle, _job = start_job(s, s.name("fn"), unique=s.name("u"))
    _zero_numbers(s, status_of(s, client, handle)[2:])


@case(
    "differential/cant_do_running/1",
    "CANT_DO for the function of the job the worker is running: is the job still the worker's?",
    level=SHOULD,
    packets=["CAN_DO", "JOB_ASSIGN", "CANT_DO", "WORK_COMPLETE"],
    source=(
        f"{PROTOCOL} (CANT_DO: says nothing of running jobs); gearmand server.cc GEARMAN_COMMAND_CANT_DO -> "
        "worker.cc gearman_server_worker_free (the worker's jobs go back to the queue)"
    ),
)
def cant_do_running(s: Session) -> None:
    """Informational: the protocol leaves it open, and servers differ (gearspec diff, model)."""
    fn = s.name("fn")
    worker = s.worker(fn)
    client = s.client()
    handle = client.submit(fn, b"x", s.name("u"))  # own unique: rustygeard coalesces on the empty one
    job = worker.grab()
    worker.send(T.CANT_DO, fn)
    worker.work(T.WORK_COMPLETE, job.handle, b"done")
    came = [describe(e) for e in worker.sync()]
    got = client.receive()
    if isinstance(got, Packet) and got.type is T.WORK_COMPLETE and got.handle == handle:
        s.info("the job stays with the worker: its WORK_COMPLETE after CANT_DO reaches the client")
    s.info(
        "the job is taken from the worker: after CANT_DO its WORK_COMPLETE gets "
        + (", ".join(came) or "no reply")
        + f" and the client {describe(got)}"
    )
