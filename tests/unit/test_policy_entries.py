"""The short way of reading a fleet's entries (policy_entries) against the entry model it stands in
for: whatever it accepts, SecretEntry accepts and reads alike; whatever SecretEntry refuses, it
leaves to SecretEntry (which says what is wrong)."""

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from rotator.settings import policy_entries
from rotator.settings.policy_models import SecretEntry

_TEXT = st.one_of(
    st.sampled_from(["app", "a/b", "bw", "quarterly", "x" * 200, "x" * 201, "", "-a", "a b", "app\n", "é"]),
    st.text(max_size=12),
)
_VALUE: Any = st.one_of(_TEXT, st.none(), st.integers(), st.booleans(), st.lists(_TEXT, max_size=2))
_WHERE = st.one_of(
    st.fixed_dictionaries({"secret_id": _TEXT}, optional={"instance": _TEXT}),
    st.fixed_dictionaries({"path": _TEXT}, optional={"mount": _TEXT, "instance": _TEXT, "namespace": _TEXT}),
    st.dictionaries(_TEXT, _VALUE, max_size=2),
    _VALUE,
)
_STORE = st.one_of(
    st.dictionaries(st.sampled_from(["aws", "vault", "file", "AWS"]), _WHERE, max_size=2),
    _VALUE,
)
_FIELDS = {
    "name": _TEXT,
    "provider": _TEXT,
    "store": _STORE,
    "policy": _TEXT,
    "access": st.one_of(st.lists(_TEXT, max_size=3), _VALUE),
    "consumers": st.sampled_from([[], [{"name": "api"}], [{}]]),
    "permissions": st.lists(_TEXT, max_size=1),
    "colour": _TEXT,
}
_GOOD = {"name": "app", "provider": "bw", "store": {"aws": {"secret_id": "prod/app"}}, "policy": "quarterly"}


@st.composite
def _entries(draw: st.DrawFn) -> Any:
    """A good entry with one to three of its fields changed, removed or added: an entry wrong in
    one place is where a short cut would go wrong."""
    entry: dict[str, Any] = dict(_GOOD)
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(sorted(_FIELDS)))
        if draw(st.booleans()) and key in entry:
            del entry[key]
        else:
            entry[key] = draw(_FIELDS[key])
    return draw(st.one_of(st.just(entry), _VALUE)) if draw(st.integers(0, 9)) == 0 else entry


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_entries())
def test_the_short_way_reads_what_the_model_reads_and_nothing_it_refuses(item: dict[str, Any]) -> None:
    short = policy_entries._plain(item)
    try:
        model = SecretEntry.model_validate(item).spec()
    except ValidationError:
        assert short is None
        return
    if short is not None:
        assert short == model
        assert type(short.store.part) is type(model.store.part)


def test_a_fleet_entry_is_read_the_short_way_and_shares_its_repeated_strings() -> None:
    entries = [
        {
            "name": f"app-{i}",
            "provider": "".join(["b", "w"]),  # a string of its own, as a parser makes it
            "store": {"".join(["a", "ws"]): {"secret_id": f"fleet/app-{i}"}},
            "policy": "".join(["quarter", "ly"]),
            "access": ["".join(["alice", "@example.com"])],
        }
        for i in range(2)
    ]
    first, second = (policy_entries._plain(entry) for entry in entries)
    assert first is not None and second is not None
    assert first.store.location == "fleet/app-0" and first.store.instance == "aws"
    assert first.provider is second.provider and first.policy is second.policy
    assert first.access is second.access and first.store.kind is second.store.kind
    assert first == policy_entries.read(entries[0])
