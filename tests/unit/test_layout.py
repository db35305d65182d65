"""The package stays readable: no module of rotator/ over 400 lines (a module that grows past it
holds two things; split it by what they are), and the top level holds rooms, not a heap."""

from __future__ import annotations

from pathlib import Path

ROTATOR = Path(__file__).resolve().parents[2] / "rotator"
MOST_LINES = 400
TOP_LEVEL = {
    "__init__.py",
    "__main__.py",
    "app.py",
    "credentials.py",
    "durations.py",
    "errors.py",
    "keys.py",
    "lifecycle.py",
    "log.py",
    "notify.py",
}


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(path.relative_to(ROTATOR)): n
        for path in ROTATOR.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MOST_LINES
    }
    assert not long, long


def test_a_new_top_level_module_is_a_decision_not_an_accident() -> None:
    """A module beside these goes into the room it belongs to (docs/development.md's map)."""
    assert {p.name for p in ROTATOR.glob("*.py")} == TOP_LEVEL
