"""The ACL as data (reference/acl.py) and its checks in the sans-IO broker (no sockets here)."""

from __future__ import annotations

import pytest
from gearspec.reference.acl import Acl, AclError, parse_acl
from gearspec.reference.broker import Broker

from gearspec.codec import Decoder, Packet
from gearspec.spec import Magic
from gearspec.spec import PacketType as T

ACL = """
# comments and blank lines are fine
[worker-a]  # a section comment
register = reverse resize-*  # inline comment

[ops]
admin = *
submit = *
"""


def test_globs_match_whole_names_deny_by_default() -> None:
    acl = parse_acl(ACL)
    assert acl.allows("worker-a", "register", b"reverse")
    assert acl.allows("worker-a", "register", b"resize-png")
    assert not acl.allows("worker-a", "register", b"reverse2")  # whole-name match, unlike geard's re.match
    assert not acl.allows("worker-a", "submit", b"reverse")
    assert not acl.allows("stranger", "register", b"reverse")
    assert not acl.allows(None, "submit", b"reverse")
    assert acl.allows("ops", "admin", None) and not acl.allows("worker-a", "admin", None)
    assert acl.allows("ops", "submit", b"\xff\x00odd")  # any bytes


@pytest.mark.parametrize(("text", "message"), [
    ("[a]\ninvoke = x\n", "unknown permission 'invoke'"),
    ("register = x\n", "File contains no section headers"),
    ("[a]\nregister = x\n[a]\n", "section 'a' already exists"),
])
def test_bad_acl_text_is_one_line(text: str, message: str) -> None:
    with pytest.raises(AclError) as caught:
        parse_acl(text, "acl.ini")
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).startswith("acl.ini: ")


def _replies(broker: Broker, session: object) -> list[Packet]:
    decoder = Decoder(Magic.RES)
    decoder.receive_data(b"".join(session.out))  # type: ignore[attr-defined]
    session.out.clear()  # type: ignore[attr-defined]
    return [e for e in decoder if isinstance(e, Packet)]


def test_broker_checks_the_identity_it_was_given() -> None:
    refusals: list[str] = []
    broker = Broker(acl=Acl({"worker-a": {"register": ("rev*",)}, "client-b": {"submit": ("rev*",)}}))
    broker.on_refusal = lambda session, why: refusals.append(why)
    worker = broker.connect("h", 1, identity="worker-a")
    client = broker.connect("h", 2, identity="client-b")
    anonymous = broker.connect("h", 3)
    broker.receive(worker, T.CAN_DO, [b"reverse"], 0.0)
    broker.receive(worker, T.CAN_DO, [b"other"], 0.0)
    assert list(worker.abilities) == [b"reverse"]
    assert [p.type for p in _replies(broker, worker)] == [T.ERROR]
    broker.receive(client, T.SUBMIT_JOB_BG, [b"reverse", b"", b"x"], 0.0)
    assert [p.type for p in _replies(broker, client)] == [T.JOB_CREATED]
    broker.receive(anonymous, T.SUBMIT_JOB, [b"reverse", b"", b"x"], 0.0)
    (error,) = _replies(broker, anonymous)
    assert error.args == (b"PERMISSION_DENIED", b"a connection without a client certificate may not submit jobs to 'reverse'")
    broker.admin(client, b"maxqueue reverse 1", 0.0)
    assert b"".join(client.out).startswith(b"ERR PERMISSION_DENIED certificate+'client-b'+may+not+maxqueue")
    assert len(refusals) == 3


def test_without_an_acl_nothing_is_wrapped() -> None:
    plain = Broker()
    assert plain.handlers[T.CAN_DO] == plain._can_do
