"""What a person reads: a close name offered for a typo, no parser internals, times and ages in
one form, counts in good English."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rotator.app import App
from rotator.cli.render import age, count, moment
from rotator.errors import InputError
from rotator.settings import config

CONFIG = """\
state: {{directory: "{state}"}}
providers:
  bw-prod:
    type: brandwave
    base_url: http://127.0.0.1:9
    admin_token: {{current: true}}
    grants: [{{store: aws, secret_id: "x/*"}}]
"""


def _problems(tmp_path: Path, extra: str = "", policy: str = "") -> list[str]:
    (tmp_path / "rotator.yaml").write_text(CONFIG.format(state=tmp_path / "state") + extra)
    (tmp_path / "policies").mkdir(exist_ok=True)
    (tmp_path / "policies" / "p.yaml").write_text(policy or "secrets: []\n")
    with pytest.raises(InputError) as caught:
        App.load(tmp_path / "rotator.yaml", tmp_path / "policies")
    return caught.value.problems


def test_a_misspelt_field_is_told_the_close_one_at_every_depth(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "engine: {hold_intervall: 1s}\nstate_: {}\n")
    assert any(":8: unknown field 'hold_intervall' (did you mean 'hold_interval'?)" in p for p in problems), problems
    typo = "    admin_tokn: {current: true}\n"
    text = CONFIG.format(state=tmp_path / "state").replace("    admin_token: {current: true}\n", typo)
    (tmp_path / "rotator.yaml").write_text(text)
    with pytest.raises(InputError, match=r":6: unknown field 'admin_tokn' \(did you mean 'admin_token'\?\)"):
        config.load(tmp_path / "rotator.yaml", environ={})


def test_a_field_nothing_resembles_lists_the_known_ones(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "stores:\n  aws: {type: aws, retries: 3}\n")
    assert any("unknown field 'retries' (known: account_id, endpoint_url, region," in p for p in problems), problems


def test_policy_files_get_close_names_for_fields_policies_and_providers(tmp_path: Path) -> None:
    policy = (
        "policies:\n  quarterly: {max_age: 90d, cutovr: {}}\n"
        "secrets:\n"
        "  - {name: a, provider: bw-prd, store: {aws: {secret_id: x/a}}, policy: quartrly, acess: []}\n"
    )
    (tmp_path / "rotator.yaml").write_text(CONFIG.format(state=tmp_path / "state"))
    problems = _problems(tmp_path, policy=policy)
    assert any("p.yaml:2: unknown field 'cutovr' (did you mean 'cutover'?)" in p for p in problems), problems
    assert any("p.yaml:4: unknown field 'acess' (did you mean 'access'?)" in p for p in problems), problems
    fixed = policy.replace("cutovr", "cutover").replace(", acess: []", "")
    problems = _problems(tmp_path, policy=fixed)
    assert any("names unknown policy 'quartrly' (did you mean 'quarterly'?)" in p for p in problems), problems
    assert any("names unknown provider 'bw-prd' (did you mean 'bw-prod'?)" in p for p in problems), problems


def test_a_value_of_the_wrong_form_says_the_form_not_the_pattern(tmp_path: Path) -> None:
    policy = "secrets:\n  - {name: '-a b', provider: bw-prod, store: {aws: {secret_id: x/a}}, policy: incident}\n"
    problems = _problems(tmp_path, "stores:\n  aws: {type: aws, account_id: '12345'}\n")
    assert any("'12345' is not allowed here: an AWS account id is 12 digits" in p for p in problems), problems
    problems = _problems(tmp_path, policy=policy)
    assert any("'-a b' is not allowed here: a name is 1 to 200 letters" in p for p in problems), problems
    assert not any("pattern" in p or "^" in p for p in problems), problems


def test_policies_given_as_a_file_is_told_apart_from_a_missing_directory(tmp_path: Path) -> None:
    (tmp_path / "rotator.yaml").write_text(CONFIG.format(state=tmp_path / "state"))
    (tmp_path / "one.yaml").write_text("secrets: []\n")
    with pytest.raises(InputError, match="is a file, not a directory"):
        App.load(tmp_path / "rotator.yaml", tmp_path / "one.yaml")
    with pytest.raises(InputError, match="policy directory not found"):
        App.load(tmp_path / "rotator.yaml", tmp_path / "nowhere")


def test_times_ages_and_counts_read_one_way() -> None:
    assert moment(datetime(2026, 12, 4, 7, 49, 36, tzinfo=UTC)) == "2026-12-04 07:49:36 UTC"
    assert moment("2026-12-04T08:49:36+01:00") == "2026-12-04 07:49:36 UTC"
    assert moment(datetime(2026, 12, 4, 7, 49, 36)) == "2026-12-04 07:49:36 UTC"  # the database's naive UTC
    assert moment(None) == "-"
    assert [age(s) for s in (None, 0, 59, 60, 18 * 60 + 5, 3600 * 5, 86400 * 3 + 1)] == [
        "never rotated",
        "0s",
        "59s",
        "1m",
        "18m",
        "5h",
        "3d",
    ]
    assert (count(1, "secret"), count(3, "secret"), count(1, "policy", "policies")) == (
        "1 secret",
        "3 secrets",
        "1 policy",
    )


@pytest.mark.parametrize("rows", [[], [{"secret": "a", "why": 'quote " and \\ and \n'}], [{"n": i} for i in range(3)]])
def test_a_streamed_json_document_is_the_document(
    rows: list[dict[str, object]], capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from rotator.cli.render import json_document

    json_document({"now": "2026-12-04T08:00:00+00:00", "daemons_alive": 0}, "secrets", iter(rows))
    printed = capsys.readouterr().out
    assert json.loads(printed) == {"now": "2026-12-04T08:00:00+00:00", "daemons_alive": 0, "secrets": rows}
    assert printed.count("\n") == 6 + len(rows)  # a row a line


def test_a_key_pasted_where_a_name_goes_is_not_repeated(tmp_path: Path) -> None:
    (tmp_path / "rotator.yaml").write_text(CONFIG.format(state=tmp_path / "state"))
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "p.yaml").write_text("secrets: []\n")
    app = App.load(tmp_path / "rotator.yaml", tmp_path / "policies")
    with pytest.raises(InputError) as caught:
        app.policies.secret("bwpat_0123456789abcdefghij")
    assert "bwpat_" not in str(caught.value) and "treat it as leaked" in str(caught.value)
    with pytest.raises(InputError, match=r"unknown secret 'my-ap'"):
        app.policies.secret("my-ap")


def test_a_state_directory_that_is_a_file_is_refused_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "rotator.yaml").write_text(f'state: {{directory: "{tmp_path / "rotator.yaml"}"}}\n')
    with pytest.raises(InputError, match=r"rotator.yaml:1: .*is not a directory"):
        config.load(tmp_path / "rotator.yaml", environ={})


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("columns", [60, 80, 120])
def test_a_table_fits_the_terminal_and_a_pipe_gets_it_whole(monkeypatch: pytest.MonkeyPatch, columns: int) -> None:
    from rotator.cli.render import table

    header = ["SECRET", "KEY AGE", "DUE", "NEXT START", "WHY"]
    rows = [["billing-api-" + "x" * 30, "3d", "2027-02-22 08:18:49 UTC", "2027-02-22 20:17:49 UTC", "why " * 40]]
    whole = table(header, rows)
    assert whole[1].endswith("why") and "…" not in "".join(whole)  # not a terminal: nothing cut
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.setattr("sys.stdout", _Terminal())
    fitted = table(header, rows)
    shown = "\n".join(fitted).splitlines()
    assert all(len(line) <= columns for line in shown), [len(line) for line in shown]
    assert len(fitted) == 1 + len(rows) and "2027-02-22 20:17:49 UTC" in fitted[1]
    assert fitted[1].startswith("billing-api-")
