from pathlib import Path

import pytest

from rotator.errors import InputError
from rotator.settings import config, policies

SETTINGS = config.Settings.model_validate(
    {"providers": {"bw": {"type": "brandwave", "base_url": "http://x", "grants": [{"secret_id": "prod/*"}]}}}
)

GOOD = """\
policies:
  quarterly:
    max_age: 90d
    window: "Mon-Fri 02:00-05:00 Europe/Berlin"
    jitter: 2h
    cutover: {min_soak: 1h, require: [consumers, old_key_idle], max_wait: 48h, on_timeout: hold}
secrets:
  - name: app
    provider: bw
    store: {aws: {secret_id: prod/app}}
    policy: quarterly
    access: [alice@example.com]
"""


def _load(tmp_path: Path, text: str, name: str = "p.yaml") -> policies.PolicySet:
    (tmp_path / name).write_text(text)
    return policies.load_dir(tmp_path, SETTINGS)


def _problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(InputError) as exc:
        _load(tmp_path, text)
    return exc.value.problems


def test_good_file_loads_with_builtin_incident_and_offboarding(tmp_path: Path) -> None:
    loaded = _load(tmp_path, GOOD)
    assert loaded.secret("app").policy == "quarterly"
    assert loaded.policies["quarterly"].max_age.days == 90
    assert {"incident", "offboarding", "quarterly"} <= set(loaded.policies)


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (GOOD.replace("max_age: 90d", "max_age: 90x"), 3, "bad duration '90x'"),
        (GOOD.replace("    jitter: 2h\n", "    jitter: 2h\n    colour: blue\n"), 6, "unknown field 'colour'"),
        (GOOD.replace("    jitter: 2h\n", "    jitter: 2h\n    jitter: 3h\n"), 6, "duplicate key"),
        (GOOD.replace("provider: bw", "provider: nope"), 9, "unknown provider 'nope'"),
        (GOOD.replace("policy: quarterly", "policy: weekly"), 11, "unknown policy 'weekly'"),
        (GOOD.replace("Europe/Berlin", "Mars/Olympus"), 4, "unknown time zone"),
        (GOOD.replace("on_timeout: hold", "on_timeout: shrug"), 6, "on_timeout"),
        (GOOD.replace("  - name: app\n", "  - nam: app\n"), 8, "unknown field 'nam'"),
        ("policies: {a: [unclosed\n", 2, ""),
    ],
)
def test_each_problem_names_file_and_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    """Every kind of malformed policy file gives `file:line: message` with the right line."""
    problems = _problems(tmp_path, text)
    assert any(p.startswith(f"{tmp_path / 'p.yaml'}:{line}:") and fragment in p for p in problems), problems


def test_secret_defined_twice_across_files_names_both_places(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(
        GOOD.split("secrets:")[0].replace("quarterly", "other")
        + "secrets:"
        + GOOD.split("secrets:")[1].replace("policy: quarterly", "policy: other")
    )
    with pytest.raises(InputError) as exc:
        policies.load_dir(tmp_path, SETTINGS)
    assert any("b.yaml:8: secret 'app' already defined at" in p and "a.yaml:8" in p for p in exc.value.problems)


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("provider: bw", "provider: nope").replace("policy: quarterly", "policy: weekly")
    assert len(_problems(tmp_path, text)) == 2


def test_missing_directory_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="policy directory not found"):
        policies.load_dir(tmp_path / "absent", SETTINGS)


def test_a_reload_reads_only_the_files_that_changed_and_sees_every_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = "secrets:\n  - {name: other, provider: bw, store: {aws: {secret_id: prod/other}}, policy: quarterly}\n"
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(other)
    policies.load_dir(tmp_path, SETTINGS)
    read: list[int] = []
    real = policies.yamlfast.load
    monkeypatch.setattr(policies.yamlfast, "load", lambda text, size: read.append(size) or real(text, size))
    assert policies.load_dir(tmp_path, SETTINGS).policies["quarterly"].max_age is not None
    assert read == []  # nothing changed: nothing parsed
    (tmp_path / "a.yaml").write_text(GOOD.replace("max_age: 90d", "max_age: 30d"))  # same size, at once
    loaded = policies.load_dir(tmp_path, SETTINGS)
    assert len(read) == 1 and str(loaded.policies["quarterly"].max_age) == "30 days, 0:00:00"
    (tmp_path / "b.yaml").unlink()
    assert set(policies.load_dir(tmp_path, SETTINGS).secrets) == {"app"}
