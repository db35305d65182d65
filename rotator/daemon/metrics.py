"""Prometheus metrics. Counts come from the state database at scrape time, so they match it exactly
and survive restarts; step latency is measured in this process; the per-secret families come from
the daemon's agenda (`per_secret`)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from rotator.daemon.agenda import Figures, micros
from rotator.lifecycle import TERMINAL, WITH_OPERATOR
from rotator.state.db import StateDB


class StateCollector(Collector):
    def __init__(
        self,
        db: Callable[[], StateDB],
        now: Callable[[], datetime],
        notification_failures: Callable[[], int] = lambda: 0,
        last_tick: Callable[[], float | None] = lambda: None,
        discovery_left: Callable[[], int] = lambda: 0,
    ) -> None:
        self._discovery_left = discovery_left
        self._db = db
        self._now = now
        self._notification_failures = notification_failures
        self._last_tick = last_tick

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        counts = self._db().counts()
        finished = CounterMetricFamily(
            "rotator_rotations",
            "Rotations that ended, by provider instance and outcome",
            labels=["provider", "outcome"],
        )
        in_flight = GaugeMetricFamily("rotator_rotations_in_flight", "Rotations in flight, by state", labels=["state"])
        by_state: dict[str, int] = {}
        for provider, state, n in counts:
            if state in TERMINAL:
                finished.add_metric([provider, state], n)
            else:
                by_state[state] = by_state.get(state, 0) + n
        for state, n in sorted(by_state.items()):
            in_flight.add_metric([state], n)
        yield finished
        yield in_flight
        pending = sum(n for state, n in by_state.items() if state in WITH_OPERATOR)
        yield GaugeMetricFamily("rotator_operator_actions_pending", "Rotations waiting on a person", value=pending)
        now = self._now()
        held_by_provider, oldest_wait = self._db().attention()
        held = GaugeMetricFamily(
            "rotator_rotations_held", "Rotations held until a person looks, by provider instance", labels=["provider"]
        )
        for provider, n in sorted(held_by_provider.items()):
            held.add_metric([provider], n)
        yield held
        yield GaugeMetricFamily(
            "rotator_operator_action_waiting_seconds",
            "How long the longest-waiting person's action (supply a key, revoke in a dashboard) has waited",
            value=(now - oldest_wait).total_seconds() if oldest_wait else 0.0,
        )
        last_tick = self._last_tick()
        if last_tick is not None:
            yield GaugeMetricFamily(
                "rotator_last_tick_timestamp_seconds", "When the daemon last finished a tick (Unix time)", last_tick
            )
        yield GaugeMetricFamily(
            "rotator_discovery_pending",
            "Secrets never rotated here whose key age is still to be read from their store",
            value=self._discovery_left(),
        )
        yield CounterMetricFamily(
            "rotator_notification_failures",
            "Notification delivery attempts that failed, since this process started",
            value=self._notification_failures(),
        )
        pending, given_up = self._db().outbox_counts()
        yield GaugeMetricFamily(
            "rotator_notifications_pending", "Notifications in the outbox not yet delivered", pending
        )
        yield GaugeMetricFamily(
            "rotator_notifications_given_up", "Notifications given up on after every retry", given_up
        )


def per_secret(rows: Callable[[], Iterable[Figures]], now: datetime) -> Iterator[bytes]:
    """The three families with a sample per secret, in the text format, CHUNK secrets at a time;
    `rows` gives each secret's figures (agenda.figures), once per family.

    Written here rather than through prometheus_client: at 100,000 secrets its per-sample
    rendering (validation, escaping, float formatting) took 1.5 s of a 1.8 s scrape. Sent as it
    is made: a scrape of the whole text at once (19 MB, and its 300,000 lines before) left the
    daemon 26 MB larger for good. Values are whole microseconds divided once, so a figure reads
    exactly as the datetime arithmetic it replaces (`total_seconds()`, `timestamp()`)."""
    at = micros(now)
    values: dict[str, Callable[[Figures], float | None]] = {
        "rotator_key_age_seconds": lambda f: None if f[1] is None else (at - f[1]) / 1_000_000,
        "rotator_key_max_age_seconds": lambda f: None if f[2] is None else f[2] / 1_000_000,
        "rotator_next_due_timestamp_seconds": lambda f: None if f[3] is None else f[3] / 1_000_000,
    }
    for name, value_of in values.items():
        yield f"# HELP {name} {_PER_SECRET[name]}\n# TYPE {name} gauge\n".encode()
        secrets = iter(rows())
        while chunk := list(itertools.islice(secrets, CHUNK)):
            lines = []
            for row in chunk:
                value = value_of(row)
                if value is not None:
                    lines.append(f'{name}{{secret="{_escaped(row[0])}"}} {value!r}\n')
            yield "".join(lines).encode()


CHUNK = 10_000


def _escaped(label: str) -> str:
    if "\\" in label or '"' in label or "\n" in label:
        return label.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return label


_PER_SECRET = {
    "rotator_key_age_seconds": "Age of each secret's current key",
    "rotator_key_max_age_seconds": "The max_age each secret's policy allows its key",
    "rotator_next_due_timestamp_seconds": "When each secret is next due (Unix time)",
}


def registry(collector: StateCollector) -> tuple[CollectorRegistry, Histogram]:
    reg = CollectorRegistry()
    reg.register(collector)
    steps = Histogram(
        "rotator_step_seconds",
        "Time one engine step took, by the state it ran in",
        ["step"],
        registry=reg,
        buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    )
    return reg, steps
