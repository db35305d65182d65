"""Plant a fixed set of bugs, one at a time, and report which ones the tests fail to catch.

Mutation testing proper is mutmut (`make mutation`, mutation/mutate.py). This set keeps the bugs
mutmut's operators cannot make: SQL text inside strings (`now()` for `clock_timestamp()`), a whole
statement replaced or skipped, a call replaced by a constructor, modules outside its groups
(policies.py's messages, log.py's redactor, lifecycle.py). Each mutant is a small textual change to
one product file — a broken promise someone could plausibly write — with the tests that should
notice it. The mutant runs in a throwaway copy of the repository, so the working tree is never
touched. `make mutation-planted` runs them all; `python mutation/run.py NAME…` runs some;
`--all-tests` runs the whole suite per mutant.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UNIT = "tests/unit"
ENGINE = "tests/integration/test_engine.py"
GATE = "tests/integration/test_gate_signals.py"
FENCING = "tests/integration/test_fencing.py"


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTANTS = [
    Mutant(
        "deadline-revoke-never-revokes",
        "rotator/engine/api_steps.py",
        'if verdict.open or (verdict.timed_out and cutover.on_timeout == "revoke"):',
        "if verdict.open:",
        (GATE, ENGINE),
    ),
    Mutant(
        "scopes-not-compared",
        "rotator/engine/api_steps.py",
        "if old is not None and old.scopes != new.scopes:",
        "if False:",
        ("tests/integration/test_boltly_scopes.py",),
    ),
    Mutant(
        "unknown-store-without-line",
        "rotator/settings/policy_checks.py",
        "f\"{at('store')}: secret {spec.name!r} names unknown {kind} store",
        'f"secret {spec.name!r} names unknown {kind} store',
        (UNIT,),
    ),
    Mutant(
        "policy-twice-without-line",
        "rotator/settings/policies.py",
        'f"{path}:{line}: policy {name!r} already defined',
        'f"{path}: policy {name!r} already defined',
        (UNIT,),
    ),
    Mutant(
        "verify-does-not-probe",
        "rotator/engine/api_steps.py",
        "        t.provider.probe(key=old.api_key)\n    except KeyRefused:",
        "        raise KeyRefused('skipped')\n    except KeyRefused:",
        (ENGINE,),
    ),
    Mutant(
        "gate-ignored",
        "rotator/engine/api_steps.py",
        "    verdict = gate.evaluate(cutover, rot, engine.clock(), available)\n",
        "    verdict = gate.Verdict(open=True)\n",
        (GATE,),
    ),
    Mutant(
        "live-local-lease-taken",
        "rotator/state/identity.py",
        "    return _start_time(int(pid)) != started",
        "    return True",
        (UNIT,),
    ),
    Mutant(
        "unavailable-counts-as-passed",
        "rotator/engine/gate.py",
        "if all(s.status is Status.PASSED for s in signals):",
        "if all(s.status is not Status.WAITING for s in signals):",
        (UNIT, GATE),
    ),
    Mutant(
        "min-soak-ignored",
        "rotator/engine/gate.py",
        "        if now >= due:\n",
        "        if True:\n",
        (UNIT, GATE),
    ),
    Mutant(
        "confirm-on-any-2xx",
        "rotator/engine/gate_signals.py",
        "    text = answer.strip()\n",
        "    return True\n",
        (GATE,),
    ),
    Mutant(
        "failure-after-promotion-rolls-back",
        "rotator/lifecycle.py",
        "    return state in BEFORE_PROMOTION",
        "    return state is not S.VERIFYING",
        (UNIT, ENGINE, GATE),
    ),
    Mutant(
        "rollback-revokes-the-old-key",
        "rotator/engine/api_steps.py",
        "revoked = {rot.new_key_id} if rot.new_key_id else set()",
        "revoked = {rot.old_key_id} if rot.old_key_id else set()",
        (ENGINE,),
    ),
    Mutant(
        "promote-ignores-a-foreign-write",
        "rotator/stores/aws.py",
        "        if current != expected_current:\n",
        "        if False:\n",
        ("tests/integration/test_store_contract.py",),
    ),
    Mutant(
        "redactor-off",
        "rotator/log.py",
        "    return {k: _redact_value(v) for k, v in event_dict.items()}",
        "    return event_dict",
        (UNIT,),
    ),
    Mutant(
        "create-retried-blindly",
        "rotator/engine/api_steps.py",
        "    if rot.create_started_at is not None:\n        # an earlier create",
        "    if False:\n        # an earlier create",
        (ENGINE,),
    ),
    Mutant(
        "fence-judged-at-transaction-start",
        "rotator/state/leases.py",
        "extract(epoch FROM expires_at - clock_timestamp())",
        "extract(epoch FROM expires_at - now())",
        (FENCING,),
    ),
    Mutant(
        "renewal-counted-from-transaction-start",
        "rotator/state/leases.py",
        "SET expires_at = clock_timestamp() + :ttl",
        "SET expires_at = now() + :ttl",
        (FENCING,),
    ),
    Mutant(
        "side-effect-trusts-its-write",
        "rotator/engine/journal.py",
        "        self.flush(rot)\n        self.db.check_fence(self.fence)",
        "        if not self.flush(rot):\n            self.db.check_fence(self.fence)",
        (FENCING,),
    ),
]


def run(mutant: Mutant, *, all_tests: bool, only: str | None = None) -> tuple[bool, float]:
    """True when the tests failed (the mutant was killed)."""
    with tempfile.TemporaryDirectory(prefix="rotator-mutant-") as tmp:
        copy = Path(tmp) / "repo"
        shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".venv", ".git", "*.db", "__pycache__", ".*cache"))
        target = copy / mutant.file
        text = target.read_text()
        if text.count(mutant.old) != 1:
            raise SystemExit(f"{mutant.name}: the text to change is not found exactly once in {mutant.file}")
        target.write_text(text.replace(mutant.old, mutant.new))
        tests = ["tests"] if all_tests else list(mutant.tests)
        if only:
            tests += ["-k", only]
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
            cwd=copy,
            env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin", "HOME": tmp},
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode not in (0, 1):
            # 5: -k selected nothing; 2-4: the tests could not run. Neither says the mutant was caught.
            tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
            raise SystemExit(f"{mutant.name}: pytest exited {done.returncode} without a verdict: {tail}")
        return done.returncode == 1, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--all-tests", action="store_true", help="run the whole suite against each mutant")
    parser.add_argument("-k", dest="only", help="only the tests pytest -k selects (to see which test kills it)")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if not args.names or m.name in args.names]
    survivors = []
    for mutant in chosen:
        killed, seconds = run(mutant, all_tests=args.all_tests, only=args.only)
        print(f"{'killed ' if killed else 'SURVIVED'}  {mutant.name:<40} {seconds:6.1f} s", flush=True)
        if not killed:
            survivors.append(mutant.name)
    print(f"kill rate: {len(chosen) - len(survivors)}/{len(chosen)}")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
