"""Mutation testing of the reference server: how many planted bugs does `gearspec test` catch?

    python scripts/mutation.py --sample 60 --seed 1 -j 4     # a sampled run: minutes
    python scripts/mutation.py --list                        # every mutant, one per line
    python scripts/mutation.py --only 'broker.py:Broker._take:*'   # mutants whose ID matches
    python scripts/mutation.py                               # all of them (about an hour)

A small seeded AST mutator (no third-party tool) plants one mutant at a time in
reference/broker.py, reference/server.py or reference/store.py: a flipped comparison, a
swapped and/or, a negated condition, a constant off by one, a True/False swapped, an
arithmetic operator swapped, a dropped statement. Each mutant goes into a temporary copy of
the package (the working tree is never touched); the mutated reference server is started
with a sqlite queue (so durability cases can restart it), --job-retries 5 and GEARSPEC_PURE_PYTHON=1 (so its
Python framing path, not the C one, serves), and the whole suite runs against it in-process
with the reference profile, strict. A mutant that survives that plaintext run meets a second
one: the same mutant served over TLS with client certificates and the suite's ACL, against
the `tls/*` cases with the four ACL identities (certificates made for the run with trustme;
without trustme this phase is skipped, and said so). The mutant is killed when any case counts
against it, when a case the clean copy passes or grades non-strict ends otherwise, when the
server cannot start, or when the run outlives --mutant-timeout; else it survives. Mutants listed as equivalent or unobservable from the wire in docs/conformance.md
("Equivalent and unobservable mutants") are left out of the score.

A mutant's ID names its file, enclosing function, operator and the mutated source, e.g.
`broker.py:Broker._take:Lt->GtE:len(queue) < limit`, so it survives unrelated edits.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import random
import re
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = ("broker.py", "server.py", "store.py")
DOCS = ROOT / "docs" / "conformance.md"
EQUIVALENT_HEADING = "### Equivalent and unobservable mutants"

_FLIP: dict[type, type] = {
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt,
    ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}
_BOUNDARY: dict[type, type] = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt}
_ARITH: dict[type, type] = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult}
_BOOL: dict[type, type] = {ast.And: ast.Or, ast.Or: ast.And}
_QUIET_CALLS = re.compile(r"^(log|logging)\.")  # logging is not on the wire


@dataclass(frozen=True)
class Mutant:
    id: str
    file: str
    index: int  # position among the file's mutation points (ast.walk order)


def _snippet(node: ast.AST) -> str:
    text = ast.unparse(node).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


class _Points(ast.NodeVisitor):
    """Every mutation point of a module, in a fixed order: (kind, node, qualname)."""

    def __init__(self) -> None:
        self.points: list[tuple[str, ast.AST, str]] = []
        self.scope: list[str] = []

    def _in(self, node: ast.AST, name: str) -> None:
        self.scope.append(name)
        self.generic_visit(node)
        self.scope.pop()

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._in(node, node.name)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._in(node, node.name)

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def add(self, kind: str, node: ast.AST) -> None:
        self.points.append((kind, node, ".".join(self.scope) or "<module>"))

    def visit_Compare(self, node: ast.Compare) -> None:
        for op in node.ops:
            self.add(f"{type(op).__name__}->{_FLIP[type(op)].__name__}", node)
            if type(op) in _BOUNDARY:
                self.add(f"{type(op).__name__}->{_BOUNDARY[type(op)].__name__}", node)
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        self.add(f"{type(node.op).__name__}->{_BOOL[type(node.op)].__name__}", node)
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if type(node.op) in _ARITH:
            self.add(f"{type(node.op).__name__}->{_ARITH[type(node.op)].__name__}", node)
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Not):
            self.add("drop-not", node)
        self.generic_visit(node)

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.add("negate-if", node)
            self.generic_visit(node)

    def visit_While(self, node: ast.While) -> None:
        self.add("negate-while", node)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, bool):
            self.add("flip-bool", node)
        elif isinstance(node.value, int):
            self.add("plus-one", node)
            if node.value:
                self.add("minus-one", node)

    def visit_Expr(self, node: ast.Expr) -> None:
        if isinstance(node.value, ast.Constant):
            return  # a docstring
        if not _QUIET_CALLS.match(ast.unparse(node.value)):
            self.add("drop-statement", node)
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        if self.scope and not any(isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets):
            self.add("drop-statement", node)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.add("drop-statement", node)
        self.generic_visit(node)


def _is_type_checking(test: ast.expr) -> bool:
    return isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"


def _points(tree: ast.AST) -> list[tuple[str, ast.AST, str]]:
    visitor = _Points()
    visitor.visit(tree)
    return visitor.points


def all_mutants() -> list[Mutant]:
    out = []
    for name in FILES:
        seen: dict[str, int] = {}
        for index, (kind, node, scope) in enumerate(_points(ast.parse((ROOT / "reference" / name).read_text()))):
            base = f"{name}:{scope}:{kind}:{_snippet(node)}"
            seen[base] = seen.get(base, 0) + 1
            out.append(Mutant(base if seen[base] == 1 else f"{base}#{seen[base]}", name, index))
    return out


def mutate(source: str, index: int) -> str:
    """The module source with mutation point `index` applied."""
    tree = ast.parse(source)
    kind, target, _ = _points(tree)[index]
    if kind == "drop-statement":
        replacement: ast.AST = ast.Pass()
        ast.copy_location(replacement, target)
        _replace(tree, target, replacement)
    elif kind in ("negate-if", "negate-while"):
        assert isinstance(target, (ast.If, ast.While))
        target.test = ast.UnaryOp(ast.Not(), target.test)
    elif kind == "drop-not":
        assert isinstance(target, ast.UnaryOp)
        _replace(tree, target, target.operand)
    elif kind == "flip-bool":
        assert isinstance(target, ast.Constant)
        target.value = not target.value
    elif kind in ("plus-one", "minus-one"):
        assert isinstance(target, ast.Constant)
        target.value += 1 if kind == "plus-one" else -1
    else:
        old, new = kind.split("->")
        if isinstance(target, ast.Compare):
            position = next(i for i, op in enumerate(target.ops) if type(op).__name__ == old)
            target.ops[position] = getattr(ast, new)()
        elif isinstance(target, ast.BoolOp):
            target.op = getattr(ast, new)()
        elif isinstance(target, ast.BinOp):
            target.op = getattr(ast, new)()
    return ast.unparse(ast.fix_missing_locations(tree))


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
                return
            if isinstance(value, list) and any(v is old for v in value):
                value[value.index(next(v for v in value if v is old))] = new
                return
    raise ValueError("mutation point not found")


def equivalent_ids() -> dict[str, str]:
    """Mutants listed in docs/conformance.md as equivalent or unobservable: ID glob -> reason.

    A row's first cell is a mutant ID or a glob of IDs (fnmatch: `*`, `?`), in backticks.
    """
    text = DOCS.read_text()
    if EQUIVALENT_HEADING not in text:
        return {}
    section = text.split(EQUIVALENT_HEADING, 1)[1].split("\n#", 1)[0]
    found = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].startswith("`") and cells[0].endswith("`"):
            found[cells[0].strip("`")] = cells[1]
    return found


# -- running the suite against one mutant ---------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA, the server's certificate, the ACL identities and the suite's ACL file."""

    ca: Path
    server: Path
    identities: Path  # ROLE.pem for each ACL role, the layout of --tls-acl-identities
    acl: Path

    @classmethod
    def make(cls, folder: Path) -> TlsFiles | None:
        """Made with trustme (a test dependency); None when it is not installed."""
        try:
            import trustme
        except ImportError:
            return None
        from gearspec.conformance.tls import ACL_ROLES, suite_acl

        ca = trustme.CA()
        files = cls(folder / "ca.pem", folder / "server.pem", folder / "identities", folder / "acl.ini")
        ca.cert_pem.write_to_path(str(files.ca))
        ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(files.server))
        files.identities.mkdir()
        for role in ACL_ROLES:
            issued = ca.issue_cert(f"gearspec-{role}.invalid", common_name=f"gearspec-{role}")
            issued.private_key_and_cert_chain_pem.write_to_path(str(files.identities / f"{role}.pem"))
        files.acl.write_text(suite_acl())
        return files


