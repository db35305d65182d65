"""The shared HTTP core, over httpx.MockTransport: retries, Retry-After, error mapping, unknown creates."""

import itertools
import time
from collections.abc import Callable

import httpx
import pytest

from rotator.errors import (
    CreateOutcomeUnknown,
    KeyNotFound,
    KeyRefused,
    PermissionDenied,
    ProviderUnavailable,
    UnexpectedResponse,
)
from rotator.plugin.http import HttpCore, require, retry_after_seconds
from rotator.plugin.http import read_vendor_error as read_error


def core(handler: Callable[[httpx.Request], httpx.Response], **kwargs: float) -> HttpCore:
    return HttpCore(
        provider="bw",
        base_url="http://sandbox",
        timeout=1,
        read_error=read_error,
        transport=httpx.MockTransport(handler),
        max_backoff=kwargs.get("max_backoff", 2.0),
    )


def sequence(
    *responses: httpx.Response | Exception,
) -> tuple[Callable[[httpx.Request], httpx.Response], list[str]]:
    seen: list[str] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return handler, seen


def test_429_is_retried_after_the_time_it_asks_for() -> None:
    handler, seen = sequence(httpx.Response(429, headers={"Retry-After": "0"}, json={}), httpx.Response(200, json={}))
    assert core(handler).request("GET", "/x", headers={}).status_code == 200
    assert seen == ["GET", "GET"]


def test_a_retry_after_beyond_the_cap_is_handed_to_the_caller() -> None:
    """A long Retry-After is not slept through inside a request; the engine schedules it instead."""
    handler, seen = sequence(httpx.Response(429, headers={"Retry-After": "3600"}, json={}))
    with pytest.raises(ProviderUnavailable) as exc:
        core(handler).request("GET", "/x", headers={})
    assert exc.value.retry_after == 3600 and seen == ["GET"]


def test_5xx_and_dropped_connections_are_retried_then_succeed() -> None:
    handler, seen = sequence(httpx.Response(503, json={}), httpx.ReadError("reset"), httpx.Response(200, json={}))
    assert core(handler).request("GET", "/x", headers={}).status_code == 200
    assert len(seen) == 3


def test_persistent_5xx_gives_up_with_a_temporary_error() -> None:
    handler, seen = sequence(*[httpx.Response(500, json={"error": {"message": "boom"}})] * 4)
    with pytest.raises(ProviderUnavailable, match="boom"):
        core(handler).request("GET", "/x", headers={})
    assert len(seen) == 4


def test_a_create_that_timed_out_is_never_retried() -> None:
    handler, seen = sequence(httpx.ReadTimeout("slow"), httpx.Response(201, json={}))
    with pytest.raises(CreateOutcomeUnknown):
        core(handler).request("POST", "/keys", headers={}, idempotent=False)
    assert seen == ["POST"]


def test_a_create_answered_with_500_is_an_unknown_outcome() -> None:
    handler, seen = sequence(httpx.Response(500, json={"error": {"message": "boom"}}), httpx.Response(201, json={}))
    with pytest.raises(CreateOutcomeUnknown) as exc:
        core(handler).request("POST", "/keys", headers={}, idempotent=False)
    assert seen == ["POST"]
    said = str(exc.value)  # the provider and the status once each, the vendor's words kept
    assert said.count("HTTP 500") == 1 and said.count(f"{exc.value.provider}:") == 1 and "boom" in said


def test_a_create_refused_at_connect_is_safe_to_retry() -> None:
    """Not done, so the engine may try again (a temporary error, not an unknown outcome) — but the
    client itself does not: a retry here would go out without a fresh proof of the lease."""
    handler, seen = sequence(httpx.ConnectError("refused"), httpx.Response(201, json={}))
    with pytest.raises(ProviderUnavailable) as exc:
        core(handler).request("POST", "/keys", headers={}, idempotent=False, side_effect=True)
    assert not isinstance(exc.value, CreateOutcomeUnknown) and seen == ["POST"]


