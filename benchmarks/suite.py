"""How long the conformance suite takes: the whole suite, per area, against local servers.

    python benchmarks/suite.py [--servers gearmand reference] [-j 1 4 8] [--repeat 1]

Starts each server on port 0 (gearmand single-threaded), runs every case with the server's
profile at each -j, and prints the wall time of the whole run and the summed case time per
area (what that area costs on one core), with the per-server ratio to gearmand measured in the
same run. Goal (issue 5): the whole suite against gearmand in under 10 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections import defaultdict

from gearspec.conformance.harness import Target
from gearspec.conformance.registry import all_cases
from gearspec.conformance.runner import RunConfig, builtin_profiles, load_expectations, run_cases
from gearspec.conformance.servers import server_available, start_server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", nargs="+", default=["gearmand", "reference"])
    parser.add_argument("-j", "--jobs", nargs="+", type=int, default=[1, 4, 8])
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs per setting")
    parser.add_argument("--wait", type=float, default=2.0)
    args = parser.parse_args()

    cases = all_cases()
    print(f"gearspec conformance suite: {len(cases)} cases; Python {platform.python_version()}; "
          f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} CPUs")
    walls: dict[tuple[str, int], float] = {}
    for name in args.servers:
        if not server_available(name):
            print(f"{name}: not installed, skipped", file=sys.stderr)
            continue
        profile = load_expectations(builtin_profiles()[name]) if name in builtin_profiles() else None
        for jobs in args.jobs:
            best = float("inf")
            per_area: dict[str, float] = defaultdict(float)
            failed = 0
            for _ in range(args.repeat):
                with start_server(name) as server:
                    config = RunConfig(wait=args.wait, seed="bench")
                    if profile is not None:
                        config.expectations = profile
                    started = time.perf_counter()
                    results = run_cases(cases, Target(server.host, server.port), config, jobs=jobs)
                    wall = time.perf_counter() - started
                if wall < best:
                    best = wall
                    per_area = defaultdict(float)
                    for r in results:
                        per_area[r.case.area] += r.duration
                    failed = sum(1 for r in results if r.counts_against(strict=False))
            walls[(name, jobs)] = best
            print(f"\n{name} -j {jobs}: {best:.2f} s wall for {len(cases)} cases ({failed} counted failures)")
            for area, spent in sorted(per_area.items(), key=lambda kv: -kv[1]):
                print(f"  {area:12} {spent:7.2f} s case time")
    if any(k[0] == "gearmand" for k in walls):
        print("\nwall time relative to gearmand at the same -j:")
        for (name, jobs), wall in sorted(walls.items()):
            base = walls.get(("gearmand", jobs))
            if base:
                print(f"  {name:10} -j {jobs}: {wall:6.2f} s  ({wall / base:.2f}x gearmand)")
        goal = min(v for (n, _), v in walls.items() if n == "gearmand")
        print(f"\ngoal: whole suite against gearmand < 10 s -> best {goal:.2f} s: {'met' if goal < 10 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
