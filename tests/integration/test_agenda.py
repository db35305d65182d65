"""The daemon's agenda: after the first tick, a tick plans only the secrets whose moment came or
whose rotation ended since the last one, never the whole fleet."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from sqlalchemy import insert
from sqlalchemy.exc import OperationalError

from rotator.app import App
from rotator.daemon.agenda import CLOCK_SKEW, Agenda, figures, micros
from rotator.daemon.announcements import announce
from rotator.daemon.planning import Planner
from rotator.daemon.schedule import Plan
from rotator.daemon.service import Daemon
from rotator.lifecycle import State
from rotator.state.clock import utcnow
from rotator.state.schema import Rotation

FLEET = 40

CONFIG = """\
state: {{url: "sqlite:///{dir}/state.db"}}
policies_dir: policies
providers:
  bw:
    type: brandwave
    base_url: http://127.0.0.1:9
    admin_token: {{current: true}}
    grants: [{{store: aws, secret_id: "fleet/*"}}]
stores:
  aws: {{type: aws, region: us-east-1, endpoint_url: "http://127.0.0.1:9"}}
"""


class CountingPlanner(Planner):
    """The real planner, counting the secrets it plans one by one."""

    planned: list[str]

    def plan(self, secret: str, now: datetime) -> Plan:
        self.planned.append(secret)
        return super().plan(secret, now)


def ended(app: App, secret: str, at: datetime, state: State = State.COMPLETED) -> None:
    row = {
        "id": str(uuid.uuid4()),
        "secret": secret,
        "provider": "bw",
        "policy": "quarterly",
        "state": state.value,
        "trigger": "policy",
        "reason": "",
        "started_by": "test",
        "created_at": at,
        "updated_at": at,
        "next_attempt_at": at,
        "waiting_for": "",
        "finished_at": at,
    }
    with app.db.session() as s:
        s.execute(insert(Rotation), [row])


AGES = {"app-03": 91, "app-07": 89}
"""Days since each secret's last rotation (10 for the rest): app-03 is overdue, app-07 due in a day."""


@pytest.fixture
def fleet(tmp_path: Path) -> App:
    (tmp_path / "rotator.yaml").write_text(CONFIG.format(dir=tmp_path))
    (tmp_path / "policies").mkdir()
    lines = ["policies:", "  quarterly:", "    max_age: 90d", "    notify_before: 2d", "secrets:"]
    for i in range(FLEET):
        lines += [
            f"  - name: app-{i:02d}",
            "    provider: bw",
            f"    store: {{aws: {{secret_id: fleet/app-{i:02d}}}}}",
            "    policy: quarterly",
        ]
    (tmp_path / "policies" / "fleet.yaml").write_text("\n".join(lines) + "\n")
    app = App.load(tmp_path / "rotator.yaml")
    for i in range(FLEET):
        ended(app, f"app-{i:02d}", utcnow() - timedelta(days=AGES.get(f"app-{i:02d}", 10)))
    return app


def agenda_of(app: App) -> tuple[Agenda, CountingPlanner]:
    planner = CountingPlanner(app)
    planner.planned = []
    return Agenda(planner, notify_before=lambda policy: app.policies.policies[policy].notify_before), planner


def test_after_the_first_tick_a_tick_plans_only_what_came(fleet: App) -> None:
    agenda, planner = agenda_of(fleet)
    now = utcnow()
    came = {p.secret: p for p in agenda.due(now)}
    assert sorted(came) == ["app-03", "app-07"] and len(list(agenda.figures())) == FLEET
    assert came["app-03"].startable(now) and not came["app-07"].startable(now)  # app-07: announced, starts tomorrow
    agenda.again(came["app-03"], now, now + timedelta(minutes=15))  # say, its rotation is in flight
    agenda.again(came["app-07"], now)
    planner.planned.clear()
    for minutes in (1, 5, 14):
        assert agenda.due(now + timedelta(minutes=minutes)) == []
    assert planner.planned == []  # nothing came: nothing planned, whatever the fleet's size
    assert [p.secret for p in agenda.due(now + timedelta(minutes=15))] == ["app-03"]
    start = agenda.plans["app-07"].next_start
    assert start is not None and [p.secret for p in agenda.due(start)] == ["app-07"]  # announced once


