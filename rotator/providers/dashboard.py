"""Blueticks, Texting Blue and GoBlue: keys only a person makes and revokes, in a dashboard.

What the adapters can do is check: the key's documented format, that the provider accepts it, and
what account it belongs to, so the engine can refuse a key from another account.
Assumptions beyond providers.md, each failing loudly when broken:
- Blueticks: `/v1/ping` returns `data.account_id` (vendor reference page).
- Texting Blue: `/v1/team` returns the team `id`; a 403 there still proves the key authenticates.
- GoBlue: the identity of a key is the set of form ids `/v1/forms` returns (a list, or a list under
  `forms` or `data`); the key only ever travels in the Authorization header.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal

from pydantic import SecretStr

from rotator.errors import PermissionDenied, UnexpectedResponse
from rotator.plugin.http import HttpCore, require
from rotator.plugin.provider import DashboardProvider, ProbeResult, Usage
from rotator.plugin.registry import Context, ProviderType
from rotator.plugin.settings import HttpUrl, ProviderSettings
from rotator.runtime.ratelimit import Limit


class _Dashboard(DashboardProvider):
    default_base_url: str
    default_dashboard: str
    key_prefixes: tuple[str, ...]
    """How its keys begin (masked in logs: registry.ProviderType.key_prefixes)."""

    def __init__(self, *, http: HttpCore, dashboard: str | None = None) -> None:
        self._http = http
        self.dashboard = dashboard or self.default_dashboard

    def create_instructions(self, *, name: str, permissions: list[str] | None) -> str:
        wanted = f" with the permissions {', '.join(permissions)}" if permissions else ""
        return f"create a {self.kind} key named {name}{wanted} at {self.dashboard}"


class Blueticks(_Dashboard):
    kind = "blueticks"
    default_base_url = "https://api.blueticks.co"
    default_dashboard = "app.blueticks.co/blueticks-api (Create key)"
    key_pattern = re.compile(r"bt_live_[A-Za-z0-9]{16,64}")
    key_form = "bt_live_ followed by 16-64 letters and digits"
    key_prefixes = ("bt_live_", "bt_test_")
    prefix_length = 12

    def probe(self, *, key: SecretStr) -> ProbeResult:
        response = self._http.request("GET", "/v1/ping", headers={"Authorization": f"Bearer {key.get_secret_value()}"})
        body = require(response.json(), "data", provider=self.kind, what="ping response")
        data = require(body["data"], "account_id", provider=self.kind, what="ping response data")
        return ProbeResult({"account_id": str(data["account_id"])})


class TextingBlue(_Dashboard):
    kind = "texting-blue"
    default_limits = (Limit(60, timedelta(minutes=1)),)  # the smallest plan's team window
    default_base_url = "https://api.texting.blue/v1"
    default_dashboard = "the Texting Blue dashboard, Settings > API Keys (Create Key)"
    key_pattern = re.compile(r"tb_(?:live|test)_[A-Za-z0-9]{32}")
    key_form = "tb_live_ followed by 32 letters and digits"
    key_prefixes = ("tb_live_", "tb_test_")
    prefix_length = 12

    def probe(self, *, key: SecretStr) -> ProbeResult:
        headers = {"x-api-key": key.get_secret_value()}
        try:
            response = self._http.request("GET", "/team", headers=headers)
        except PermissionDenied:
            # authenticated, but without team:read the team cannot be named
            return ProbeResult({})
        body = require(response.json(), "id", provider=self.kind, what="team response")
        return ProbeResult({"team_id": str(body["id"])})

    def revoke_instructions(self, *, prefix: str) -> str:
        return f"revoke the old key with prefix {prefix} in the Texting Blue dashboard, Settings > API Keys"


class GoBlue(_Dashboard):
    kind = "goblue"
    default_limits = (Limit(100, timedelta(minutes=1)), Limit(1000, timedelta(hours=1)))
    default_base_url = "https://api.goblue.app/v1"
    default_dashboard = (
        "the GoBlue iOS app, Settings > API Access (a second key while the old stays active comes from GoBlue support)"
    )
    key_pattern = re.compile(r"goblue_sk_[A-Za-z0-9]{40}")
    key_form = "goblue_sk_ followed by 40 letters and digits (50 characters)"
    key_prefixes = ("goblue_sk_",)
    prefix_length = 14

    def probe(self, *, key: SecretStr) -> ProbeResult:
        response = self._http.request("GET", "/forms", headers={"Authorization": f"Bearer {key.get_secret_value()}"})
        forms = _forms(response.json())
        return ProbeResult({"form_ids": ",".join(sorted(forms))})

    def usage(self, *, key_id: str | None, key: SecretStr) -> Usage | None:
        """The key's hourly X-RateLimit-Remaining: it drops by more than our own calls when others use the key."""
        response = self._http.request("GET", "/forms", headers={"Authorization": f"Bearer {key.get_secret_value()}"})
        remaining = response.headers.get("x-ratelimit-remaining")
        return Usage(counter_remaining=int(remaining)) if remaining and remaining.isdigit() else None

    def revoke_instructions(self, *, prefix: str) -> str:
        return f"have the old key {prefix} deactivated (GoBlue app or support)"


def _forms(body: Any) -> list[str]:
    items = body
    if isinstance(body, dict):
        items = body.get("forms", body.get("data"))
    if not isinstance(items, list):
        seen = ", ".join(sorted(body)) if isinstance(body, dict) else type(body).__name__
        raise UnexpectedResponse(f"forms response had no list of forms; fields seen: {seen}", provider="goblue")
    return [str(require(item, "id", provider="goblue", what="form")["id"]) for item in items]


class OperatedSettings(ProviderSettings):
    """A provider whose keys only a person can make and revoke, in a dashboard."""

    base_url: HttpUrl | None = None
    """Default: the vendor's documented base URL."""
    dashboard: str | None = None
    """Where the operator makes keys, shown in the instructions. Default: the vendor's documented place."""

    def endpoint(self) -> str | None:
        return self.base_url


class BluetickSettings(OperatedSettings):
    type: Literal["blueticks"]


class TextingBlueSettings(OperatedSettings):
    type: Literal["texting-blue"]


class GoBlueSettings(OperatedSettings):
    type: Literal["goblue"]


def _registered(adapter: type[_Dashboard], settings: type[OperatedSettings]) -> ProviderType:
    def build(cfg: OperatedSettings, ctx: Context) -> _Dashboard:
        base_url = cfg.base_url or adapter.default_base_url
        http = ctx.services.http(ctx.instance, base_url, cfg.timeout.total_seconds())
        return adapter(http=http, dashboard=cfg.dashboard)

    return ProviderType(
        name=adapter.kind,
        settings=settings,
        build=build,
        default_limits=adapter.default_limits,
        key_prefixes=adapter.key_prefixes,
    )


BLUETICKS = _registered(Blueticks, BluetickSettings)
TEXTING_BLUE = _registered(TextingBlue, TextingBlueSettings)
GOBLUE = _registered(GoBlue, GoBlueSettings)
