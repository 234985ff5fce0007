"""A stateful model of a Gearman job server, checked against a live target.

`JobServerModel` is one Hypothesis `RuleBasedStateMachine`. Its rules are what clients and
workers do (submit in every variant, coalesce on unique ids, grab in every variant, sleep and
wake, report work, ask for status, set options, disconnect); the model predicts every packet
the server must send and checks it over real sockets (`gearspec.fuzz.script.Session`). When
the server disagrees, Hypothesis shrinks the run to a minimal sequence and the error carries a
replay script for `gearspec fuzz --replay FILE --target HOST:PORT`.

The semantics are gearmand's (see the citations below); places
where servers legitimately differ are `ModelOptions`, with profiles per known server.

    from gearspec.fuzz.model import check_target
    check_target("127.0.0.1", 4730, max_examples=50)   # raises with a replay script on a bug
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass, field, fields

from gearspec.fuzz.script import ANY, Expect, Mismatch, Session, TargetDown, Var, fresh_prefix
from gearspec.reference.cleanup import drain
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule, run_state_machine_as_test

from gearspec.codec import Packet
from gearspec.spec import DEFAULT_PORT, packet_spec

__all__ = ["PROFILES", "JobServerModel", "ModelFailure", "ModelOptions", "ModelStats", "check_target", "model_for"]

_SUBMITS = tuple(
    packet_spec(n).name
    for n in ("SUBMIT_JOB", "SUBMIT_JOB_BG", "SUBMIT_JOB_HIGH", "SUBMIT_JOB_HIGH_BG", "SUBMIT_JOB_LOW", "SUBMIT_JOB_LOW_BG")
)
_GRABS = ("GRAB_JOB", "GRAB_JOB_UNIQ", "GRAB_JOB_ALL")
_WORK = ("WORK_DATA", "WORK_WARNING", "WORK_STATUS", "WORK_COMPLETE", "WORK_FAIL", "WORK_EXCEPTION")


@dataclass(frozen=True)
class ModelOptions:
    """Where servers may differ; the defaults are gearmand 1.1's behaviour.

    - `grabs`: the GRAB_* variants the server serves (Perl: GRAB_JOB only; gear: GRAB_JOB_UNIQ).
    - `submits`, `work_packets`: the SUBMIT_* and WORK_* packets it serves (Perl
      Gearman::Server 1.12 has no LOW, HIGH_BG, WORK_DATA or WORK_WARNING: Client.pm CMD_*).
    - `exception_without_option`: what a client that did not send OPTION_REQ "exceptions"
      gets for a WORK_EXCEPTION: "fail" (gearmand, server.cc `_server_queue_work_data`),
      "exception" (forwarded as is) or "nothing".
    - `worker_disconnect`: "requeue" (gearmand 1.1.20 with default --job-retries, job.cc
      `gearman_server_job_queue`, at the tail of its priority) or "fail" (WORK_FAIL to clients).
    - `unknown_handle_error`: the ERROR code for work packets on a handle the worker does not
      hold: JOB_NOT_FOUND (gearmand server.cc `gearman_server_run_command`), "*" for any
      code (Perl sends `not_worker`), None when not checked.
    - `grab_all_plain`: the answer to GRAB_JOB_ALL for a job without a reducer:
      "uniq" (JOB_ASSIGN_UNIQ, gearmand server.cc GEARMAN_COMMAND_GRAB_JOB_ALL), "all"
      (JOB_ASSIGN_ALL with an empty reducer) or "either".
    - `cant_do_running`: what CANT_DO does to a job the worker is running for that function:
      "keep" (nothing) or "requeue" (gearmand: the worker's registration is freed with its
      jobs, worker.cc `gearman_server_worker_free` via server.cc GEARMAN_COMMAND_CANT_DO).
    - `orphaned_background_dropped`: a job that a background submit created or joined is
      dropped anyway when its last foreground submitter disconnects (gearmand: client.cc
      `gearman_server_client_free` sets ignore_job once the job has no clients left).
    - `noop_rearm`: what lets a sleeping worker get another NOOP: "pre_sleep" (every PRE_SLEEP
      starts a new sleep cycle) or "grab" (gearmand: only a GRAB_* clears is_noop_sent,
      server.cc GEARMAN_COMMAND_GRAB_JOB; a worker that sleeps again without grabbing is not
      woken again).
    - `requeue_position`: where a job goes back in its priority level when its worker leaves
      (or CANT_DOs): "tail" (gearmand), "head" (the reference server) or "either".
    - `duplicate_listener`: a client that submitted the same job twice (coalesced) gets each
      WORK_* once "per_submit" (gearmand keeps one client entry per submit, job.cc), once
      "per_connection", or "either".
    - `empty_numbers`: read empty number fields (Perl's STATUS_RES) as 0.
    - `trailing_nul`: tolerate a NUL after a packet's last argument (gearmand 1.1.20 sends
      WORK_FAIL that way when it stands in for WORK_EXCEPTION; see docs/fuzz.md).
    - `options`: the server supports OPTION_REQ "exceptions".
    - `timeout`: seconds to wait for each expected packet.
    """

    grabs: tuple[str, ...] = _GRABS
    submits: tuple[str, ...] = _SUBMITS
    work_packets: tuple[str, ...] = _WORK
    exception_without_option: str = "fail"
    worker_disconnect: str = "requeue"
    unknown_handle_error: str | None = "JOB_NOT_FOUND"
    grab_all_plain: str = "either"
    trailing_nul: bool = False
    cant_do_running: str = "keep"
    noop_rearm: str = "pre_sleep"
    empty_numbers: bool = False
    duplicate_listener: str = "either"
    requeue_position: str = "either"
    orphaned_background_dropped: bool = False
    options: bool = True
    timeout: float = 3.0


def _profiles() -> dict[str, ModelOptions]:
    """"spec" (the defaults), then each implementation's [fuzz] table (conformance/impls/NAME/impl.toml)."""
    from gearspec.conformance.impls import RegistryError, load_registry

    known = {f.name for f in fields(ModelOptions)}
    profiles = {"spec": ModelOptions()}
    for name, options in load_registry().fuzz_options().items():
        unknown = sorted(set(options) - known)
        if unknown:
            raise RegistryError(f"{name}: unknown fuzz option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        profiles[name] = ModelOptions(**options)
    return profiles


PROFILES: dict[str, ModelOptions] = _profiles()
"""Model options by profile name (see docs/fuzz.md for what each deviation means)."""


@dataclass
class ModelStats:
    """Counters a long run reports while Hypothesis is busy (runs started, disagreements
    seen: after the first one Hypothesis is shrinking it)."""

    runs: int = 0
    disagreements: int = 0


class ModelFailure(AssertionError):
    """The target disagreed with the model; `script` replays the run that showed it."""

    def __init__(self, message: str, script: str) -> None:
        super().__init__(f"{message}\n\nreplay script (save it, then: gearspec fuzz --replay FILE --target HOST:PORT):\n{script}")
        self.reason = message
        self.script = script


@dataclass
class _Job:
    var: str
    function: bytes
    unique: bytes
    data: bytes
    priority: int
    background: bool  # submitted (or joined) by a background submit
    seq: int
    listeners: list[str] = field(default_factory=list)
    worker: str | None = None
    numerator: bytes = b"0"
    denominator: bytes = b"0"
    abandoned: bool = False  # nobody waits for it: it may or may not still run
    orphaned: bool = False  # running when its last listener left: abandoned if requeued
    requeued: bool = False


@dataclass
class _Worker:
    abilities: list[bytes] = field(default_factory=list)
    sleeping: bool = False
    noop_sent: bool = False


_CLIENTS = ("c0", "c1")
_WORKERS = ("w0", "w1")
_FUNCTIONS = ("f0", "f1", "f0")  # f0 twice: jobs and workers meet more often
_UNIQUES = (b"u0", b"", b"u1")
_DATA = (b"d", b"", b"x\0y")
_COUNTER = itertools.count()


class JobServerModel(RuleBasedStateMachine):
    """The model; use `model_for(host, port, options)` to bind it to a target."""

    host = "127.0.0.1"
    port = DEFAULT_PORT
    options = ModelOptions()
    cleanup = True
    stats = ModelStats()

    def __init__(self) -> None:
        super().__init__()
        self.stats.runs += 1
        # Fresh function names per run: earlier runs may have left jobs on the server.
        self.prefix = f"{fresh_prefix()}{next(_COUNTER)}_"
        self.session = Session(
            self.host, self.port, timeout=self.options.timeout,
            allow_trailing_nul=self.options.trailing_nul, allow_empty_numbers=self.options.empty_numbers,
            fresh_prefix=self.prefix,  # the saved script names functions afresh on every replay
        )
        self.jobs: list[_Job] = []
        self.finished: list[str] = []  # vars of handles of jobs that ended
        self.workers = {name: _Worker() for name in _WORKERS}
        self.exceptions = {name: False for name in _CLIENTS}
        self.seq = itertools.count()
        self.vars = itertools.count(1)

    # -- helpers ---------------------------------------------------------------------------
    def _fn(self, index: str) -> bytes:
        return (self.prefix + index).encode()

    def _fail(self, exc: Exception) -> ModelFailure:
        self.stats.disagreements += 1
        return ModelFailure(str(exc), self.session.script())

    def _queued(self, functions: list[bytes]) -> list[_Job]:
        return [j for j in self.jobs if j.worker is None and not j.abandoned and j.function in functions]

    def _wake_sleepers(self, function: bytes) -> list[str]:
        """Workers that must get a NOOP because a job for `function` was queued."""
        woken = []
        for name, worker in self.workers.items():
            if worker.sleeping and not worker.noop_sent and function in worker.abilities:
                worker.noop_sent = True
                woken.append(name)
        return woken

    def _sync_all(self, expected: dict[str, list[Expect]] | None = None) -> None:
        expected = expected or {}
        for name in (*_WORKERS, *_CLIENTS):
            self.session.sync(name, expected.get(name, []))

    def _requeue(self, job: _Job, expected: dict[str, list[Expect]]) -> None:
        job.worker = None
        job.abandoned = job.orphaned
        # gearmand puts it back at the tail of its priority (job.cc gearman_server_job_queue).
        job.seq = -next(self.seq) if self.options.requeue_position == "head" else next(self.seq)
        job.requeued = True
        job.numerator = job.denominator = b"0"
        for name in self._wake_sleepers(job.function):
            expected.setdefault(name, []).append(Expect("NOOP"))

    def _handle(self, job: _Job) -> bytes:
        return self.session.bindings[job.var]

    # -- rules -------------------------------------------------------------------------------
    @initialize(ready=st.booleans())
    def connect(self, ready: bool) -> None:
        try:
            for name in (*_CLIENTS, *_WORKERS):
                self.session.open(name)
        except TargetDown as exc:
            raise self._fail(exc) from None
        if ready:  # most interesting runs need a worker for f0; start with one half the time
            self.can_do("w0", "f0")

    def teardown(self) -> None:
        self.session.close_all()
        if self.cleanup:
            # Take this run's queued jobs back off the server (best effort: it may be down).
            with contextlib.suppress(OSError):
                drain(self.host, self.port, [self._fn(f) for f in set(_FUNCTIONS)], timeout=max(5.0, self.options.timeout))

    @rule(client=st.sampled_from(_CLIENTS), kind=st.integers(0, 5), function=st.sampled_from(_FUNCTIONS),
          unique=st.sampled_from(_UNIQUES), data=st.sampled_from(_DATA))
    def submit(self, client: str, kind: int, function: str, unique: bytes, data: bytes) -> None:
        name = self.options.submits[kind % len(self.options.submits)]
        attrs = packet_spec(name).submit
        assert attrs is not None
        fn = self._fn(function)
        same = [j for j in self.jobs if unique and j.function == fn and j.unique == unique]
        if any(j.abandoned for j in same):
            return  # servers differ on reviving a job nobody waits for; not modelled
        existing = same[0] if same else None
        try:
            if existing is not None:
                # Coalescing: same handle, and a foreground submitter listens to the job.
                self.session.request(client, Packet.request(name, fn, unique, data), Expect("JOB_CREATED", (Var(existing.var),)))
                if attrs.background:
                    existing.background = True  # someone now waits for it in the background
                else:
                    existing.listeners.append(client)
                woken: list[str] = []
            else:
                job = _Job(
                    f"h{next(self.vars)}", fn, unique, data, int(attrs.priority), attrs.background, next(self.seq),
                    [] if attrs.background else [client],
                )
                self.session.request(client, Packet.request(name, fn, unique, data), Expect("JOB_CREATED", (Var(job.var),)))
                handle = self.session.bindings[job.var]
                known = {self.session.bindings[v] for v in [*(j.var for j in self.jobs), *self.finished]}
                if handle in known:
                    raise Mismatch(f"{client}: JOB_CREATED reused handle {handle.decode('latin-1')} for a new job")
                self.jobs.append(job)
                woken = self._wake_sleepers(fn)
            self._sync_all({w: [Expect("NOOP")] for w in woken})
        except (Mismatch, TargetDown) as exc:
            raise self._fail(exc) from None

    @rule(worker=st.sampled_from(_WORKERS), function=st.sampled_from(_FUNCTIONS))
    def can_do(self, worker: str, function: str) -> None:
        state = self.workers[worker]
        if state.sleeping:
            return  # whether CAN_DO wakes a sleeper that has work waiting is not specified
        fn = self._fn(function)
        try:
            self.session.send(worker, Packet.request("CAN_DO", fn))
            if fn not in state.abilities:
                state.abilities.append(fn)
            self.session.sync(worker)
        except (Mismatch, TargetDown) as exc:
            raise self._fail(exc) from None

    @precondition(lambda self: any(w.abilities for w in self.workers.values()))
    @rule(worker=st.sampled_from(_WORKERS), function=st.sampled_from(_FUNCTIONS))
    def cant_do(self, worker: str, function: str) -> None:
        state = self.workers[worker]
        fn = self._fn(function)
        expected: dict[str, list[Expect]] = {}
        if fn in state.abilities and self.options.cant_do_running == "requeue":
            for job in self.jobs:
                if job.worker == worker and job.function == fn:
                    self._requeue(job, expected)
        try:
            self.session.send(worker, Packet.request("CANT_DO", fn))
            if fn in state.abilities:
                state.abilities.remove(fn)
            self.session.sync(worker, expected.pop(worker, []))
            for name, packets in expected.items():
                self.session.sync(name, packets)
        except (Mismatch, TargetDown) as exc:
            raise self._fail(exc) from None

    @precondition(lambda self: any(w.abilities for w in self.workers.values()))
    @rule(worker=st.sampled_from(_WORKERS), kind=st.integers(0, 2))
    def grab(self, worker: str, kind: int) -> None:
        name = self.options.grabs[kind % len(self.options.grabs)]
        state = self.workers[worker]
        candidates = self._queued(state.abilities)
        # Per function: best priority first, FIFO within it. Across functions servers differ
        # (gearmand 1.1 walks the worker's functions; 2.0 is global), so any head may come.
        heads: list[_Job] = []
        for fn in state.abilities:
            mine = [j for j in candidates if j.function == fn]
            if mine:
                first = min(mine, key=lambda j: (j.priority, j.seq))
                heads.append(first)
                if self.options.requeue_position == "either":
                    # A requeued job may have gone back to the head or the tail of its level.
                    heads += [j for j in mine if j.requeued and j.priority == first.priority and j is not first]
        try:
            if not heads:
                self.session.request(worker, Packet.request(name), Expect("NO_JOB"))
            else:
                patterns = [p for job in heads for p in self._assign_patterns(name, job)]
                packet = self.session.request(worker, Packet.request(name), *patterns)
                job = next(j for j in heads if self._handle(j) == packet.args[0])
                job.worker = worker
            state.sleeping = False
            state.noop_sent = False
            self.session.sync(worker)
        except (Mismatch, TargetDown) as exc:
            raise self._fail(exc) from None

    def _assign_patterns(self, grab: str, job: _Job) -> list[Expect]:
        handle = Var(job.var)
        unique = job.unique if job.unique else ANY  # servers make one up for an empty unique
        if grab == "GRAB_JOB":
            return [Expect("JOB_ASSIGN", (handle, job.function, job.data))]
        as_uniq = Expect("JOB_ASSIGN_UNIQ", (handle, job.function, unique, job.data))
        if grab == "GRAB_JOB_UNIQ":
            return [as_uniq]
        as_all = Expect("JOB_ASSIGN_ALL", (handle, job.function, unique, b"", job.data))
        return {"uniq": [as_uniq], "all": [as_all]}.get(self.options.grab_all_plain, [as_all, as_uniq])

    @precondition(lambda self: any(w.abilities for w in self.workers.values()))
    @rule(worker=st.sampled_from(_WORKERS))
    def pre_sleep(self, worker: str) -> None:
        state = self.workers[worker]
        waiting = self._queued(state.abilities)
        only_abandoned = not waiting and any(
            j.abandoned and j.worker is None and j.function in state.abilities for j in self.jobs
        )
        try:
            self.session.send(worker, Packet.request("PRE_SLEEP"))
            if waiting:
                # Work is waiting: wake at once (gearmand server.cc, GEARMAN_COMMAND_PRE_SLEEP).
                self.session.sync(worker, [Expect("NOOP")])
            else:
                arrived = self.session.sync(worker, [], [Expect("NOOP")] if only_abandoned else [])
                if not arrived:
                    state.sleeping = True
                    if self.options.noop_rearm == "pre_sleep":
                        state.noop_sent = False
        except (Mismatch, TargetDown) as exc:
            raise self._fail(exc) from None

    @precondition(lambda self: any(j.worker is not None for j in self.jobs))
    @rule(worker=st.sampled_from(_WORKERS), kind=st.integers(0, 5), data=st.sampled_from(_DATA))
    def work(self, worker: str, kind: int, data: bytes) -> None:
        held = [j for j in self.jobs if j.worker == worker] or [j for j in self.jobs if j.worker is not None]
        job = held[0]
        worker = job.worker or worker
        name = self.options.work_packets[kind % len(self.options.work_packets)]
        handle = self._handle(job)
        if name == "WORK_STATUS":
            args: tuple[bytes, ...] = (handle, b"1", b"4")
        elif name == "WORK_FAIL":
            args = (handle,)
        else:
            args = (handle, data)
        expected: dict[str, list[Expect]] = {}
        optional: dict[str, list[Expect]] = {}
        # Every foreground submitter listens, also one that joined a background job. A client
        # that submitted the same job twice gets one copy per submit or per connection.
        per_submit = self.options.duplicate_listener == "per_submit"
        for i, client in enumerate(job.listeners):
            repeat = client in job.listeners[:i]
            if repeat and self.options.duplicate_listener == "per_connection":
                continue
            target = optional if repeat and not per_submit else expected
            forward = Expect(name, (Var(job.var), *args[1:]))
            if name == "WORK_EXCEPTION" and not self.exceptions[client]:
                how = self.options.exception_without_option
                if how == "fail":
                    forward = Expect("WORK_FAIL", (Var(job.var),))
                elif how == "nothing":
                    continue
            target.setdefault(client, []).append(forward)
        try:
            self.session.send(worker, Packet.request(name, *args))
            if name == "WORK_STATUS":
                job.numerator, job.denominator = b"1", b"4"
            if packet_spec(name).terminal:
                self.jobs.remove(job)
                self.finished.append(job.var)
            self.session.sync(worker)
            for client in dict.fromkeys([*expected, *optional]):
                self.session.sync(client, expected.get(client, []), optional.get(client, []))
        except (Mismatch, TargetDown) as exc:
            raise self._fail(exc) from None

    @rule(client=st.sampled_from(_CLIENTS), index=st.integers(0, 7))
    def get_status(self, client: str, index: int) -> None:
        known: list[_Job | str] = [*self.jobs, *self.finished]
        if not known:
            handle = b"H:no-such-job:0"
            pattern = Expect("STATUS_RES", (handle, b"0", b"0", b"0", b"0"))
        else:
            item = known[index % len(known)]
            # Patterns name the handle by its variable: a replay gets its own server's handles.
            if isinstance(item, str):
                handle, var = self.session.bindings[item], Var(item)
                pattern = Expect("STATUS_RES", (var, b"0", b"0", b"0", b"0"))
            else:
                handle, var = self._handle(item), Var(item.var)
                if item.abandoned:
                    pattern = Expect("STATUS_RES", (var, ANY, ANY, ANY, ANY))
                elif item.worker is None:
                    pattern = Expect("STATUS_RES", (var, b"1", b"0", b"0", b"0"))
                else:
                    pattern = Expect("STATUS_RES", (var, b"1", b"1", item.numerator, item.denominator))
        try:
            self.session.request(client, Packet.request("GET_STATUS", handle), pattern)
        except (Mismatch, TargetDown) as exc:
            raise self._fail(exc) from None

    @rule(which=st.integers(0, 2), client=st.sampled_from(_CLIENTS), worker=st.sampled_from(_WORKERS),
          data=st.sampled_from(_DATA))
    def misc(self, which: int, client: str, worker: str, data: bytes) -> None:
        """One of the requests that do not change the job state: ECHO, OPTION_REQ, bad handles."""
        if which == 0:
            self.echo(client if data else worker, data)
        elif which == 1:
            self.option_exceptions(client)
        else:
            self.work_for_unknown_handle(worker)

    def work_for_unknown_handle(self, worker: str) -> None:
        code = self.options.unknown_handle_error
        if code is None:
            return
        try:
            self.session.request(
                worker, Packet.request("WORK_COMPLETE", b"H:no-such-job:0", b""), Expect("ERROR", (ANY if code == "*" else code.encode(), ANY))
            )
        except (Mismatch, TargetDown) as exc:
            raise self._fail(exc) from None

    def option_exceptions(self, client: str) -> None:
        if not self.options.options:
            return
        try:
            self.session.request(client, Packet.request("OPTION_REQ", b"exceptions"), Expect("OPTION_RES", (b"exceptions",)))
            self.exceptions[client] = True
        except (Mismatch, TargetDown) as exc:
            raise self._fail(exc) from None

    def echo(self, conn: str, data: bytes) -> None:
        try:
            self.session.request(conn, Packet.request("ECHO_REQ", data), Expect("ECHO_RES", (data,)))
        except (Mismatch, TargetDown) as exc:
            raise self._fail(exc) from None

    @rule(worker=st.sampled_from(_WORKERS))
    def disconnect_worker(self, worker: str) -> None:
        held = [j for j in self.jobs if j.worker == worker]
        self.workers[worker] = _Worker()
        expected: dict[str, list[Expect]] = {}
        for job in held:
            if self.options.worker_disconnect == "requeue":
                self._requeue(job, expected)
            else:
                self.jobs.remove(job)
                self.finished.append(job.var)
                for client in job.listeners:
                    expected.setdefault(client, []).append(Expect("WORK_FAIL", (Var(job.var),)))
        try:
            self.session.close(worker)
            self.session.open(worker)
            self._sync_all(expected)
        except (Mismatch, TargetDown) as exc:
            raise self._fail(exc) from None

    @rule(client=st.sampled_from(_CLIENTS))
    def disconnect_client(self, client: str) -> None:
        for job in self.jobs:
            if client in job.listeners:
                job.listeners = [c for c in job.listeners if c != client]
                if not job.listeners and (not job.background or self.options.orphaned_background_dropped):
                    if job.worker is None:
                        job.abandoned = True  # gearmand drops it lazily, others at once
                    else:
                        job.orphaned = True
        self.exceptions[client] = False
        try:
            self.session.close(client)
            self.session.open(client)
            self._sync_all()
        except (Mismatch, TargetDown) as exc:
            raise self._fail(exc) from None


def model_for(
    host: str, port: int, options: ModelOptions | None = None, *, cleanup: bool = True, stats: ModelStats | None = None
) -> type[JobServerModel]:
    """A `JobServerModel` subclass bound to one target (`cleanup`: drain each run's jobs)."""
    return type(
        "JobServerModelFor", (JobServerModel,),
        {"host": host, "port": port, "options": options or ModelOptions(), "cleanup": cleanup, "stats": stats or ModelStats()},
    )


def check_target(
    host: str,
    port: int,
    options: ModelOptions | None = None,
    *,
    max_examples: int = 30,
    steps: int = 30,
    seed: int | None = 0,
    cleanup: bool = True,
    stats: ModelStats | None = None,
) -> None:
    """Run the model against a live target; raises `ModelFailure` (with a replay script).

    `seed=None` explores differently every call; an int makes the run reproducible.
    """
    machine = model_for(host, port, options, cleanup=cleanup, stats=stats)
    if seed is not None:
        from hypothesis import seed as hypothesis_seed

        machine = hypothesis_seed(seed)(machine)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=max_examples,
            stateful_step_count=steps,
            deadline=None,
            database=None,
            derandomize=False,
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False,
            # No "explain" phase: it re-runs the failing example many times over the network.
            phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
        ),
    )
