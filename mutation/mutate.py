"""Mutation testing of the core with mutmut 3, one module group at a time, and a kill rate per group.

mutmut copies `rotator/` into `mutants/` with every mutation of the modules `[tool.mutmut]` names
(pyproject.toml), runs the unit and integration tests once to learn which tests call which
function, and then, per mutant, only the tests that call the mutated function (the e2e tests run
the CLI as a separate process and are not used). A group is a set of mutmut's mutant names
(`module.function__mutmut_N`); the lease/fence/claim code is `state/leases.py` with the process
identity and the clock it trusts, the outbox is `state/outbox.py`'s Outbox with `notify.py`.

    python mutation/mutate.py                 a sample of every group, then the table
    python mutation/mutate.py engine lease    some groups
    python mutation/mutate.py --sample 0      every mutant of the groups (hours on 2 cores)
    python mutation/mutate.py --report        the table from the last runs, running nothing
    python mutation/mutate.py --show NAME     one mutant's diff (mutmut show)

The engine alone has some 2,000 mutants, and a surviving one runs every test that calls its function
(a minute or more), so by default each group runs a fixed sample of its mutants (`--sample`, the same
names every time: the first N by a hash of the name), and the rate is the sample's.

A survivor is either killed by a test or written down in mutation/equivalent.txt (`NAME  why`): an
equivalent mutant leaves the count, and the table lists it apart with its reason. mutmut numbers a
function's mutants in order, so an edit of the function renumbers them: the report names entries
of equivalent.txt that no longer exist. `mutation/run.py` keeps the hand-planted bugs mutmut cannot
make (SQL text inside strings, whole statements).
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"
EQUIVALENT = Path(__file__).resolve().parent / "equivalent.txt"


@dataclass(frozen=True)
class Group:
    name: str
    target: float
    patterns: tuple[str, ...]


GROUPS = [
    Group("engine", 0.90, ("rotator.engine.*",)),
    Group(
        "lease",
        0.90,
        (
            "rotator.state.leases.*",
            "rotator.state.identity.*",
            "rotator.state.proofs.*",
            "rotator.state.clock.*",
            "rotator.state.bounds.*",
            "rotator.state.connection.x_db_now__mutmut_*",
        ),
    ),
    Group(
        "ratelimit", 0.80, ("rotator.runtime.ratelimit.*", "rotator.runtime.governor.*", "rotator.runtime.sharing.*")
    ),
    Group("windows", 0.80, ("rotator.policy.windows.*",)),
    Group("schedule", 0.80, ("rotator.daemon.schedule.*",)),
    Group(
        "grants-hooks",
        0.80,
        (
            "rotator.settings.models.xǁHooksSettingsǁ*",
            "rotator.plugin.settings.xǁGrantǁ*",
            "rotator.plugin.settings.*granted*",
            "rotator.stores.aws_settings.*granted*",
            "rotator.stores.aws_settings.x_names_of*",
            "rotator.settings.policy_checks.x_check_secret*",
            "rotator.settings.policy_checks.x__check_hooks*",
        ),
    ),
    Group("leaked", 0.80, ("rotator.operations.leaked.*",)),
    Group("outbox", 0.80, ("rotator.notify.*", "rotator.state.outbox.xǁOutboxǁ*")),
    Group("http", 0.80, ("rotator.plugin.http.*",)),
    Group("stores", 0.80, ("rotator.stores.aws.*", "rotator.stores.vault.*", "rotator.plugin.store.*")),
]
BY_NAME = {g.name: g for g in GROUPS}
KILLED = {1, 3, 24, -24, 36, 152, 255}  # a failing test, pytest's internal error, a timeout (SIGXCPU)


def mutmut(*args: str) -> int:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([str(bin_dir / "mutmut"), *args], cwd=ROOT, env=env, check=False).returncode


GENERATE = (
    "import os, mutmut.__main__ as m; m.set_mutant_under_test('mutant_generation'); "
    "os.makedirs('mutants', exist_ok=True); m.copy_src_dir(); m.copy_also_copy_files(); "
    "m.setup_source_paths(); m.create_mutants(2)"
)


def generate() -> None:
    """Write mutants/ (every mutant of the modules pyproject.toml names) without running any test."""
    subprocess.run([sys.executable, "-c", GENERATE], cwd=ROOT, check=True, capture_output=True)


def sample(group: Group, codes: dict[str, int | None], size: int) -> list[str]:
    names = sorted(members(group, codes), key=lambda n: hashlib.sha256(n.encode()).hexdigest())
    return names if size <= 0 else names[:size]


def results() -> dict[str, int | None]:
    """Every mutant's last exit code, from mutmut's files (None: not run yet)."""
    found: dict[str, int | None] = {}
    for meta in MUTANTS.rglob("*.meta"):
        found.update(json.loads(meta.read_text())["exit_code_by_key"])
    return found


def equivalents() -> dict[str, str]:
    if not EQUIVALENT.exists():
        return {}
    out = {}
    for line in EQUIVALENT.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, why = line.strip().partition(" ")
            out[name] = why.strip()
    return out


def members(group: Group, codes: dict[str, int | None]) -> dict[str, int | None]:
    return {k: v for k, v in codes.items() if any(fnmatch.fnmatchcase(k, p) for p in group.patterns)}


def report(groups: list[Group], *, verbose: bool = True, only: set[str] | None = None) -> bool:
    """The table; over the mutants `only` names when given (this run's sample), else every one run."""
    every, equivalent = results(), equivalents()
    codes = {k: v for k, v in every.items() if k in only} if only else every
    ok = True
    print(f"\n{'group':<14} {'killed':>7} {'of':>5} {'rate':>7} {'target':>7}  (equivalent, not run)")
    for group in groups:
        mine = members(group, codes)
        counted = {k: v for k, v in mine.items() if k not in equivalent and v is not None}
        killed = sum(1 for v in counted.values() if v in KILLED)
        rate = killed / len(counted) if counted else 0.0
        ok &= rate >= group.target
        skipped = sum(1 for v in mine.values() if v is None)
        eq = sum(1 for k in mine if k in equivalent)
        mark = "" if rate >= group.target else "  BELOW TARGET"
        print(
            f"{group.name:<14} {killed:>7} {len(counted):>5} {rate:>7.1%} {group.target:>7.0%}  ({eq}, {skipped}){mark}"
        )
    if verbose:
        for group in groups:
            mine = members(group, codes)
            survivors = sorted(k for k, v in mine.items() if v is not None and v not in KILLED and k not in equivalent)
            if survivors:
                print(f"\nsurvivors of {group.name} ({len(survivors)}; `python mutation/mutate.py --show NAME`):")
                for name in survivors:
                    print(f"  {name}  [{'no test calls it' if mine[name] in (5, 33) else 'survived'}]")
            known = sorted(k for k in mine if k in equivalent)
            if known:
                print(f"\nequivalent in {group.name} (mutation/equivalent.txt):")
                for name in known:
                    print(f"  {name}  {equivalent[name]}")
    # against every mutant mutmut made, not this run's sample: an entry outside the sample still exists
    stale = sorted(set(equivalent) - set(every)) if every else []
    if stale:
        print("\nmutation/equivalent.txt names mutants that no longer exist (renumbered by an edit?):")
        for name in stale:
            print(f"  {name}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="*", help=f"groups to run (default: all): {', '.join(BY_NAME)}")
    parser.add_argument("--report", action="store_true", help="print the table of the last runs, run nothing")
    parser.add_argument("--show", metavar="NAME", help="print one mutant's diff")
    parser.add_argument("--max-children", default=os.environ.get("MUTATION_WORKERS", "2"))
    parser.add_argument("--sample", type=int, default=int(os.environ.get("MUTATION_SAMPLE", "100")))
    parser.add_argument("-q", "--quiet", action="store_true", help="the table only, not the survivors")
    args = parser.parse_args()
    if args.show:
        return mutmut("show", args.show)
    unknown = [g for g in args.groups if g not in BY_NAME]
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; groups: {', '.join(BY_NAME)}")
    chosen = [BY_NAME[g] for g in args.groups] or GROUPS
    names: list[str] = []
    if not args.report:
        generate()
        codes = results()
        for group in chosen:
            names += sample(group, codes, args.sample)
        print(f"== {', '.join(g.name for g in chosen)}: {len(names)} mutants", flush=True)
        # one run for all: mutmut runs the unmutated tests once first, and that takes minutes
        code = mutmut("run", "--max-children", str(args.max_children), *sorted(set(names)))
        if code != 0:
            print(f"mutmut run exited {code}", file=sys.stderr)
            return code
    return 0 if report(chosen, verbose=not args.quiet, only=set(names) if args.sample > 0 else None) else 1


if __name__ == "__main__":
    sys.exit(main())
