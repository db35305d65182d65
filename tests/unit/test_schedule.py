from datetime import UTC, datetime, timedelta

from hypothesis import example, given, settings
from hypothesis import strategies as st

from rotator.daemon.schedule import jitter_offset, plan, sketch
from rotator.policy.rules import Policy
from rotator.policy.windows import Window

MONDAY_NOON = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # a Monday


def test_jitter_is_deterministic_and_within_bounds() -> None:
    """The same secret gets the same offset every time (and so every restart); secrets are spread."""
    jitter = timedelta(hours=2)
    offsets = {name: jitter_offset(name, jitter) for name in (f"secret-{i}" for i in range(200))}
    assert offsets == {name: jitter_offset(name, jitter) for name in offsets}
    assert all(timedelta(0) <= o < jitter for o in offsets.values())
    assert len(set(offsets.values())) > 150


def test_window_next_start() -> None:
    window = Window.parse("Mon-Fri 02:00-05:00 Europe/Berlin")
    start = window.next_start(MONDAY_NOON)  # 13:00 in Berlin: today's window is over
    assert start == datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # Tuesday 02:00 Berlin
    inside = datetime(2026, 11, 24, 2, 30, tzinfo=UTC)
    assert window.next_start(inside) == inside
    friday_late = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert window.next_start(friday_late) == datetime(2026, 11, 30, 1, 0, tzinfo=UTC)  # Monday


def test_window_across_midnight() -> None:
    window = Window.parse("Sat 23:00-01:00 UTC")
    assert window.contains(datetime(2026, 11, 29, 0, 30, tzinfo=UTC))  # Sunday 00:30 belongs to Saturday's window
    assert not window.contains(datetime(2026, 11, 30, 0, 30, tzinfo=UTC))


def test_plan_due_and_window() -> None:
    policy = Policy(max_age=timedelta(days=90), window="Mon-Fri 02:00-05:00 Europe/Berlin")
    last = MONDAY_NOON - timedelta(days=91)
    p = plan("app", "quarterly", policy, last_rotated=last, now=MONDAY_NOON)
    assert p.due == last + timedelta(days=90)
    assert p.next_start == datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
    assert not p.startable(MONDAY_NOON) and "window" in p.why
    fresh = plan("app", "quarterly", policy, last_rotated=MONDAY_NOON, now=MONDAY_NOON)
    assert fresh.due == MONDAY_NOON + timedelta(days=90)


def test_a_policy_without_max_age_never_schedules() -> None:
    assert plan("app", "incident", Policy(), last_rotated=None, now=MONDAY_NOON).next_start is None
    last = MONDAY_NOON - timedelta(days=3)
    for made in (plan, sketch):  # what /metrics shows of it: the secret and its key's age
        p = made("app", "incident", Policy(), last_rotated=last, now=MONDAY_NOON)
        assert (p.secret, p.last_rotated, p.next_start, p.rough) == ("app", last, None, False)


def test_without_a_window_the_start_is_the_due_date_plus_the_offset() -> None:
    policy = Policy(max_age=timedelta(days=90), jitter=timedelta(hours=2))
    p = plan("app", "q", policy, last_rotated=MONDAY_NOON - timedelta(days=89), now=MONDAY_NOON)
    offset = jitter_offset("app", timedelta(hours=2))
    assert offset > timedelta(0) and p.due == MONDAY_NOON + timedelta(days=1) and p.next_start == p.due + offset


def test_a_sketch_of_an_unknown_age_is_due_now() -> None:
    p = sketch("app", "q", Policy(max_age=timedelta(days=90)), last_rotated=None, now=MONDAY_NOON)
    assert p.due == MONDAY_NOON and p.rough


def test_jitter_spreads_starts_inside_the_window_and_is_stable() -> None:
    """500 secrets due together start at different times inside the window, the same on every tick."""
    policy = Policy(max_age=timedelta(days=90), window="Mon-Fri 02:00-05:00 UTC", jitter=timedelta(hours=2))
    last = MONDAY_NOON - timedelta(days=100)
    starts = {plan(f"s{i}", "q", policy, last_rotated=last, now=MONDAY_NOON).next_start for i in range(500)}
    opens = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    assert all(s is not None and opens <= s < opens + timedelta(hours=2) for s in starts)
    assert len(starts) > 400
    later = MONDAY_NOON + timedelta(hours=3)
    assert (
        plan("s1", "q", policy, last_rotated=last, now=later).next_start
        == plan("s1", "q", policy, last_rotated=last, now=MONDAY_NOON).next_start
    )


def test_inside_an_open_window_a_passed_slot_starts_at_once() -> None:
    policy = Policy(max_age=timedelta(days=1), window="Mon-Sun 00:00-23:59 UTC", jitter=timedelta(minutes=1))
    p = plan("app", "q", policy, last_rotated=MONDAY_NOON - timedelta(days=2), now=MONDAY_NOON)
    assert p.startable(MONDAY_NOON) and not p.waits


