"""The per-secret metric families, written without prometheus_client's per-sample path, parse
back to the same names, labels and values with prometheus_client's own parser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from rotator.daemon.agenda import figures
from rotator.daemon.metrics import per_secret
from rotator.daemon.schedule import Plan

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_per_secret_families_parse_back_exactly() -> None:
    odd = 'team/a"b\\c'
    plans = [
        Plan("app-1", "quarterly", NOW - timedelta(days=10), NOW + timedelta(days=80), None, "", timedelta(days=90)),
        Plan(odd, "quarterly", NOW - timedelta(seconds=1.5), NOW, NOW, "", timedelta(days=90)),
        Plan("never", "none", None, None, None, "no max_age"),
    ]
    text = b"".join(per_secret(lambda: map(figures, plans), NOW)).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {name: {s.labels["secret"]: s.value for s in f.samples} for name, f in families.items()}
    assert samples["rotator_key_age_seconds"] == {"app-1": 10 * 86400.0, odd: 1.5}
    assert samples["rotator_key_max_age_seconds"] == {"app-1": 90 * 86400.0, odd: 90 * 86400.0}
    assert samples["rotator_next_due_timestamp_seconds"] == {
        "app-1": (NOW + timedelta(days=80)).timestamp(),
        odd: NOW.timestamp(),
    }
    assert all(f.type == "gauge" and f.documentation for f in families.values())