class _Killed(Exception):
    pass


def _copy_tree(workdir: Path) -> Path:
    """A copy of the gearspec package with reference/ as gearspec.reference; returns the
    folder to put on PYTHONPATH."""
    site = workdir / "site"
    shutil.copytree(ROOT / "gearspec", site / "gearspec", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "reference", site / "gearspec" / "reference", ignore=shutil.ignore_patterns("__pycache__"))
    return site


def run_mutant(
    site: Path, mutant: Mutant | None, jobs: int, limit: float, wait: float, baseline: dict[str, str] | None = None,
    tls: TlsFiles | None = None, baseline_tls: dict[str, str] | None = None,
) -> tuple[bool, str]:
    """(killed, how): plant `mutant` (None: the clean copy), start the server, run the suite.

    `baseline`: the outcome of each case the clean copy passes or grades non-strict; one of
    them ending otherwise kills the mutant too: a feature it broke entirely would otherwise
    only turn a pass (or a known non-strict answer) into "unsupported". For the clean copy,
    `baseline` is filled in. `tls`: when given, a mutant the plaintext run does not kill is run
    again over TLS with the suite's ACL, against the `tls/*` cases (`baseline_tls`: as
    `baseline`, for that run).
    """
    module = site / "gearspec" / "reference" / (mutant.file if mutant else "broker.py")
    original = (ROOT / "reference" / module.name).read_text()
    module.write_text(mutate(original, mutant.index) if mutant else ast.unparse(ast.parse(original)))
    # A bounded --job-retries, so the give-up path (WORK_FAIL once the retries are used up) runs
    # too; disconnect/worker/6 outlives it.
    argv = [sys.executable, "-m", "gearspec", "serve", "--host", "{host}", "--port", "{port}", "--job-retries", "5",
            "--queue", "sqlite:{dir}/queue.db"]
    # Pure Python: the mutants' runs then do not depend on whether the C decoder core was
    # built (the server frames through gearspec's Decoder either way).
    env = {"PYTHONPATH": str(site), "GEARSPEC_PURE_PYTHON": "1"}
    try:
        killed, how = _run_suite(argv, env, jobs, limit, wait, baseline)
        if killed or tls is None:
            return killed, how
        tls_argv = [*argv[:-2], "--queue", "memory", "--tls-cert", str(tls.server), "--tls-ca", str(tls.ca),
                    "--acl", str(tls.acl)]
        killed, how = _run_suite(tls_argv, env, jobs, limit, wait, baseline_tls, tls)
        return killed, (f"over TLS with the ACL: {how}" if killed else how)
    finally:
        module.write_text(original)  # after the run: restarts (durability cases) load the mutant too


