"""Usage telemetry: a last-used field that is null means "never used"; one that is absent means "not told"."""

import httpx
import pytest

from rotator.keys import secret
from rotator.plugin.http import HttpCore
from rotator.providers.brandwave import Brandwave


def brandwave(items: list[dict[str, object]]) -> Brandwave:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"items": items, "totalCount": len(items), "facets": {}})

    http = HttpCore(provider="bw", base_url="http://bw", timeout=1, transport=httpx.MockTransport(handler))
    return Brandwave(http=http, admin_token=lambda: secret("admin-token-value"))


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"id": "k", "name": "n", "lastUsedAt": "2026-01-01T00:00:00Z"}, "2026-01-01T00:00:00+00:00"),
        ({"id": "k", "name": "n", "lastUsedAt": None}, None),
    ],
)
def test_a_reported_last_use(item: dict[str, object], expected: str | None) -> None:
    usage = brandwave([item]).usage(key_id="k", key=secret("old-key-value"))
    assert usage is not None
    assert (usage.last_used_at.isoformat() if usage.last_used_at else None) == expected


def test_an_absent_field_makes_the_signal_unavailable() -> None:
    assert brandwave([{"id": "k", "name": "n"}]).usage(key_id="k", key=secret("old-key-value")) is None