@pytest.mark.parametrize(("method", "idempotent"), [("POST", False), ("DELETE", True)])
def test_a_side_effect_is_never_retried_or_delayed_inside_the_client(method: str, idempotent: bool) -> None:
    """A 429 on a create or a revoke goes back to the engine with its Retry-After, unsent again;
    and a Retry-After left by an earlier call makes a side effect give up at once, not sleep."""
    answers = [httpx.Response(429, headers={"Retry-After": "1"}, json={}), httpx.Response(201, json={})]
    handler, times = _timed(lambda: answers.pop(0))
    client = core(handler)
    for _ in range(2):
        with pytest.raises(ProviderUnavailable) as exc:
            client.request(method, "/keys", headers={}, idempotent=idempotent, side_effect=method == "POST" or None)
        assert exc.value.retry_after is not None
    assert len(times) == 1  # a retry or a sleep-then-send would have reached the 201


@pytest.mark.parametrize(
    ("status", "kind"),
    [(401, KeyRefused), (403, PermissionDenied), (404, KeyNotFound), (422, UnexpectedResponse)],
)
def test_status_codes_map_to_typed_errors(status: int, kind: type[Exception]) -> None:
    handler, _ = sequence(httpx.Response(status, json={"error": {"code": "c", "message": "m"}}))
    with pytest.raises(kind, match=f"HTTP {status}, c"):
        core(handler).request("GET", "/x", headers={})


def test_error_messages_drop_vendor_details_and_key_shapes() -> None:
    """A vendor echoing the key back (GoBlue's `details.provided`) never reaches our error message."""
    body = {
        "status": "error",
        "message": "Invalid key goblue_sk_" + "a" * 40,
        "details": {"provided": "SECRET"},
    }
    handler, _ = sequence(httpx.Response(401, json=body))
    with pytest.raises(KeyRefused) as exc:
        core(handler).request("GET", "/x", headers={})
    assert "goblue_sk_" + "a" * 40 not in str(exc.value) and "SECRET" not in str(exc.value)


def test_missing_fields_name_the_assumption() -> None:
    with pytest.raises(UnexpectedResponse, match="no 'token' field; fields seen: id, name"):
        require({"id": 1, "name": "x"}, "id", "token", provider="bw", what="create response")


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert retry_after_seconds("7") == 7
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0
    assert retry_after_seconds(None) is None


def test_a_cookie_a_provider_sets_is_neither_kept_nor_sent_back() -> None:
    """Providers authenticate each request with a key; a session cookie would be state that outlives
    the key (and reading Set-Cookie cost a urllib request object per response)."""
    sent: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers.get("cookie"))
        return httpx.Response(200, headers={"Set-Cookie": "session=abc; Path=/"}, json={})

    http = core(handler)
    http.request("GET", "/x", headers={})
    http.request("GET", "/x", headers={})
    assert sent == [None, None]


def _timed(answer: Callable[[], httpx.Response]) -> tuple[Callable[[httpx.Request], httpx.Response], list[float]]:
    times: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        times.append(time.monotonic())
        return answer()

    return handler, times


def test_each_retry_waits_at_least_what_retry_after_asks() -> None:
    """A backoff that ignored Retry-After would retry sooner; a slow machine only makes gaps longer."""
    handler, times = _timed(lambda: httpx.Response(429, headers={"Retry-After": "0.3"}, json={}))
    with pytest.raises(ProviderUnavailable):
        core(handler).request("GET", "/x", headers={})
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) == 4 and all(gap >= 0.3 for gap in gaps), gaps


def test_retry_after_binds_the_next_call_after_one_gave_up() -> None:
    """The preflight gave up on a 429; the next step's first request still waits what the vendor asked."""
    answers = [httpx.Response(429, headers={"Retry-After": "0.5"}, json={})] * 4 + [httpx.Response(200, json={})]
    handler, times = _timed(lambda: answers.pop(0))
    client = core(handler)
    with pytest.raises(ProviderUnavailable):
        client.request("GET", "/preflight", headers={})
    assert client.request("GET", "/step", headers={}).status_code == 200
    assert times[-1] - times[-2] >= 0.5, times


