"""The core's own subcommands: `gearspec spec` and `gearspec decode`."""

from __future__ import annotations

import argparse
import json
import sys

from gearspec.admin import ADMIN_COMMANDS
from gearspec.cli import add_json_option, write_json
from gearspec.codec import CLOSED, NEED_DATA, Decoder
from gearspec.errors import RemoteProtocolError
from gearspec.export import event_as_data, spec_as_data
from gearspec.spec import PACKETS, Magic


def configure_spec(parser: argparse.ArgumentParser) -> None:
    parser.epilog = """\
examples:
  gearspec spec
  gearspec spec --json | jq '.packets[0]'

exit status:
  0    printed
  2    bad usage
"""
    add_json_option(parser, "both tables")


def run_spec(args: argparse.Namespace) -> int:
    if args.json:
        write_json(args.json, spec_as_data(), indent=2)
        return 0
    print(f"{'#':>3}  {'name':<29} {'magic':<8} {'origin':<9} arguments")
    for row in PACKETS:
        magic = "/".join(sorted(m.name for m in row.magics)) or "-"
        names = ", ".join(a.name for a in row.args) or "-"
        if row.reserved:
            names = "(reserved)"
        print(f"{row.code:>3}  {row.name:<29} {magic:<8} {row.origin:<9} {names}")
    print()
    print("admin commands:")
    for cmd in ADMIN_COMMANDS:
        print(f"  {cmd.usage():<38} {cmd.reply.value:<6} {cmd.summary}")
    return 0


def configure_decode(parser: argparse.ArgumentParser) -> None:
    parser.epilog = """\
examples:
  gearspec decode --hex '00 52 45 51 00 00 00 10 00 00 00 04 74 65 73 74'
  cat stream.bin | gearspec decode - --offsets

exit status:
  0    every packet decoded
  1    the bytes break the protocol (an error line says where)
  2    the input cannot be read, or bad usage
"""
    parser.add_argument("file", nargs="?", help="file of raw bytes (default: standard input)")
    parser.add_argument("--hex", metavar="HEX", help="decode these hex digits instead of a file")
    parser.add_argument(
        "--direction",
        choices=("any", "to-server", "from-server"),
        default="any",
        help="which magic to expect (default: either)",
    )
    parser.add_argument("--lenient", action="store_true", help="keep malformed packets instead of stopping")
    parser.add_argument("--offsets", action="store_true", help="add each event's byte offset")


def run_decode(args: argparse.Namespace) -> int:
    if args.hex is not None:
        digits = "".join(args.hex.split())
        try:
            data = bytes.fromhex(digits)
        except ValueError:
            bad = next((c for c in digits if c not in "0123456789abcdefABCDEF"), None)
            why = f"{bad!r} is not a hex digit" if bad else "an odd number of hex digits"
            print(f"gearspec decode: --hex is not hex bytes: {why}", file=sys.stderr)
            return 2
    elif args.file and args.file != "-":
        try:
            with open(args.file, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            print(f"gearspec decode: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return 2
    else:
        data = sys.stdin.buffer.read()
    accept = {"any": None, "to-server": Magic.REQ, "from-server": Magic.RES}[args.direction]
    decoder = Decoder(accept, lenient=args.lenient)
    decoder.receive_data(data)
    decoder.receive_data(b"")
    failed = False  # a non-fatal error skips one packet, but the exit status still says so
    while True:
        offset = decoder.offset
        try:
            event = decoder.next_event()
        except RemoteProtocolError as exc:
            print(json.dumps({"error": exc.message, "code": exc.code.value, "offset": exc.offset}))
            print(f"gearspec decode: {exc}", file=sys.stderr)
            if exc.fatal:
                return 1
            failed = True
            continue
        if event is CLOSED or event is NEED_DATA:
            return 1 if failed else 0
        print(json.dumps(event_as_data(event, offset if args.offsets else None)))