def test_the_plan_says_why_it_starts_when_it_does() -> None:
    """`rotator schedule` prints each plan's reason: no max_age, the jitter after the due date, the
    offset into a window; the secret's own offset, not another's."""
    for made in (plan, sketch):
        none = made("app", "incident", Policy(), last_rotated=None, now=MONDAY_NOON)
        assert none.next_start is None and none.why == "policy incident has no max_age"

    last = MONDAY_NOON - timedelta(days=100)
    jittered = Policy(max_age=timedelta(days=90), jitter=timedelta(hours=2))
    offsets = {}
    for name in ("app", "billing"):
        p = plan(name, "q", jittered, last_rotated=last, now=MONDAY_NOON)
        offsets[name] = p.offset
        assert p.offset == jitter_offset(name, timedelta(hours=2)) and p.max_age == timedelta(days=90)
        assert p.next_start == max(last + timedelta(days=90) + p.offset, MONDAY_NOON)
        assert p.why == f"last rotated {last:%Y-%m-%d %H:%M:%S} UTC + max_age 90d; jitter {p.offset}"
    assert offsets["app"] != offsets["billing"]

    windowed = Policy(max_age=timedelta(days=90), window="Mon-Fri 02:00-05:00 UTC", jitter=timedelta(hours=2))
    p = plan("app", "q", windowed, last_rotated=last, now=MONDAY_NOON)
    offset = jitter_offset("app", timedelta(hours=2))
    assert offset and p.offset == offset and p.next_start == datetime(2026, 11, 24, 2, 0, tzinfo=UTC) + offset
    assert p.why == (
        f"last rotated {last:%Y-%m-%d %H:%M:%S} UTC + max_age 90d; starts {offset} into window Mon-Fri 02:00-05:00 UTC"
    )


def test_an_unknown_age_starts_now_whatever_the_jitter() -> None:
    """Due "now" moves on with every plan: a start at an offset after it would never come."""
    for window in (None, "Mon-Sun 00:00-23:59 UTC"):
        policy = Policy(max_age=timedelta(days=90), jitter=timedelta(hours=2), window=window)
        planned = [
            plan("fresh", "q", policy, last_rotated=None, now=MONDAY_NOON + timedelta(minutes=m)) for m in (0, 5)
        ]
        assert planned[1].startable(MONDAY_NOON + timedelta(minutes=5)), window
        assert planned[0].next_start is not None and planned[0].next_start <= MONDAY_NOON + timedelta(hours=2)


TRANSITIONS = [  # 2026's clock changes: the zone, the instant, the wall time it happens at (minutes)
    ("Europe/Berlin", datetime(2026, 3, 29, 1, 0, tzinfo=UTC), 120),  # 02:00 -> 03:00
    ("Europe/Berlin", datetime(2026, 10, 25, 1, 0, tzinfo=UTC), 180),  # 03:00 -> 02:00
    ("America/New_York", datetime(2026, 3, 8, 7, 0, tzinfo=UTC), 120),
    ("America/New_York", datetime(2026, 11, 1, 6, 0, tzinfo=UTC), 120),
    ("Australia/Lord_Howe", datetime(2026, 4, 4, 15, 0, tzinfo=UTC), 120),  # half an hour back
    ("Australia/Lord_Howe", datetime(2026, 10, 3, 15, 30, tzinfo=UTC), 120),  # and forward
]


@given(
    st.sampled_from(TRANSITIONS),
    st.integers(min_value=-36 * 60, max_value=36 * 60),
    st.integers(min_value=-180, max_value=180),
    st.integers(min_value=1, max_value=300),
    st.sampled_from(["Mon-Sun", "Sun", "Sat,Sun", "Mon-Fri"]),
    st.integers(min_value=0, max_value=300),
    st.integers(min_value=-300, max_value=300),
)
@example(TRANSITIONS[0], 10, -60, 90, "Mon-Sun", 0, 0)  # 01:00-02:30 Berlin: ended at 03:30 CEST
@example(TRANSITIONS[1], 0, -1, 1, "Mon-Sun", 0, 0)  # 02:59-03:00 Berlin: left as 03:00 CEST turns 02:00 CET
@example(TRANSITIONS[3], -209, -20, 1419, "Mon-Sun", 0, 235)  # 01:40-01:19 New York: left at 01:19 EST
@example(TRANSITIONS[3], 120, -30, 270, "Sun", 0, 0)  # 01:30-06:00 New York, due 03:00 EST: not a week late
@example(TRANSITIONS[1], 60, -30, 150, "Sun", 0, 0)  # 02:30-05:00 Berlin, due 03:00 CET: not a week late
@example(TRANSITIONS[1], -156, -85, 68, "Mon-Sun", 0, 161)  # 01:35-02:43 Berlin: inside again after its end
@example(TRANSITIONS[4], 16, 131, 1303, "Sat", 0, -95)  # Sat 04:11-01:54 Lord Howe: the same, half an hour
@settings(max_examples=1000, deadline=None)
def test_a_start_lies_inside_its_window_across_clock_changes(
    transition: tuple[str, datetime, int], minutes: int, opens: int, length: int, days: str, jitter: int, due_in: int
) -> None:
    """Windows that open or close around a clock change (inside the hour a clock skips or repeats),
    planned from moments around it: every start is inside the window, as `contains` reads it."""
    zone, at, wall = transition
    opens, closes = (wall + opens) % 1440, (wall + opens + length) % 1440
    text = f"{days} {opens // 60:02d}:{opens % 60:02d}-{closes // 60:02d}:{closes % 60:02d} {zone}"
    policy = Policy(max_age=timedelta(days=90), window=text, jitter=timedelta(minutes=jitter))
    now = at + timedelta(minutes=minutes)
    p = plan("app", "q", policy, last_rotated=now - timedelta(days=90) + timedelta(minutes=due_in), now=now)
    assert p.next_start is not None and p.next_start >= now and p.due is not None and p.next_start >= p.due
    window = Window.parse(text)
    assert window.contains(p.next_start.astimezone(UTC)), (text, now, p.next_start)
    earliest = max(now, p.due)
    if window.contains(earliest):  # due inside the window: it starts within the jitter, not days later
        assert p.next_start <= earliest + timedelta(minutes=jitter), (text, now, p.next_start)