def test_a_long_retry_after_is_handed_on_to_the_next_call_without_sending_it() -> None:
    answers = [httpx.Response(429, headers={"Retry-After": "60"}, json={})]
    handler, times = _timed(lambda: answers.pop(0))
    client = core(handler)
    with pytest.raises(ProviderUnavailable):
        client.request("GET", "/preflight", headers={})
    with pytest.raises(ProviderUnavailable) as exc:
        client.request("GET", "/step", headers={})
    assert len(times) == 1 and exc.value.retry_after is not None and 55 < exc.value.retry_after <= 60


def test_a_timeout_given_to_one_request_replaces_the_clients_for_that_request() -> None:
    """Boltly's login and refresh wait longer than other calls (their answer holds the only copy
    of the next refresh token); the instance's own timeout still binds every other request."""
    timeouts: list[dict[str, float | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        timeouts.append(request.extensions["timeout"])
        return httpx.Response(200, json={})

    client = core(handler)
    client.request("POST", "/v1/auth/login", headers={}, idempotent=False, timeout=30)
    client.request("GET", "/keys", headers={}, timeout=30)
    client.request("GET", "/keys", headers={})
    assert [t["read"] for t in timeouts] == [30, 30, 1]


def test_a_request_without_an_answer_is_named_without_the_key_in_its_path() -> None:
    """Promise 5: GoBlue puts a key in the URL path; the error says which request got no answer,
    never with the key."""
    key = "goblue_sk_" + "b" * 40
    handler, _ = sequence(*[httpx.ReadTimeout("slow")] * 4)
    with pytest.raises(ProviderUnavailable) as exc:
        core(handler).request("GET", f"/v1/keys/{key}/usage", headers={})
    assert "GET /v1/keys/[REDACTED]/usage got no answer (ReadTimeout)" in str(exc.value)
    assert key not in str(exc.value)


def test_errors_name_the_provider_and_status_and_keep_a_top_level_vendor_message() -> None:
    """GoBlue's errors are `{"code", "message"}` at the top level; an answer with neither body nor
    reason phrase is still an error with a text; an unknown create outcome keeps its status."""
    handler, _ = sequence(httpx.Response(422, json={"code": "bad_scope", "message": "scope unknown"}))
    with pytest.raises(UnexpectedResponse) as unexpected:
        core(handler).request("GET", "/x", headers={})
    assert str(unexpected.value) == "bw: scope unknown (HTTP 422, bad_scope)" and unexpected.value.provider == "bw"
    handler, _ = sequence(httpx.Response(499))
    with pytest.raises(UnexpectedResponse, match=r"^bw: error \(HTTP 499\)$"):
        core(handler).request("GET", "/x", headers={})
    handler, _ = sequence(httpx.Response(502, json={}))
    with pytest.raises(CreateOutcomeUnknown) as unknown:
        core(handler).request("POST", "/keys", headers={}, idempotent=False)
    assert unknown.value.status == 502


def test_a_retry_after_of_zero_or_a_fraction_is_honoured_as_given() -> None:
    assert retry_after_seconds("0") == 0 and retry_after_seconds("0.5") == 0.5
    assert retry_after_seconds("-3") == 0 and retry_after_seconds("") is None


def test_every_request_asks_for_json_and_names_rotator_and_keeps_the_base_urls_path() -> None:
    """Vendors answer in JSON when asked, and see who calls; a base URL's path (a proxy's prefix)
    is kept whatever it ends with, only a trailing slash is dropped."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    client = HttpCore(
        provider="bw", base_url="http://sandbox/proxy/API-X/", timeout=1, transport=httpx.MockTransport(handler)
    )
    client.request("GET", "/v1/keys", headers={"Authorization": "Bearer t"})
    [request] = seen
    assert str(request.url) == "http://sandbox/proxy/API-X/v1/keys"
    assert request.headers["accept"] == "application/json" and request.headers["user-agent"] == "rotator/0.1"
    assert request.headers["authorization"] == "Bearer t"
