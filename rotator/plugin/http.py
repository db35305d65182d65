"""The HTTP core every adapter shares: timeouts, retries, and vendor errors mapped in one place.

Idempotent requests are retried (tenacity) on 429 — honouring Retry-After — on 5xx, timeouts
and connection errors, with capped exponential backoff. A create is not idempotent: it is
retried only when the request certainly never left (connection refused, or a 429, which means
"not done"); any other failure becomes CreateOutcomeUnknown. A Retry-After longer than the cap is
not slept through here: the error carries it so the engine can schedule the next attempt.
The vendor's Retry-After binds the whole client, not the one call that got it: a request that
gave up on a 429 leaves the time before which no request of this instance goes out (the next
step, another rotation), so a throttled vendor never sees a call it asked not to get.
Request URLs logged here have any key removed; httpx's own request log is silenced in `log`.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from rotator import log
from rotator.errors import (
    CreateOutcomeUnknown,
    KeyNotFound,
    KeyRefused,
    PermissionDenied,
    ProviderError,
    ProviderUnavailable,
    UnexpectedResponse,
)
from rotator.runtime.ratelimit import Window, take_all

_log = log.get(__name__)

ErrorText = Callable[[Any], tuple[str | None, str | None]]
"""Reads (code, message) out of a vendor's error body."""


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds; it may be a number or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        if parsed is None:
            return None
        return max(0.0, (parsed - datetime.now(UTC)).total_seconds())


def read_vendor_error(body: Any) -> tuple[str | None, str | None]:
    """(code, message) from every body shape in providers.md: `{"error": {...}}` (Blueticks, Texting
    Blue, Brandwave, Boltly) or top-level `code`/`message` (GoBlue). `details` are never read: GoBlue
    echoes part of the key there."""
    if not isinstance(body, dict):
        return None, None
    error = body.get("error")
    if isinstance(error, dict):
        return _text(error.get("code")), _text(error.get("message"))
    return _text(body.get("code")), _text(body.get("message")) or _text(error)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def error_from_response(provider: str, response: httpx.Response, read: ErrorText) -> ProviderError:
    """Map a non-2xx answer to a typed error; the vendor's message is kept, never its details."""
    try:
        code, message = read(response.json())
    except ValueError:
        code, message = None, None
    message = log.redact(message or response.reason_phrase or "error")
    status = response.status_code
    kinds: dict[int, type[ProviderError]] = {401: KeyRefused, 403: PermissionDenied, 404: KeyNotFound}
    if status in kinds:
        return kinds[status](message, provider=provider, status=status, code=code)
    if status == 429 or status >= 500:
        return ProviderUnavailable(
            message,
            provider=provider,
            status=status,
            code=code,
            retry_after=retry_after_seconds(response.headers.get("retry-after")),
        )
    return UnexpectedResponse(message, provider=provider, status=status, code=code)


class _NoCookies(httpx.Cookies):
    """A jar that stays empty: a request sends none, and a response's Set-Cookie is not read."""

    def extract_cookies(self, response: httpx.Response) -> None:
        pass


class _Client(httpx.Client):
    # httpx has no switch for cookies: the jar is its `cookies` property, so the property is replaced
    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, value: Any) -> None:
        pass


_NO_COOKIES = _NoCookies()