def test_a_rotation_that_ended_re_plans_its_secret_and_no_other(fleet: App) -> None:
    agenda, planner = agenda_of(fleet)
    now = utcnow()
    for plan in agenda.due(now):
        agenda.again(plan, now, now + timedelta(minutes=15))
    ended(fleet, "app-12", utcnow(), State.FAILED)  # not due: a failure changes nothing but is looked at
    ended(fleet, "app-03", utcnow())  # rotated: no longer due
    planner.planned.clear()
    assert agenda.due(utcnow()) == []
    assert sorted(planner.planned) == ["app-03", "app-12"]
    plan = agenda.plans["app-03"]
    assert plan.last_rotated is not None and plan.last_rotated > now - timedelta(minutes=1)
    assert [p.secret for p in agenda.due(now + timedelta(minutes=15))] == ["app-07"]  # app-03's old moment is gone


def test_a_secret_rotated_before_its_due_date_does_not_come_at_the_old_one(fleet: App) -> None:
    agenda, _ = agenda_of(fleet)
    now = utcnow()
    for plan in agenda.due(now):
        agenda.again(plan, now, now + timedelta(days=365))
    ended(fleet, "app-20", now)  # rotated by hand 80 days before its due date
    assert agenda.due(now + timedelta(minutes=1)) == []
    old_moment = now - timedelta(days=10) + timedelta(days=90 - 2)  # its due date less notify_before
    came_then = [p.secret for p in agenda.due(old_moment + timedelta(days=1))]
    assert "app-21" in came_then and "app-20" not in came_then  # the others of its age come; it does not
    came = [p.secret for p in agenda.due(now + timedelta(days=90))]
    assert "app-20" in came  # announced at its new moment: 88 days from now


def test_an_end_on_the_database_clock_is_seen_by_a_host_whose_clock_runs_ahead(fleet: App) -> None:
    agenda, planner = agenda_of(fleet)
    ahead = utcnow() + timedelta(minutes=10)  # this host's clock: the state database's is 10 minutes behind
    for plan in agenda.due(ahead):
        agenda.again(plan, ahead, ahead + timedelta(days=1))
    ended(fleet, "app-12", fleet.db.clock())  # `rotator rotate app-12` on another host, a replica
    planner.planned.clear()
    assert agenda.due(ahead + timedelta(seconds=5)) == []
    assert planner.planned == ["app-12"]  # re-planned from its new last rotation


def test_a_backlog_is_recorded_a_hundred_a_tick_and_an_incident_is_claimed_before_it(tmp_path: Path) -> None:
    """5,000 due at once in a large fleet: each tick records at most STARTS_PER_TICK of them, so a
    tick stays short, and the workers claim an incident's rotation before any of the backlog."""
    from rotator.daemon.service import STARTS_PER_TICK, URGENT, Daemon

    due = STARTS_PER_TICK * 2 + 50
    (tmp_path / "rotator.yaml").write_text(CONFIG.format(dir=tmp_path))
    (tmp_path / "policies").mkdir()
    lines = ["policies:", "  quarterly: {max_age: 90d}", "secrets:"]
    lines += [
        f"  - {{name: app-{i:03d}, provider: bw, store: {{aws: {{secret_id: fleet/app-{i:03d}}}}}, policy: quarterly}}"
        for i in range(due)
    ]
    (tmp_path / "policies" / "fleet.yaml").write_text("\n".join(lines) + "\n")
    app = App.load(tmp_path / "rotator.yaml")
    for i in range(due):
        ended(app, f"app-{i:03d}", utcnow() - timedelta(days=100))
    daemon = Daemon(tmp_path / "rotator.yaml", None, app)

    def recorded() -> int:
        return sum(1 for r in app.db.active() if r.trigger == "policy")

    daemon._start_due(app)
    assert recorded() == STARTS_PER_TICK
    # an incident over a secret the backlog has not reached yet
    spare = next(f"app-{i:03d}" for i in range(due) if not app.db.active_for(f"app-{i:03d}"))
    urgent = app.db.create_rotation(
        secret=spare, provider="bw", policy="incident", trigger="incident", reason="leak", actor="t"
    )
    claimed = app.db.claim_due("me:1:a:b:c:d", timedelta(minutes=1), due_by=utcnow(), urgent=URGENT)
    assert claimed is not None and claimed[1].id == urgent.id
    daemon._start_due(app)
    daemon._start_due(app)
    assert recorded() == due - 1  # all but the secret the incident took


