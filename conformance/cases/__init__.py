"""Conformance cases, one module per area (framing.py, admin.py, submit.py, ...).

Every module in this package is imported by `registry.all_cases()`; a case is a function
that takes a `Session` and is registered with `@case(...)`. How to write one:

    from gearspec.conformance.harness import Session
    from gearspec.conformance.registry import EXTENSION, MUST, SHOULD, case
    from gearspec.spec import PacketType as T

    @case(
        "submit/coalesce/1",                                  # stable ID: area/topic/N
        "Two SUBMIT_JOB with the same function and unique get the same handle",
        level=MUST,                                           # MUST, SHOULD, EXTENSION or INFO
        packets=["SUBMIT_JOB", "JOB_CREATED"],                # spec rows exercised
        source="PROTOCOL (SUBMIT_JOB); gearmand libgearman-server/job.cc gearman_server_job_add",
    )
    def same_unique_same_handle(s: Session) -> None:
        fn, unique = s.name("fn"), s.name("u")                # names no other case or run uses
        a, b = s.client(), s.client()                         # connections, labelled in the trace
        h1 = a.submit(fn, b"x", unique)                       # sends SUBMIT_JOB, expects JOB_CREATED
        h2 = b.submit(fn, b"y", unique)
        s.check_equal(h2, h1, "second handle")                # fails with expected vs actual

Rules:
- IDs are stable: never renumber or reuse one (reports, --select and expectation files use
  them). Add new cases with the next free number.
- Isolation: use `s.name(tag)` for every function name and unique id (it includes the case
  ID, a run token and a seeded random part), never shared names; assume other cases run at
  the same time against the same server (so filter admin listings to your own names).
  A case that must see server-wide state alone can pass `serial=True` to `@case`.
- No sleeps. Wait for events with `conn.expect(...)` (deadline `s.wait`, 2 s by default,
  capped by the case timeout). To show that nothing (else) arrives, use
  `conn.expect_silence()`: a round trip (`conn.sync()`: ECHO, or GET_STATUS for targets
  without ECHO), since the server answers one connection in order.
- Outcomes: return normally = pass. `s.fail(expected, actual)` (helpers do this for you),
  `s.non_strict("name", detail)` for an alternative declared in `alternatives={"name": "what
  it means"}`, `s.unsupported(reason)` for an optional feature the target lacks (typical
  for EXTENSION cases: ERROR INVALID_COMMAND / UNKNOWN_COMMAND), `s.info(text)` to end as
  informational, `s.note(text)` to record an observation and go on. Cases at level INFO
  end as informational when they return. Timeouts and harness exceptions are errors.
- Cite the rule's source: PROTOCOL section, gearmand file + function, Perl or gear file.

The Session and Conn API (gearspec.conformance.harness):

    s.client() / s.worker(*fns) / s.connect(label)    new connections (worker sends CAN_DO)
    s.name(tag) / s.token()                           unique names / seeded random tokens
    s.grab_type                                       GRAB_JOB, or the profile's grab packet
    s.fail / s.check / s.check_equal / s.non_strict / s.unsupported / s.info / s.note

    conn.send(T.X, *args) / conn.send(packet)         a REQ packet (checked by the codec)
    conn.send_raw(bytes)                              anything (bad magic, split packets)
    conn.send_admin("show jobs") / conn.admin(cmd, *args, crlf=False) -> AdminReply
    conn.expect(T.X, T.Y, ignore=[T.NOOP], timeout=) -> Packet (fields: pkt.handle, pkt["data"])
    conn.expect_error("CODE"...) / conn.expect_closed() / conn.expect_error_or_close()
    conn.expect_admin(cmd) -> AdminReply (framing from gearspec.admin.ADMIN_COMMANDS)
    conn.receive(timeout) -> Packet | RawPacket | AdminLine | Closed | Garbled | None
    conn.echo() -> events before the ECHO_RES;  conn.sync() (ECHO, or GET_STATUS
    for targets without ECHO) -> events before the barrier reply;  conn.expect_silence()
    conn.submit(fn, data, unique, type=T.SUBMIT_JOB) -> handle
    conn.get_status(handle) -> STATUS_RES packet
    conn.can_do(*fns) / conn.grab(type=None) -> JOB_ASSIGN* / conn.grab_nothing()
    conn.work(T.WORK_DATA, handle, data) / conn.close()

Responses are decoded leniently: a packet with the wrong magic or the wrong argument count
comes back as a `RawPacket` (with `.problem`), and `expect` fails on it with a clear
message. Parse admin replies with gearspec.admin's `parse_status`, `parse_workers`, ...
(a RemoteProtocolError they raise on a malformed row, or an AdminError from `parse_ok` on
an ERR line, ends the case as failed with that message; catch them to grade otherwise).
"""
