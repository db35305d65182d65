import io
import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from rotator import log
from rotator.keys import fingerprint, secret
from rotator.plugin import registry


def _lines(stream: io.StringIO) -> str:
    return stream.getvalue()


def test_registered_secret_is_masked_everywhere_in_a_line() -> None:
    """A value seen as a secret once is masked in messages, fields, nested fields and exceptions."""
    stream = io.StringIO()
    log.configure(level="debug", stream=stream)
    value = secret("opaque-token-without-any-known-shape-123").get_secret_value()
    log.get("t").info(f"got {value}", field=value, nested={"a": [value]}, exc=ValueError(value))
    out = _lines(stream)
    assert value not in out
    assert out.count(log.MASK) >= 4


@pytest.fixture(autouse=True)
def _provider_types_loaded() -> None:
    """The shapes as the first redaction of any process makes them (log._vendor_shapes)."""
    log._vendor_shapes()


def test_key_shapes_are_masked_even_if_never_registered() -> None:
    stream = io.StringIO()
    log.configure(level="debug", stream=stream)
    shapes = [
        "bt_live_abcdefabcdef12",
        "tb_live_" + "a" * 32,
        "goblue_sk_" + "b" * 40,
        "sk_live_xyz123456",
        "rt_refresh123456",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
        "Bearer abc.def-123",
    ]
    for shape in shapes:
        log.get("t").warning("request", header=shape)
    out = _lines(stream)
    for shape in shapes:
        assert shape not in out


def test_chatty_libraries_stay_quiet_under_debug_and_are_redacted() -> None:
    """httpx and botocore are held at WARNING even with DEBUG on, and what they do say is redacted."""
    stream = io.StringIO()
    log.configure(level="debug", stream=stream)
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("botocore").getEffectiveLevel() == logging.WARNING
    logging.getLogger("httpx").info("GET https://api.goblue.app/v1/messages/goblue_sk_%s", "c" * 40)
    logging.getLogger("botocore").warning("body %s", "sk_live_leakleakleak")
    out = _lines(stream)
    assert "goblue_sk_" + "c" * 40 not in out
    assert "sk_live_leakleakleak" not in out
    assert "body [REDACTED]" in out


def test_json_lines_stay_valid_json() -> None:
    stream = io.StringIO()
    log.configure(level="info", stream=stream)
    log.get("t").info("event", key_id="abc", fingerprint=fingerprint("x"))
    record = json.loads(stream.getvalue().splitlines()[-1])
    assert record["event"] == "event" and record["key_id"] == "abc"


def test_secretstr_repr_hides_the_value() -> None:
    assert "hunter2" not in repr(SecretStr("hunter2hunter2"))
    assert fingerprint("abc").startswith("sha256:") and len(fingerprint("abc")) == 19


def _redacted_by_spans(text: str, known: set[str]) -> str:
    """What the redactor must give, looked for plainly: every occurrence of every remembered value
    (overlapping ones too) is a span; spans that overlap are one mask; then the key shapes."""
    spans = sorted(
        (start, start + len(value)) for value in known for start in range(len(text)) if text.startswith(value, start)
    )
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, kept = [], 0
    for start, end in merged:
        out += [text[kept:start], log.MASK]
        kept = end
    return log._KEY_SHAPES.sub(log.MASK, "".join(out) + text[kept:])


def test_promise_5_secrets_that_overlap_in_a_line_leave_no_part_of_either() -> None:
    """Two remembered secrets sharing characters, and one repeating into itself: replacing one
    value after the other would cut the second and print what is left of it."""
    saved = dict(log._known)
    try:
        log._known.clear()
        for value in ("aaaaab", "aabbaa", "aaaaaa", "qwerty-123", "y-123456"):
            log.remember_secret(value)
        # two secrets side by side, then three overlapping: two masks, not a character left
        assert log.redact("<aaaaabaabbaaaaaaaa>") == f"<{log.MASK}{log.MASK}>"
        assert log.redact("x qwerty-123456 y") == f"x {log.MASK} y"
        assert log.redact("aaaaaaa aaaaab") == f"{log.MASK} {log.MASK}"
    finally:
        log._known.clear()
        log._known.update(saved)


@given(
    st.lists(st.text(alphabet="abc-", min_size=6, max_size=10), min_size=1, max_size=8),
    st.lists(st.one_of(st.text(alphabet="abc- x", max_size=12), st.integers(0, 7)), max_size=12),
)
@settings(max_examples=300, deadline=None)
def test_remembered_values_are_found_wherever_they_occur(values: list[str], parts: list[str | int]) -> None:
    """Found by their first characters (a large incident remembers thousands of values), yet
    masked exactly where looking for each one would find it: overlapping and nested values included."""
    text = "".join(values[p % len(values)] if isinstance(p, int) else p for p in parts)
    saved = dict(log._known)
    try:
        log._known.clear()
        for value in values:
            log.remember_secret(value)
        assert log.redact(text) == _redacted_by_spans(text, set(values))
    finally:
        log._known.clear()
        log._known.update(saved)


def test_log_lines_follow_sys_stderr_when_a_live_table_swaps_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """rich's Live replaces sys.stderr while it draws a table and prints what is written there
    above the table: the logs must write to the stream of the moment, not the one at configure."""
    log.configure(level="info", fmt="console")
    swapped = io.StringIO()
    monkeypatch.setattr("sys.stderr", swapped)
    log.get("t").warning("through.structlog", n=1)
    logging.getLogger("some.library").warning("through logging")
    assert "through.structlog" in swapped.getvalue() and "through logging" in swapped.getvalue()


def test_a_provider_types_own_key_prefixes_are_what_is_masked() -> None:
    """The shapes come from the installed types, not a list in log.py: each built-in type names
    its prefixes, and a prefix no type names is masked only once one does."""
    for name, kind in registry.providers().items():
        assert kind.key_prefixes, name
    assert log.redact("zz_live_abcdefgh123") == "zz_live_abcdefgh123"
    log.mask_key_prefixes(["zz_live_"])  # a sixth vendor's type, loaded
    assert log.redact("key zz_live_abcdefgh123 sent") == f"key {log.MASK} sent"
    assert log.redact("zz_live_short") == "zz_live_short"  # not a key: too short


def test_a_vendors_key_is_masked_before_any_settings_are_read() -> None:
    """A process that never read its settings (a command failing on its arguments) still masks
    every installed type's keys: the types' prefixes are asked for at the first redaction."""
    import subprocess
    import sys

    code = "from rotator import log; print(log.redact('x bwpat_ABCDEFGHIJKL sk_live_ABCDEFGHIJ y'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"x {log.MASK} {log.MASK} y"
