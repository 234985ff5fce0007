"""`gearspec dissect` and `gearspec proxy`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import signal
import sys

from gearspec.cli import add_json_option, unwritable, write_json
from gearspec.spec import DEFAULT_PORT

__all__ = ["configure_dissect", "configure_proxy", "run_dissect", "run_proxy"]


def configure_dissect(parser: argparse.ArgumentParser) -> None:
    parser.epilog = """\
examples:
  gearspec dissect capture.pcap
  tcpdump -w - -i lo port 4730 | gearspec dissect - --json

exit status:
  0    decoded (violations are reported, not counted, without --strict)
  1    violations found, with --strict
  2    the capture cannot be read, or bad usage
"""
    parser.add_argument("file", help="a pcap or pcapng capture ('-' reads standard input)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"the job server's TCP port (default {DEFAULT_PORT})")
    add_json_option(parser, "the streams and their events")
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 when any violation is found (for CI)"
    )


def run_dissect(args: argparse.Namespace) -> int:
    from gearspec.wire.dissect import dissect, format_text, reports_as_data
    from gearspec.wire.pcap import PcapError

    # "-" reads standard input; kept in memory because an empty result reads it twice.
    source: str | io.BytesIO = io.BytesIO(sys.stdin.buffer.read()) if args.file == "-" else args.file
    try:
        reports = dissect(source, port=args.port)
    except OSError as exc:
        print(f"gearspec dissect: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except PcapError as exc:
        print(f"gearspec dissect: {args.file}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        write_json(args.json, reports_as_data(reports), indent=1)
    else:
        print(format_text(reports))
    if not reports:
        print(f"gearspec dissect: {_why_empty(source, args.port, args.file)}", file=sys.stderr)
    violations = sum(len(r.violations) for r in reports)
    return 1 if args.strict and violations else 0


def _why_empty(source: str | io.BytesIO, port: int, name: str) -> str:
    """Why a capture gave no Gearman stream: link types we cannot read, or the wrong port."""
    from gearspec.wire.pcap import SUPPORTED_LINKTYPES, PcapError, read_frames, read_segments

    def rewind() -> str | io.BytesIO:
        if isinstance(source, io.BytesIO):
            source.seek(0)
        return source

    try:
        links = {frame.linktype for frame in read_frames(rewind())}
        unknown = sorted(links - SUPPORTED_LINKTYPES)
        if unknown and not links & SUPPORTED_LINKTYPES:
            shown = ", ".join(map(str, unknown))
            return f"{name}: link type {shown} is not supported (supported: {', '.join(map(str, sorted(SUPPORTED_LINKTYPES)))})"
        # A SYN without ACK opens a connection: its destination is a server port.
        ports = sorted({seg.dst[1] for seg in read_segments(rewind()) if seg.syn and not seg.flags & 0x10})
    except (OSError, PcapError):
        ports = []
    hint = ""
    if ports:
        hint = f"; connections go to port {', '.join(map(str, ports[:5]))} (try --port {ports[0]})"
    return f"no TCP traffic on port {port} in {name}{hint}"


def configure_proxy(parser: argparse.ArgumentParser) -> None:
    parser.epilog = """\
examples:
  gearspec proxy --listen 127.0.0.1:4731 --upstream 127.0.0.1:4730 --trace t.jsonl

exit status:
  0    stopped by SIGINT/SIGTERM without errors
  1    stopped after errors
  2    bad usage, an unwritable --trace/--pcap, or cannot listen
"""
    parser.add_argument(
        "--listen", default=f"127.0.0.1:{DEFAULT_PORT + 1}",
        help="HOST:PORT to accept peers on (port 0 picks a free port and prints it); default 127.0.0.1:4731",
    )
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the real job server (tls://HOST:PORT: over TLS)")
    from gearspec.wire.tls import add_client_options

    add_client_options(parser, "a tls://HOST:PORT upstream")
    parser.add_argument("--trace", metavar="FILE.jsonl", help="write every event and violation as JSON lines")
    parser.add_argument("--pcap", metavar="FILE", help="write the traffic as a pcap file (one TCP stream per connection)")
    parser.add_argument("-q", "--quiet", action="store_true", help="do not print violations (use with --trace)")


def run_proxy(args: argparse.Namespace) -> int:
    from gearspec.address import parse_address
    from gearspec.wire.proxy import ValidatingProxy
    from gearspec.wire.tls import context_from_options, split_scheme

    try:
        listen = parse_address(args.listen, DEFAULT_PORT + 1, listen=True)
        is_tls, upstream_text = split_scheme(args.upstream)
        upstream = parse_address(upstream_text)
        upstream_tls = context_from_options(args, is_tls, "a tls://HOST:PORT upstream")
    except ValueError as exc:
        print(f"gearspec proxy: {exc}", file=sys.stderr)
        return 2
    problem = next(filter(None, (unwritable(p) for p in (args.trace, args.pcap) if p)), None)
    if problem:  # otherwise the failed open would read as "cannot listen"
        print(f"gearspec proxy: {problem}", file=sys.stderr)
        return 2

    def report(text: str) -> None:
        print(text, flush=True)

    proxy = ValidatingProxy(
        listen[0], listen[1], upstream[0], upstream[1], trace=args.trace, pcap=args.pcap,
        report=None if args.quiet else report, upstream_tls=upstream_tls,
    )

    async def main() -> int:
        try:
            host, port = await proxy.start()
        except OSError as exc:
            print(f"gearspec proxy: cannot listen on {listen[0]}:{listen[1]}: {exc.strerror or exc}", file=sys.stderr)
            await proxy.close()
            return 2
        print(f"gearspec proxy: listening on {host}:{port}, forwarding to {'tls://' if is_tls else ''}"
              f"{upstream[0]}:{upstream[1]}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await proxy.close()
        errors = proxy.errors
        print(
            f"gearspec proxy: {proxy.connections} connection(s), {len(proxy.violations)} violation(s), "
            f"{errors} error(s)", flush=True,
        )
        return 1 if errors else 0

    try:  # the optional `fast` extra: a faster event loop, same behaviour
        import uvloop

        return int(uvloop.run(main()))
    except ImportError:
        return asyncio.run(main())