def test_a_start_that_waits_for_its_window_comes_when_the_window_opens_not_at_the_due_date(tmp_path: Path) -> None:
    """The first tick knows only due dates (a whole fleet's starts took seconds to work out); a
    secret whose due date came while its window is shut starts when the full plan says, no sooner,
    and working that out asks the state database nothing."""
    opens = (utcnow() + timedelta(hours=12)).hour
    window = f"Mon-Sun {opens:02d}:00-{(opens + 1) % 24:02d}:00 UTC" if opens != 23 else "Mon-Sun 21:00-22:00 UTC"
    (tmp_path / "rotator.yaml").write_text(CONFIG.format(dir=tmp_path))
    (tmp_path / "policies").mkdir()
    lines = ["policies:", f'  quarterly: {{max_age: 90d, window: "{window}", jitter: 30m}}', "secrets:"]
    lines += [
        f"  - {{name: app-{i}, provider: bw, store: {{aws: {{secret_id: fleet/app-{i}}}}}, policy: quarterly}}"
        for i in range(3)
    ]
    (tmp_path / "policies" / "fleet.yaml").write_text("\n".join(lines) + "\n")
    app = App.load(tmp_path / "rotator.yaml")
    now = utcnow()
    for secret, age in {"app-0": timedelta(days=91), "app-1": timedelta(days=90) - timedelta(hours=1)}.items():
        ended(app, secret, now - age)  # app-0 overdue, app-1 due in an hour; app-2 never rotated here
    ended(app, "app-2", now - timedelta(days=10))
    full = {p.secret: p for p in Planner(app).plans(now, discover=False)}
    agenda, planner = agenda_of(app)

    assert agenda.due(now) == [] and planner.planned == []
    # what /metrics shows, from the first tick: the same age, max_age and due date as a full plan
    assert sorted(agenda.figures()) == sorted(map(figures, full.values()))
    for secret in ("app-0", "app-1"):
        start = full[secret].next_start
        assert start is not None and start > now + timedelta(hours=9)  # the window, not the due date
        assert secret not in {p.secret for p in agenda.due(start - timedelta(seconds=1))}
        came = agenda.due(start)
        assert [p.secret for p in came] == [secret] and came[0].startable(start)


@pytest.mark.parametrize(
    ("hold", "failed", "wait"),
    [
        (timedelta(minutes=10), 1, timedelta(minutes=10)),
        (timedelta(minutes=10), 2, timedelta(minutes=20)),
        (timedelta(minutes=10), 3, timedelta(minutes=40)),
        (timedelta(minutes=1), 12, timedelta(minutes=256)),  # the doubling stops after eight
        (timedelta(minutes=10), 10, timedelta(days=1)),  # and never waits more than a day
    ],
)
def test_a_secret_whose_rotations_keep_failing_is_tried_again_later_and_later(
    tmp_path: Path, hold: timedelta, failed: int, wait: timedelta
) -> None:
    from rotator.daemon.service import Daemon

    config = CONFIG.format(dir=tmp_path) + f"engine: {{hold_interval: {int(hold.total_seconds())}s}}\n"
    (tmp_path / "rotator.yaml").write_text(config)
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "fleet.yaml").write_text(
        "policies:\n  quarterly: {max_age: 90d}\nsecrets:\n"
        "  - {name: app-0, provider: bw, store: {aws: {secret_id: fleet/app-0}}, policy: quarterly}\n"
    )
    app = App.load(tmp_path / "rotator.yaml")
    now = utcnow()
    ended(app, "app-0", now - timedelta(days=100))  # overdue
    last = now - CLOCK_SKEW - timedelta(minutes=1)  # ended before this tick's look back
    for n in range(failed):  # the newest ends last
        ended(app, "app-0", last - timedelta(seconds=failed - 1 - n), State.FAILED)
    daemon = Daemon(tmp_path / "rotator.yaml", None, app)
    daemon._start_due(app)
    assert app.db.active_for("app-0") is None  # not tried again at once
    again = last + wait
    assert daemon.agenda.due(again - timedelta(seconds=1)) == []
    assert [p.secret for p in daemon.agenda.due(again)] == ["app-0"]


def small_fleet(tmp_path: Path, policies: list[str], secrets: dict[str, tuple[str, int]]) -> App:
    """A fleet of `secrets` (name: policy, days since its last rotation) under `policies` (YAML lines)."""
    (tmp_path / "rotator.yaml").write_text(CONFIG.format(dir=tmp_path))
    (tmp_path / "policies").mkdir()
    lines = ["policies:", *policies, "secrets:"]
    lines += [
        f"  - {{name: {name}, provider: bw, store: {{aws: {{secret_id: fleet/{name}}}}}, policy: {policy}}}"
        for name, (policy, _) in secrets.items()
    ]
    (tmp_path / "policies" / "fleet.yaml").write_text("\n".join(lines) + "\n")
    app = App.load(tmp_path / "rotator.yaml")
    for name, (_, days) in secrets.items():
        ended(app, name, utcnow() - timedelta(days=days))
    return app