class HttpCore:
    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        timeout: float,
        read_error: ErrorText = read_vendor_error,
        attempts: int = 4,
        max_backoff: float = 20.0,
        transport: httpx.BaseTransport | None = None,
        limits: Sequence[Window] = (),
        connections: int = 64,
    ) -> None:
        self.provider = provider
        self.limits = tuple(limits)
        self._read_error = read_error
        self._max_backoff = max_backoff
        self.timeout = timeout
        self._not_before = 0.0
        """time.monotonic() before which the vendor asked (Retry-After) not to be called."""
        # keys authenticate every request; a provider's session cookie would be state outliving the key
        self._client = _Client(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout),
            transport=transport,
            headers={"User-Agent": "rotator/0.1", "Accept": "application/json"},
            # as many kept-alive connections as rotations run at once: none is reopened per request
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=connections),
        )
        # one for every request: tenacity keeps each call's state per thread
        self._retrying = Retrying(
            retry=retry_if_exception(self._retryable),
            stop=stop_after_attempt(attempts),
            wait=self._wait,
            reraise=True,
        )

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        idempotent: bool = True,
        timeout: float | None = None,
        side_effect: bool | None = None,
    ) -> httpx.Response:
        """Send one request, retrying what is safe to retry; return a 2xx response or raise.
        `timeout` replaces the instance's for this request.

        A side effect (a key's create, a DELETE; `side_effect` says so) is sent once and never
        waited for here: the engine proved its lease just before the call, and a retry or a
        Retry-After sleep inside the call would send it later, after the lease may have passed to
        another replica. Its temporary errors go back to the engine, which tries again under a
        fresh proof."""
        if side_effect or (side_effect is None and method == "DELETE"):
            return self._send(method, path, headers, json, params, idempotent, timeout, wait=False)
        return self._retrying(self._send, method, path, headers, json, params, idempotent, timeout)

    def _retryable(self, exc: BaseException) -> bool:
        if not isinstance(exc, ProviderUnavailable) or isinstance(exc, CreateOutcomeUnknown):
            return False
        return exc.retry_after is None or exc.retry_after <= self._max_backoff

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        backoff = wait_exponential_jitter(multiplier=0.2, max=self._max_backoff)(state)
        if isinstance(exc, ProviderError) and exc.retry_after is not None:
            return min(exc.retry_after, self._max_backoff)
        return float(backoff)

    def _send(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        json: Any,
        params: Mapping[str, Any] | None,
        idempotent: bool,
        timeout: float | None = None,
        *,
        wait: bool = True,
    ) -> httpx.Response:
        self._respect_retry_after(wait=wait)
        take_all(self.limits)
        started = time.monotonic()
        try:
            response = self._client.request(
                method,
                path,
                headers=dict(headers),
                json=json,
                params=params,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else httpx.Timeout(timeout),
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # the request never reached the server: safe to retry even a create
            raise ProviderUnavailable(f"cannot connect ({type(exc).__name__})", provider=self.provider) from None
        except httpx.TransportError as exc:
            kind = CreateOutcomeUnknown if not idempotent else ProviderUnavailable
            raise kind(
                f"{method} {log.redact(path)} got no answer ({type(exc).__name__})", provider=self.provider
            ) from None
        _log.debug(
            "provider.request",
            provider=self.provider,
            method=method,
            path=log.redact(path),
            status=response.status_code,
            ms=round((time.monotonic() - started) * 1000),
        )
        if response.is_success:
            return response
        error = error_from_response(self.provider, response, self._read_error)
        if isinstance(error, ProviderUnavailable) and error.retry_after:
            self._not_before = max(self._not_before, time.monotonic() + error.retry_after)
        if not idempotent and response.status_code >= 500:
            raise CreateOutcomeUnknown(
                error.reason, provider=self.provider, status=response.status_code, code=error.code
            )
        raise error

    def _respect_retry_after(self, *, wait: bool) -> None:
        left = self._not_before - time.monotonic()
        if left <= 0:
            return
        if left > self._max_backoff or not wait:
            raise ProviderUnavailable(
                f"asked not to be called for another {left:.1f}s (Retry-After)",
                provider=self.provider,
                retry_after=left,
            )
        time.sleep(left)


def require(body: Any, *fields: str, provider: str, what: str) -> dict[str, Any]:
    """The object `body` with `fields` present, or UnexpectedResponse naming what is missing."""
    if not isinstance(body, dict):
        raise UnexpectedResponse(f"{what} was not a JSON object", provider=provider)
    missing = [f for f in fields if body.get(f) in (None, "")]
    if missing:
        seen = ", ".join(sorted(body)) or "none"
        raise UnexpectedResponse(
            f"{what} had no {', '.join(repr(m) for m in missing)} field; fields seen: {seen}",
            provider=provider,
        )
    return body


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
