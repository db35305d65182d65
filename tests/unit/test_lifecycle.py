import itertools

import pytest

from rotator.errors import RotationError
from rotator.lifecycle import (
    ALLOWED,
    BEFORE_PROMOTION,
    HAPPY_PATH,
    TERMINAL,
    State,
    can_roll_back,
    check,
)


def test_happy_path_is_a_chain_of_allowed_transitions() -> None:
    """Every consecutive pair of the documented lifecycle is an allowed transition."""
    for current, target in itertools.pairwise(HAPPY_PATH):
        check(current, target)


def test_no_way_back_from_promotion_to_rollback() -> None:
    """After promotion the lifecycle offers no path to rolling_back (the old key is never revoked by rollback)."""
    for state in set(State) - BEFORE_PROMOTION - {State.ROLLING_BACK}:
        assert State.ROLLING_BACK not in ALLOWED[state]
        assert not can_roll_back(state)


def test_every_pre_promotion_state_can_roll_back() -> None:
    for state in BEFORE_PROMOTION:
        assert State.ROLLING_BACK in ALLOWED[state]


@pytest.mark.parametrize("state", sorted(TERMINAL))
def test_terminal_states_go_nowhere(state: State) -> None:
    for target in State:
        with pytest.raises(RotationError):
            check(state, target)


def test_skipping_the_probe_is_illegal() -> None:
    with pytest.raises(RotationError, match="staged → promoted"):
        check(State.STAGED, State.PROMOTED)


def test_the_in_flight_condition_of_the_partial_indexes_is_the_terminal_set_spelt_out() -> None:
    from rotator.state.schema import IN_FLIGHT_SQL

    assert f"state NOT IN ({', '.join(repr(s.value) for s in sorted(TERMINAL))})" == IN_FLIGHT_SQL
