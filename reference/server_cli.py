"""`gearspec serve`: run the reference job server."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import resource
import sys
from collections.abc import Callable

from gearspec.reference.acl import AclError, load_acl
from gearspec.reference.broker import LOG_LEVELS
from gearspec.reference.server import DEFAULT_MAX_PACKET_SIZE, Config, Server
from gearspec.reference.store import StoreError, default_queue

from gearspec.spec import DEFAULT_PORT
from gearspec.wire.tls import TlsError

__all__ = ["SUMMARIES", "configure_serve", "run_serve"]

SUMMARIES = {"serve": "run the reference job server"}


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {value}")
    return value


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = _positive(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}: {value}")
        return value

    return parse


def _port(text: str) -> int:
    value = _positive(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a TCP port is 0..65535, not {value}")
    return value


def configure_serve(parser: argparse.ArgumentParser) -> None:
    parser.epilog = """\
examples:
  gearspec serve --port 4730
  gearspec serve --port 0 --queue sqlite:/var/lib/gearspec/queue.sqlite3

exit status:
  0    stopped by SIGTERM or SIGINT
  1    cannot listen, or the durable queue cannot be opened or written
  2    bad usage
"""
    """Add the `gearspec serve` options."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"TCP port; 0 picks a free one (default: {DEFAULT_PORT})")
    parser.add_argument(
        "--queue", default=None, metavar="memory|sqlite:PATH",
        help=f"durable queue for background jobs (default: {default_queue()})",
    )
    parser.add_argument(
        "--job-retries", type=_positive, default=0, metavar="N",
        help="fail a job after its worker vanished N times (default: 0, requeue without bound)",
    )
    parser.add_argument(
        "--log-level", default="WARNING", type=str.upper, choices=LOG_LEVELS, help="log level (default: WARNING)",
    )
    parser.add_argument("--max-connections", type=_at_least(1), default=20000, metavar="N", help="default: 20000")
    parser.add_argument(
        "--max-packet-size", type=_at_least(1), default=DEFAULT_MAX_PACKET_SIZE, metavar="BYTES",
        help=f"close a connection that announces a larger packet (default: {DEFAULT_MAX_PACKET_SIZE})",
    )
    parser.add_argument(
        "--enable-shutdown", action="store_true", help="accept the `shutdown [graceful]` admin command",
    )
    parser.add_argument(
        "--shutdown-timeout", type=float, default=10.0, metavar="SECONDS",
        help="how long a stop waits for running jobs (`shutdown graceful`) and for replies to be read (default: 10)",
    )
    parser.add_argument(
        "--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
        help="event loop (default: uvloop when installed)",
    )
    tls = parser.add_argument_group("TLS and access control (docs/server.md)")
    tls.add_argument("--tls-cert", metavar="FILE", help="serve TLS only, with this PEM certificate (chain)")
    tls.add_argument("--tls-key", metavar="FILE", help="the certificate's private key (default: in --tls-cert)")
    tls.add_argument("--tls-ca", metavar="FILE", help="require client certificates signed by this CA")
    tls.add_argument(
        "--acl", metavar="FILE",
        help="which certificate subject may register, submit to and administer which functions (needs --tls-ca)",
    )


def _loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise SystemExit("gearspec serve: --loop uvloop needs the uvloop package (pip install uvloop)") from None
        return None
    return uvloop.new_event_loop


def _raise_fd_limit() -> None:
    # Idle connections are cheap for us but each needs a descriptor.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


async def _serve(config: Config) -> int:
    try:
        server = Server(config)
    except (StoreError, TlsError) as exc:
        print(f"gearspec serve: {exc}", file=sys.stderr)
        return 1
    try:
        await server.start()
    except (OSError, StoreError) as exc:
        if isinstance(exc, StoreError):
            print(f"gearspec serve: {exc}", file=sys.stderr)
        else:
            print(f"gearspec serve: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}", file=sys.stderr)
        server.store.close()
        return 1
    host, port = server.address
    scheme = "tls://" if config.tls_cert else ""
    print(f"gearspec serve: listening on {scheme}{host}:{port}", flush=True)
    await server.serve_until_stopped()
    return server.exit_status


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


def _tls_problem(args: argparse.Namespace) -> str | None:
    """Why the TLS and ACL flags do not fit together, or None."""
    if not args.tls_cert:
        for flag, value in (("--tls-key", args.tls_key), ("--tls-ca", args.tls_ca), ("--acl", args.acl)):
            if value:
                return f"{flag} needs --tls-cert (the server's certificate)"
    if args.acl and not args.tls_ca:
        return "--acl needs --tls-ca: the ACL names each connection by its verified client certificate"
    return None


def run_serve(args: argparse.Namespace) -> int:
    """Run the server until SIGTERM/SIGINT (or an enabled `shutdown`)."""
    problem = _tls_problem(args)
    if problem is not None:
        print(f"gearspec serve: {problem}", file=sys.stderr)
        return 2
    try:
        acl = load_acl(args.acl) if args.acl else None
    except AclError as exc:
        print(f"gearspec serve: {exc}", file=sys.stderr)
        return 2
    if not args.tls_cert and not _is_loopback(args.host):
        print(
            f"gearspec serve: warning: listening on {args.host} without TLS: anyone who can reach it may "
            "submit, run and cancel jobs (see --tls-cert, --tls-ca, --acl)",
            file=sys.stderr, flush=True,
        )
    logging.basicConfig(
        level="WARNING" if args.log_level == "NOTICE" else args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    _raise_fd_limit()
    config = Config(
        host=args.host,
        port=args.port,
        queue=args.queue or default_queue(),
        job_retries=args.job_retries,
        log_level=args.log_level,
        max_connections=args.max_connections,
        max_packet_size=args.max_packet_size,
        enable_shutdown=args.enable_shutdown,
        shutdown_timeout=args.shutdown_timeout,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_ca=args.tls_ca,
        acl=acl,
    )
    with asyncio.Runner(loop_factory=_loop_factory(args.loop)) as runner:
        return runner.run(_serve(config))
