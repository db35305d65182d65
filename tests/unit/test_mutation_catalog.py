"""The hand-planted bugs (mutation/run.py) and the explained mutants (mutation/equivalent.txt) name
code that exists: a refactor that moves the code they name must move them too, or `make
mutation-planted` stops at the first stale one and the table counts nothing."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _planted() -> list:
    spec = importlib.util.spec_from_file_location("mutation_run", ROOT / "mutation" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it is being made
    spec.loader.exec_module(module)
    return list(module.MUTANTS)


def test_every_planted_bug_changes_text_found_exactly_once() -> None:
    stale = [
        f"{m.name}: {m.file}"
        for m in _planted()
        if not (ROOT / m.file).exists() or (ROOT / m.file).read_text().count(m.old) != 1
    ]
    assert not stale, stale
    for mutant in _planted():
        assert all((ROOT / t.split("::")[0]).exists() for t in mutant.tests), mutant.name


def test_every_explained_mutant_names_a_module_that_exists() -> None:
    for line in (ROOT / "mutation" / "equivalent.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name = line.split()[0]
        module = name.split(".x")[0]  # rotator.state.leases.xǁLeasesǁclaim_due__mutmut_55 → rotator.state.leases
        assert (ROOT / (module.replace(".", "/") + ".py")).exists(), name
