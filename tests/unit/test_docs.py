"""The README and docs/ cite only what is there: every relative link names a file of the
repository, and every #anchor a heading of that file."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
DOCS = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"(?ms)^```.*?^```", "", path.read_text())  # a `# comment` in a code block is no heading
    return {slug(m.group(1)) for m in re.finditer(r"(?m)^#{1,6} (.+)$", text)}


def test_every_link_and_anchor_resolves() -> None:
    assert len(DOCS) >= 8
    broken = []
    for doc in DOCS:
        for target in LINK.findall(doc.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            file, _, anchor = target.partition("#")
            path = (doc.parent / file).resolve() if file else doc
            if not path.exists():
                broken.append(f"{doc.name}: {target} (no such file)")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                broken.append(f"{doc.name}: {target} (no such heading)")
    assert not broken, broken


def test_nothing_cites_documents_outside_the_repository() -> None:
    """The team's SPEC and the condensed vendor notes are not shipped; docs/providers.md is."""
    for doc in DOCS:
        prose = LINK.sub("]", doc.read_text())
        assert not re.search(r"\bSPEC\b|\bproviders\.md\b|\bseeds/", prose), doc.name


def test_the_settings_reference_is_generated_from_the_models() -> None:
    """docs/settings.md is what the settings models say today: a field added, renamed, given
    another default or left without a description fails here until the reference is regenerated."""
    from rotator.settings import reference as config_reference

    try:
        text = config_reference.render()
    except LookupError as exc:
        raise AssertionError(
            f"settings without a description: {', '.join(exc.args[0])}; give each a docstring "
            f"under the field, then run {config_reference.REGENERATE}"
        ) from None
    committed = config_reference.TARGET.read_text()
    assert text == committed, f"docs/settings.md is out of date: run {config_reference.REGENERATE}"


def test_the_settings_reference_names_every_setting_it_was_missing() -> None:
    """The settings the hand-written page left out are in the reference, each with its variable."""
    text = (ROOT / "docs" / "settings.md").read_text()
    for setting, variable in (
        ("engine.hold_interval", "ROTATOR_ENGINE__HOLD_INTERVAL"),
        ("engine.step_deadline", "ROTATOR_ENGINE__STEP_DEADLINE"),
        ("state.auto_upgrade", "ROTATOR_STATE__AUTO_UPGRADE"),
        ("stores.<name>.tags_per_second", "ROTATOR_STORES__<NAME>__TAGS_PER_SECOND"),
    ):
        row = next((line for line in text.splitlines() if line.startswith(f"| `{setting}` |")), None)
        assert row is not None and f"`{variable}`" in row, setting
    for page in ("README.md", "docs/configuration.md"):
        assert "settings.md)" in (ROOT / page).read_text(), f"{page} links the settings reference"


def test_a_setting_without_a_description_is_refused() -> None:
    """The generator names a field that has neither a description nor a docstring, and takes either."""
    from pydantic import BaseModel, Field

    from rotator.settings.reference import rows

    class Section(BaseModel):
        told: int = 1
        """Told by its docstring."""
        described: int = Field(default=2, description="Told by its description.")
        untold: int = 3

    missing: list[str] = []
    found = list(rows(Section, ["section"], frozenset(), missing))
    assert [row[4] for row in found] == ["Told by its docstring.", "Told by its description.", ""]
    assert missing == [f"{Section.__module__}.{Section.__qualname__}.untold"]
    assert found[0][3] == "`ROTATOR_SECTION__TOLD`"


def test_the_changelog_calls_out_every_schema_migration_since_0_1_0() -> None:
    """The Unreleased section of CHANGELOG.md, in Keep a Changelog's groups, names each migration
    the package ships after 0.1.0's baseline and the command that applies it: a new migration
    without a changelog line fails here."""
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "\n## Unreleased\n" in text, "CHANGELOG.md has an Unreleased section"
    unreleased = text.split("\n## Unreleased\n", 1)[1].split("\n## ", 1)[0]
    groups = set(re.findall(r"(?m)^### (\w+)", unreleased))
    assert {"Added", "Changed", "Fixed", "Security"} <= groups, groups
    shipped = sorted(p.name[:4] for p in (ROOT / "rotator" / "state" / "migrations" / "versions").glob("0*.py"))
    assert shipped[0] == "0001" and len(shipped) > 1
    missing = [revision for revision in shipped[1:] if not re.search(rf"\b{revision} \(", unreleased)]
    assert not missing, f"CHANGELOG.md does not call out migration(s) {missing} under Unreleased"
    assert "rotator db upgrade" in unreleased and "state.auto_upgrade" in unreleased