def _run_suite(
    argv: list[str], env: dict[str, str], jobs: int, limit: float, wait: float, baseline: dict[str, str] | None,
    tls: TlsFiles | None = None,
) -> tuple[bool, str]:
    from gearspec.conformance.harness import Outcome
    from gearspec.conformance.lifecycle import TargetControl
    from gearspec.conformance.registry import all_cases
    from gearspec.conformance.runner import Result, RunConfig, builtin_profiles, load_expectations, run_cases
    from gearspec.conformance.servers import LaunchError, Target, start_local
    from gearspec.conformance.tls import load_tls

    try:
        server = start_local(argv, name="mutant", env=env, timeout=15)
    except LaunchError as exc:
        return True, f"the server does not start: {str(exc).splitlines()[0]}"
    settings = None
    if tls is not None:  # the TLS and ACL cases connect as the suite's ACL identities
        client = str(tls.identities / "client.pem")
        settings = load_tls(str(tls.ca), client, None, str(tls.identities))
    # Durability cases restart the mutant through this; the cases connect to its target.
    control = TargetControl.for_launched(
        Target(server.host, server.port, server.log, kind="local", server=server, tls=settings)
    )
    config = RunConfig(
        wait=wait, timeout=5.0, seed="mutation", strict=True, durable=True, destructive=True,
        expectations=load_expectations(builtin_profiles()["reference"]),
    )
    outcome: list[tuple[bool, str]] = []

    # The clean copy's run fills `baseline` (empty then); a mutant's run compares with it.
    comparing = baseline is not None and bool(baseline)

    def first_failure(result: Result) -> None:
        if result.counts_against(strict=True):
            raise _Killed(f"{result.case.id}: {result.message[:120]}")
        if baseline is None:
            return
        if not comparing:
            if result.outcome in (Outcome.PASS, Outcome.NON_STRICT):
                baseline[result.case.id] = result.outcome.value
            return
        was = baseline.get(result.case.id)
        if was is not None and result.outcome.value != was:
            raise _Killed(f"{result.case.id}: {was} on the clean copy, here {result.outcome.value}: {result.message[:100]}")

    def run() -> None:
        try:
            # Destructive cases too (they disturb gearmand, not the reference server), but not
            # the one that asks the server to shut down.
            cases = [c for c in all_cases() if (tls is None or c.id.startswith("tls/")) and "shutdown" not in c.admin]
            results = run_cases(cases, control.target, config, jobs=jobs, on_result=first_failure, control=control)
            if control.stopped is not None:
                how = control.stopped.how.splitlines()[0]
                outcome.append((True, f"the server died during {', '.join(control.stopped.case_ids)}: {how}"))
            elif len(results) < len(cases):
                outcome.append((True, f"only {len(results)} of {len(cases)} cases ran"))
            else:
                outcome.append((False, "every case passed"))
        except _Killed as killed:
            outcome.append((True, str(killed)))
        except Exception as exc:  # the suite itself broke on this mutant: counts as killed, visibly
            outcome.append((True, f"suite error: {type(exc).__name__}: {exc}"))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    server.stop()
    if not outcome:
        return True, f"the run outlived {limit:g} s"
    return outcome[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=int, metavar="N", help="run N mutants drawn with --seed (default: all)")
    parser.add_argument("--seed", default="1", help="seed of the sample (default %(default)s)")
    parser.add_argument("--only", action="append", default=[], metavar="GLOB", help="mutants whose ID matches (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutants (after --only/--sample) and exit")
    parser.add_argument("-j", "--jobs", type=int, default=4, help="cases in parallel within one mutant's run")
    parser.add_argument("--mutant-timeout", type=float, default=60.0, metavar="S", help="a mutant's run may take at most S seconds")
    parser.add_argument("--wait", type=float, default=1.0, metavar="S", help="the suite's --wait (default %(default)s)")
    args = parser.parse_args(argv)

    mutants = all_mutants()
    if args.only:
        mutants = [m for m in mutants if any(fnmatch.fnmatchcase(m.id, g) for g in args.only)]
    globs = equivalent_ids()

    def why_equivalent(mutant: Mutant) -> str | None:
        return next((reason for glob, reason in globs.items() if fnmatch.fnmatchcase(mutant.id, glob)), None)

    if args.sample is not None and args.sample < len(mutants):
        mutants = random.Random(args.seed).sample(mutants, args.sample)
    if args.list:
        for m in mutants:
            print(m.id + ("   [equivalent]" if why_equivalent(m) else ""))
        print(f"{len(mutants)} mutants")
        return 0
    if not mutants:
        print("mutation: no mutant matches", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="gearspec-mutation-") as tmp:
        site = _copy_tree(Path(tmp))
        (Path(tmp) / "tls").mkdir()
        tls = TlsFiles.make(Path(tmp) / "tls")
        if tls is None:
            print("mutation: trustme is not installed: no TLS and ACL run (pip install trustme)", file=sys.stderr)
        baseline: dict[str, str] = {}
        baseline_tls: dict[str, str] = {}
        killed, how = run_mutant(site, None, args.jobs, args.mutant_timeout, args.wait, baseline, tls, baseline_tls)
        if killed:
            print(f"mutation: the unmutated copy fails the suite ({how}); fix that first", file=sys.stderr)
            return 2
        survivors: list[Mutant] = []
        counted = killed_count = 0
        started = time.monotonic()
        for number, mutant in enumerate(mutants, start=1):
            reason = why_equivalent(mutant)
            if reason is not None:
                print(f"[{number}/{len(mutants)}] equivalent {mutant.id}  ({reason})", flush=True)
                continue
            killed, how = run_mutant(site, mutant, args.jobs, args.mutant_timeout, args.wait, baseline, tls, baseline_tls)
            counted += 1
            killed_count += killed
            if not killed:
                survivors.append(mutant)
            print(f"[{number}/{len(mutants)}] {'killed  ' if killed else 'SURVIVED'} {mutant.id}  ({how})", flush=True)
    score = 100.0 * killed_count / counted if counted else 100.0
    print(f"\nmutation score: {killed_count}/{counted} non-equivalent mutants killed = {score:.1f}% "
          f"({len(mutants) - counted} equivalent left out; {time.monotonic() - started:.0f} s)")
    if survivors:
        print("survivors:")
        for m in survivors:
            print(f"  {m.id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
