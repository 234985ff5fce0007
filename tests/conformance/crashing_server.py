"""A tiny real Gearman server that dies on one packet: the target-death tests run it.

    python crashing_server.py HOST          # listens on HOST, port 0 (read back from /proc)

It answers ECHO_REQ, GET_STATUS (of any handle: unknown) and admin lines (an empty block),
refuses other binary packets with ERROR, and on a packet of reserved type 5 writes a line to
stderr and exits with status 3, as a server with a fatal parser bug would (gearmand 1.1.20
does the same on type 0xFFFFFFFF). Not a mock: a socket server the suite talks to over TCP.
"""

from __future__ import annotations

import os
import socketserver
import sys

from gearspec.codec import AdminLine, Decoder, Packet, RawPacket
from gearspec.spec import Magic, PacketType

FATAL_TYPE = 5


class Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        decoder = Decoder(Magic.REQ, lenient=True)
        while chunk := self.request.recv(65536):
            decoder.receive_data(chunk)
            for event in decoder:
                self.request.sendall(self.answer(event))

    def answer(self, event: object) -> bytes:
        if isinstance(event, AdminLine):
            return b".\n"
        if isinstance(event, RawPacket) and event.code == FATAL_TYPE:
            print(f"crashing_server: fatal: packet type {FATAL_TYPE}", file=sys.stderr, flush=True)
            os._exit(3)
        if isinstance(event, Packet) and event.type is PacketType.ECHO_REQ:
            return Packet.response(PacketType.ECHO_RES, event.data).to_bytes()
        if isinstance(event, Packet) and event.type is PacketType.GET_STATUS:
            return Packet.response(PacketType.STATUS_RES, event.args[0], 0, 0, 0, 0).to_bytes()
        return Packet.response(PacketType.ERROR, "UNSUPPORTED", "not served here").to_bytes()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


if __name__ == "__main__":
    with Server((sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0), Handler) as server:
        server.serve_forever()
