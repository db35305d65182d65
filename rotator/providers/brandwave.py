"""Brandwave personal access tokens (providers.md, seed 003).

Scheduled rotation uses create + a later delete; the one-step `/rotate` endpoint revokes the old
token at once and is never used here. Assumptions beyond the vendor text, each failing loudly:
- the create response is `{"data": {"id", "token", ...}}`;
- the list is paged with `page` (from 1) and `pageSize`, items carry `id`, `name`, `lastUsedAt`;
Probe: the list endpoint with the key as bearer — every endpoint needs a token, and the list
is the only documented read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from pydantic import SecretStr

from rotator.errors import KeyNotFound, KeyNotProven
from rotator.keys import secret
from rotator.plugin.http import HttpCore, parse_time, require
from rotator.plugin.provider import ApiProvider, CreatedKey, KeyInfo, ProbeResult
from rotator.plugin.registry import Context, ProviderType
from rotator.plugin.settings import CredentialSource, HttpUrl, ProviderSettings

PATH = "/v1/personal-access-tokens"
PAGE_SIZE = 100
MAX_PAGES = 1000


class Brandwave(ApiProvider):
    kind = "brandwave"

    def __init__(self, *, http: HttpCore, admin_token: Callable[[], SecretStr]) -> None:
        self._http = http
        self._admin_token = admin_token

    def _auth(self, token: SecretStr | None = None) -> dict[str, str]:
        value = (token or self._admin_token()).get_secret_value()
        return {"Authorization": f"Bearer {value}"}

    def create_key(self, *, name: str, like: KeyInfo | None) -> CreatedKey:
        response = self._http.request(
            "POST",
            PATH,
            headers=self._auth(),
            json={"name": name, "expiresAt": None},
            idempotent=False,
            side_effect=True,
        )
        envelope = require(response.json(), "data", provider=self.kind, what="create response")
        data = require(envelope["data"], "id", "token", provider=self.kind, what="create response data")
        return CreatedKey(id=str(data["id"]), name=str(data.get("name") or name), secret=secret(str(data["token"])))

    def list_keys(self, *, token: SecretStr | None = None) -> list[KeyInfo]:
        """The live tokens of the user `token` (default: the admin credential) belongs to."""
        found: dict[str, KeyInfo] = {}
        for page in range(1, MAX_PAGES + 1):
            response = self._http.request(
                "GET", PATH, headers=self._auth(token), params={"page": page, "pageSize": PAGE_SIZE}
            )
            body = require(response.json(), "items", provider=self.kind, what="list response")
            before = len(found)
            for item in body["items"]:
                item = require(item, "id", provider=self.kind, what="list item")
                found[str(item["id"])] = KeyInfo(
                    id=str(item["id"]),
                    name=str(item.get("name") or ""),
                    created_at=parse_time(item.get("createdAt")),
                    last_used_at=parse_time(item.get("lastUsedAt")),
                    usage_reported="lastUsedAt" in item,
                )
            total = body.get("totalCount")
            # a server that ignores paging repeats the same items: stop when nothing new arrives
            if len(found) == before or not body["items"] or (isinstance(total, int) and len(found) >= total):
                break
        return list(found.values())

    def revoke_key(self, *, key_id: str) -> None:
        try:
            self._http.request("DELETE", f"{PATH}/{key_id}", headers=self._auth())
        except KeyNotFound:
            return

    def prove_key(self, *, key_id: str, key: SecretStr) -> str:
        """The list made *with the stored key* (a user's own tokens) must show `key_id`, and a call
        with the stored key must move `key_id`'s `lastUsedAt`.

        A token of the same user could revoke and create that user's tokens itself, so what is
        left unproven here grants an attacker nothing he does not hold already.
        """
        before = {k.id: k for k in self.list_keys(token=key)}  # KeyRefused: the stored key is dead
        if key_id not in before:
            raise KeyNotProven(
                f"key {key_id} is not among the tokens of the user the stored api_key belongs to: "
                "it is another user's key"
            )
        if not before[key_id].usage_reported:
            raise KeyNotProven(
                f"brandwave shows no lastUsedAt for key {key_id}; check it by hand and run `rotator adopt SECRET`"
            )
        time.sleep(0.01)  # lastUsedAt has millisecond steps at best
        self.probe(key=key)
        after = {k.id: k for k in self.list_keys(token=key)}
        moved = after.get(key_id) is not None and after[key_id].last_used_at not in (None, before[key_id].last_used_at)
        if not moved:
            raise KeyNotProven(
                f"a call with the stored api_key did not show as a use of key {key_id}: "
                "the stored api_key is another key than key_id names"
            )
        return "the user's own token list and lastUsedAt"

    def probe(self, *, key: SecretStr) -> ProbeResult:
        self._http.request("GET", PATH, headers=self._auth(key), params={"page": 1, "pageSize": 1})
        return ProbeResult()


class BrandwaveSettings(ProviderSettings):
    type: Literal["brandwave"]
    base_url: HttpUrl = "https://api.gobrandwave.com"
    """Brandwave's API."""
    admin_token: CredentialSource = CredentialSource(current=True)
    """The token that creates and revokes keys; `current: true`: the secret's own key makes its successor."""

    def endpoint(self) -> str | None:
        return self.base_url


def _build(settings: BrandwaveSettings, ctx: Context) -> Brandwave:
    what = f"providers.{ctx.instance}.admin_token"
    return Brandwave(
        http=ctx.services.http(ctx.instance, settings.base_url, settings.timeout.total_seconds()),
        admin_token=ctx.credential(settings.admin_token, what),
    )


TYPE = ProviderType(name="brandwave", settings=BrandwaveSettings, build=_build, key_prefixes=("bwpat_",))