def test_an_announcement_comes_before_an_earlier_due_date_without_one(tmp_path: Path) -> None:
    # b is due later than a, but its policy announces it 30 days ahead: its moment is now
    app = small_fleet(
        tmp_path,
        ["  plain: {max_age: 90d}", "  heralded: {max_age: 90d, notify_before: 30d}"],
        {"a": ("plain", 80), "b": ("heralded", 70)},
    )
    agenda, _ = agenda_of(app)
    assert [p.secret for p in agenda.due(utcnow())] == ["b"]


def test_the_earliest_moment_comes_first_whether_planned_again_or_sketched(tmp_path: Path) -> None:
    app = small_fleet(
        tmp_path, ["  plain: {max_age: 90d}"], {"s1": ("plain", 100), "s2": ("plain", 95), "s3": ("plain", 10)}
    )
    agenda, _ = agenda_of(app)
    now = utcnow()
    (first,) = agenda.due(now, most=1)
    assert first.secret == "s1"  # 10 days overdue
    agenda.again(first, now, now - timedelta(days=2))  # back on the agenda, two days ago
    assert [p.secret for p in agenda.due(now, most=1)] == ["s2"]  # its sketch's moment: 5 days ago
    assert [p.secret for p in agenda.due(now, most=1)] == ["s1"]
    assert agenda.due(now) == []


class FailingOnce(CountingPlanner):
    """The real planner, whose state database fails once, at the `fail_at`-th secret it plans."""

    fail_at = 2

    def plan(self, secret: str, now: datetime) -> Plan:
        if len(self.planned) + 1 == self.fail_at:
            self.planned.append("failed")
            raise OperationalError("SELECT ...", {}, Exception("server closed the connection unexpectedly"))
        return super().plan(secret, now)


def test_a_database_failing_while_the_agenda_plans_leaves_no_secret_off_it(tmp_path: Path) -> None:
    app = small_fleet(tmp_path, ["  plain: {max_age: 90d}"], {s: ("plain", 95) for s in ("a", "b", "c")})
    planner = FailingOnce(app)
    planner.planned = []
    agenda = Agenda(planner, notify_before=lambda policy: None)
    now = utcnow()
    with pytest.raises(OperationalError):
        agenda.due(now)
    assert sorted(p.secret for p in agenda.due(now + timedelta(seconds=5))) == ["a", "b", "c"]


def test_a_database_failing_in_the_middle_of_a_tick_leaves_no_secret_unstarted(tmp_path: Path) -> None:
    app = small_fleet(tmp_path, ["  plain: {max_age: 90d}"], {s: ("plain", 95) for s in ("a", "b", "c")})
    daemon = Daemon(None, None, app)
    real, calls = app.db.active_for, []

    def failing_once(secret: str) -> Any:
        calls.append(secret)
        if len(calls) == 2:  # a fail-over between two statements of the tick
            raise OperationalError("SELECT ...", {}, Exception("server closed the connection unexpectedly"))
        return real(secret)

    app.db.active_for = failing_once  # type: ignore[method-assign]
    with pytest.raises(OperationalError):
        daemon._start_due(app)
    daemon._start_due(app)
    assert all(real(s) is not None for s in ("a", "b", "c"))  # each has its scheduled rotation


