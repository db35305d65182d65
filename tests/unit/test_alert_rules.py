"""The shipped Prometheus alert rules load and behave as their unit tests say, and the Grafana
dashboard's queries parse (`promtool`).

`make test` installs promtool when it is missing; a missing promtool fails here rather than
skipping, so a rules file that no longer loads cannot pass unnoticed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

DEPLOY = Path(__file__).parents[2] / "deploy"
RULES = DEPLOY / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    assert found, "promtool is missing: `make test` installs it (Debian package prometheus)"
    return subprocess.run([found, *args], cwd=RULES, capture_output=True, text=True, timeout=120, check=False)


def test_the_rules_load() -> None:
    checked = promtool("check", "rules", "rotator-rules.yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "6 rules found" in checked.stdout


def test_each_alert_fires_when_it_should_and_not_before() -> None:
    tested = promtool("test", "rules", "rotator-rules.test.yaml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    """Grafana shows a broken query as an empty panel; promtool parses each as a recording rule."""
    dashboard = json.loads((DEPLOY / "grafana" / "rotator-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"q{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    (tmp_path / "dashboard-rules.yaml").write_text(json.dumps(rules))
    checked = promtool("check", "rules", str(tmp_path / "dashboard-rules.yaml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
