"""Every problem the policy loader can report carries `file:line` — one row per kind of problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from rotator.errors import InputError
from rotator.settings import config, policies

SETTINGS = config.Settings.model_validate(
    {
        "providers": {
            "bw": {"type": "brandwave", "base_url": "http://x", "grants": [{"secret_id": "prod/*"}, {"path": "*"}]}
        },
        "stores": {"aws": {"type": "aws"}, "vault": {"type": "vault"}},
    }
)

GOOD = """\
policies:
  quarterly:
    max_age: 90d
    window: "Mon-Fri 02:00-05:00 UTC"
    cutover: {min_soak: 1h, max_wait: 48h, on_timeout: hold}
secrets:
  - name: app
    provider: bw
    store: {aws: {secret_id: prod/app}}
    policy: quarterly
"""

OTHER = """\
policies:
  quarterly:
    max_age: 30d
secrets:
  - name: other
    provider: bw
    store: {aws: {secret_id: prod/other}}
    policy: quarterly
"""

CASES = [
    # (id, text of b.yaml (a.yaml is GOOD), the file named, line, fragment)
    (
        "unknown store instance",
        GOOD.replace("secret_id: prod/app}", "secret_id: prod/app, instance: nope}"),
        "p",
        9,
        "unknown aws store 'nope'",
    ),
    (
        "store of the wrong type",
        GOOD.replace("{aws: {secret_id: prod/app}}", "{vault: {path: app, instance: aws}}"),
        "p",
        9,
        "unknown vault store 'aws'",
    ),
    ("no store named", GOOD.replace("{aws: {secret_id: prod/app}}", "{}"), "p", 9, "name exactly one store"),
    (
        "two stores named",
        GOOD.replace("{aws: {secret_id: prod/app}}", "{aws: {secret_id: a}, vault: {path: b}}"),
        "p",
        9,
        "name exactly one store",
    ),
    (
        "vault path with a mount",
        GOOD.replace("{aws: {secret_id: prod/app}}", "{vault: {path: 'secret:x'}}"),
        "p",
        9,
        "KV path",
    ),
    ("unknown provider", GOOD.replace("provider: bw", "provider: nope"), "p", 8, "unknown provider 'nope'"),
    ("unknown policy", GOOD.replace("policy: quarterly", "policy: weekly"), "p", 10, "unknown policy 'weekly'"),
    ("bad duration", GOOD.replace("max_age: 90d", "max_age: 90x"), "p", 3, "bad duration"),
    ("bad window", GOOD.replace("Mon-Fri 02:00-05:00 UTC", "Mon-Fri 02:00"), "p", 4, ""),
    ("unknown field", GOOD.replace("    max_age: 90d\n", "    max_age: 90d\n    colour: red\n"), "p", 4, "colour"),
    ("missing field", GOOD.replace("    provider: bw\n", ""), "p", 7, "provider"),
    ("duplicate key", GOOD.replace("    max_age: 90d\n", "    max_age: 90d\n    max_age: 30d\n"), "p", 4, "duplicate"),
    ("unparsable YAML", "policies: {a: [unclosed\n", "p", 2, ""),
    (
        "policy defined twice across files",
        OTHER.replace("name: other", "name: o2"),
        "q",
        2,
        "policy 'quarterly' already",
    ),
    (
        "secret defined twice across files",
        OTHER.replace("name: other", "name: app").replace("quarterly", "q2"),
        "q",
        5,
        "secret 'app' already defined",
    ),
]


@pytest.mark.parametrize(("text", "file", "line", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_loader_error_names_file_and_line(tmp_path: Path, text: str, file: str, line: int, fragment: str) -> None:
    """Each problem is reported as `<file>:<line>: …` pointing at the offending line."""
    if file == "q":  # a problem that needs a second file beside a good one
        (tmp_path / "p.yaml").write_text(GOOD)
    (tmp_path / f"{file}.yaml").write_text(text)
    with pytest.raises(InputError) as exc:
        policies.load_dir(tmp_path, SETTINGS)
    where = f"{tmp_path / f'{file}.yaml'}:{line}:"
    assert any(p.startswith(where) and fragment in p for p in exc.value.problems), exc.value.problems
