"""The README and docs/ cite only what is there: every relative link names a file of the
repository, and every #anchor a heading of that file."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
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
