"""Network fuzzer throughput: packets per second sent and checked, reference server vs gearmand.

    python benchmarks/fuzz.py [--seconds 10] [--seed 0]

Both servers are started here on ephemeral ports and fuzzed in the same run with the same
seed and the same case families. `unknown_type` and `mutated` are left out because they crash
gearmand 1.1.20 within seconds (types >= 2**31, see docs/fuzz.md), which would end its run.
"""

from __future__ import annotations

import argparse
import sys

from gearspec.conformance.servers import LaunchError, start_server
from gearspec.fuzz.network import FuzzConfig, FuzzReport, run_network_fuzz
from gearspec.fuzz.strategies import FAMILIES

SAFE_FAMILIES = tuple(name for name in FAMILIES if name not in ("unknown_type", "mutated"))


def measure(peer: str, seconds: float, seed: int) -> FuzzReport:
    server = start_server(peer)
    try:
        config = FuzzConfig(server.host, server.port, budget=seconds, seed=seed, pid=server.process.pid, families=SAFE_FAMILIES)
        return run_network_fuzz(config)
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="fuzzing time per server (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rates: dict[str, float] = {}
    print(f"{'server':<10} {'steps':>7} {'packets':>8} {'checks':>7} {'seconds':>8} {'packets/s':>10} {'steps/s':>8}  findings")
    for peer in ("reference", "gearmand"):
        try:
            report = measure(peer, args.seconds, args.seed)
        except LaunchError as exc:
            print(f"{peer:<10} cannot start: {exc}", file=sys.stderr)
            return 2
        rate = report.packets_sent / report.elapsed if report.elapsed else 0.0
        rates[peer] = rate
        kinds = ", ".join(f"{k} {v}" for k, v in report.as_data()["summary"].items() if v) or "none"
        print(
            f"{peer:<10} {report.steps:>7} {report.packets_sent:>8} {report.checks:>7} {report.elapsed:>8.1f} "
            f"{rate:>10.0f} {report.steps / report.elapsed:>8.0f}  {kinds}"
        )
    if rates.get("gearmand"):
        print(f"ratio reference/gearmand (packets/s): {rates['reference'] / rates['gearmand']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
