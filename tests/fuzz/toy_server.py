"""A deliberately broken job server for testing the network fuzzer (not a Gearman server).

It answers ECHO_REQ and admin `version` like a healthy server and ERROR to everything else,
until it sees a packet of the trigger type (CAN_DO_TIMEOUT by default). Then, by --mode:

- crash: the process exits at once (as a segfaulting server would);
- hang: the server stops answering anyone, while still accepting connections;
- badreply: it answers that packet with `\\0REQ` magic (a protocol violation), then goes on.

    python tests/fuzz/toy_server.py --mode crash    # listens on 127.0.0.1, port 0
"""

from __future__ import annotations

import argparse
import asyncio
import os

from gearspec.codec import CLOSED, NEED_DATA, AdminLine, Decoder, Packet
from gearspec.errors import ProtocolError
from gearspec.spec import Magic, PacketType


class Toy:
    def __init__(self, mode: str, trigger: PacketType) -> None:
        self.mode = mode
        self.trigger = trigger
        self.stuck = False

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = Decoder(Magic.REQ)
        try:
            while True:
                data = await reader.read(65536)
                if self.stuck:
                    await asyncio.Event().wait()  # never answers again
                decoder.receive_data(data)
                if not self.decode_and_answer(decoder, writer):
                    break
                await writer.drain()
                if not data:
                    break
        finally:
            writer.close()

    def decode_and_answer(self, decoder: Decoder, writer: asyncio.StreamWriter) -> bool:
        """Answer every complete event; False when the connection must close."""
        while True:
            try:
                event = decoder.next_event()
            except ProtocolError as exc:
                if exc.fatal:
                    return False
                writer.write(Packet.response(PacketType.ERROR, exc.code.value, "bad packet").to_bytes())
                continue
            if event is NEED_DATA:
                return True
            if event is CLOSED:
                return False
            self.answer(event, writer)

    def answer(self, event: object, writer: asyncio.StreamWriter) -> None:
        if isinstance(event, AdminLine):
            writer.write(b"OK toy-1.0\n" if event.words[:1] == ["version"] else b"ERR UNKNOWN_COMMAND x\n")
            return
        assert isinstance(event, Packet)
        if event.type == self.trigger:
            if self.mode == "crash":
                os._exit(3)
            if self.mode == "hang":
                self.stuck = True
                return
            writer.write(b"\0REQ" + Packet.response(PacketType.NOOP).to_bytes()[4:])
            return
        if event.type == PacketType.ECHO_REQ:
            writer.write(Packet.response(PacketType.ECHO_RES, event.args[0]).to_bytes())
        else:
            writer.write(Packet.response(PacketType.ERROR, b"ERR_TOY", b"not implemented").to_bytes())


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("crash", "hang", "badreply"), required=True)
    parser.add_argument("--trigger", default="CAN_DO_TIMEOUT")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    toy = Toy(args.mode, PacketType[args.trigger])
    server = await asyncio.start_server(toy.serve, args.host, 0)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