def test_a_reload_keeps_the_ages_read_from_stores_of_secrets_that_stayed_put(tmp_path: Path, aws_url: str) -> None:
    tag = uuid.uuid4().hex[:8]
    sm = boto3.client("secretsmanager", endpoint_url=aws_url, region_name="us-east-1")

    def stored(name: str, rotated_at: str, create: bool = False) -> None:
        value = json.dumps({"api_key": "k", "key_id": "id", "rotated_at": rotated_at})
        if create:
            sm.create_secret(Name=f"fleet/{tag}-{name}", SecretString=value)
        else:
            sm.put_secret_value(SecretId=f"fleet/{tag}-{name}", SecretString=value)

    for name in ("kept", "moved", "moved-to"):
        stored(name, "2026-10-01T00:00:00Z", create=True)
    (tmp_path / "rotator.yaml").write_text(CONFIG.replace("http://127.0.0.1:9", aws_url).format(dir=tmp_path))
    (tmp_path / "policies").mkdir()

    def write(secrets: dict[str, str]) -> None:
        lines = ["policies: {plain: {max_age: 90d}}", "secrets:"]
        lines += [
            f"  - {{name: {name}, provider: bw, store: {{aws: {{secret_id: fleet/{tag}-{where}}}}}, policy: plain}}"
            for name, where in secrets.items()
        ]
        (tmp_path / "policies" / "fleet.yaml").write_text("\n".join(lines) + "\n")

    def ages() -> dict[str, datetime | None]:
        return {p.secret: p.last_rotated for p in daemon.planner.plans(discover=False)}

    write({"kept": "kept", "moved": "moved"})
    daemon = Daemon(tmp_path / "rotator.yaml", None, App.load(tmp_path / "rotator.yaml"))
    assert sorted(daemon.planner.discover(["kept", "moved"])) == ["kept", "moved"]
    stored("kept", "2026-11-01T00:00:00Z")  # a value written there by hand meanwhile
    write({"kept": "kept", "moved": "moved-to", "added": "kept-too"})
    daemon.reload()
    # the age read before stands at once where the secret did not move; the others are unknown
    known = ages()
    assert known["kept"] == datetime(2026, 10, 1, tzinfo=UTC) and known["moved"] is None and known["added"] is None
    # and discovery reads it again, with the others: the value written by hand is seen
    assert sorted(daemon.planner.undiscovered()) == ["added", "kept", "moved"]
    daemon.planner.discover(daemon.planner.undiscovered())
    assert ages()["kept"] == datetime(2026, 11, 1, tzinfo=UTC) and ages()["moved"] is not None
    # a store whose settings changed under the same name may reach other secrets: nothing is kept
    config = tmp_path / "rotator.yaml"
    config.write_text(config.read_text().replace("region: us-east-1", "region: us-west-2"))
    daemon.reload()
    assert ages()["kept"] is None


def fail_once(target: Any, name: str) -> None:
    """`target.name` raises once, as a state database failing over between two statements would."""
    real = getattr(target, name)
    calls: list[object] = []

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        if len(calls) == 1:
            raise OperationalError("SELECT ...", {}, Exception("server closed the connection unexpectedly"))
        return real(*args, **kwargs)

    setattr(target, name, failing)


def test_ages_just_discovered_are_planned_after_a_failed_tick(tmp_path: Path) -> None:
    app = small_fleet(tmp_path, ["  plain: {max_age: 90d}"], {"a": ("plain", 10)})
    daemon = Daemon(None, None, app)
    daemon._start_due(app)  # the first tick: sketches
    daemon._discovered = ["a"]  # what a discovery round hands the next tick
    fail_once(app.db, "finished_since")
    with pytest.raises(OperationalError):
        daemon._start_due(app)
    assert daemon._discovered == ["a"]  # handed to the tick after


def test_a_rotation_end_whose_planning_failed_is_planned_at_the_next_look(fleet: App) -> None:
    agenda, planner = agenda_of(fleet)
    now = utcnow()
    for plan in agenda.due(now):
        agenda.again(plan, now, now + timedelta(days=1))
    ended(fleet, "app-12", utcnow())
    fail_once(fleet.db, "last_completed")
    with pytest.raises(OperationalError):
        agenda.due(now + timedelta(seconds=5))
    planner.planned.clear()
    agenda.due(now + timedelta(seconds=10))
    assert planner.planned == ["app-12"]
    due = {secret: due for secret, _, _, due in agenda.figures()}["app-12"]
    assert due is not None and due > micros(now + timedelta(days=89))  # /metrics has its new due date


def test_an_announcement_the_outbox_did_not_take_is_sent_at_the_next_look(tmp_path: Path) -> None:
    app = small_fleet(tmp_path, ["  heralded: {max_age: 90d, notify_before: 2d}"], {"a": ("heralded", 89)})
    daemon = Daemon(None, None, app)
    (plan,) = daemon.agenda.due(utcnow())
    sent: list[str] = []
    app.notifier.emit = lambda event, payload: sent.append(event)  # type: ignore[method-assign]
    fail_once(app.notifier, "emit")  # the outbox's database fails the first time
    with pytest.raises(OperationalError):
        announce(app, plan, utcnow(), daemon._announced)
    for _ in range(2):
        announce(app, plan, utcnow(), daemon._announced)
    assert sent == ["rotation.upcoming"]  # once, at the next look


def test_a_failing_secret_waits_its_backoff_on_the_database_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = small_fleet(tmp_path, ["  plain: {max_age: 90d}"], {"a": ("plain", 95)})
    ended(app, "a", app.db.clock(), State.FAILED)  # failed a moment ago: the next try waits 5 minutes
    monkeypatch.setattr("rotator.daemon.service.utcnow", lambda: utcnow() + timedelta(hours=2))  # this host
    daemon = Daemon(None, None, app)
    daemon._start_due(app)
    assert app.db.active_for("a") is None  # the host's clock, two hours ahead, does not cut it short
