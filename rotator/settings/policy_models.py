"""What a policy file holds, as models: secrets, their store, consumers and hooks. Loading and
checking the files together is rotator.settings.policies' job; the rules of one policy are in policy_rules."""

from __future__ import annotations

import re
import sys
from typing import Annotated, Any, Literal, NamedTuple
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from rotator.plugin.settings import Lean, StoreRefPart, check_http_url
from rotator.policy.rules import Policy
from rotator.stores.refs import StoreRef


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HeaderCredential(_Strict):
    """A header value rotator.yaml keeps (`hooks.credentials`), named rather than written here."""

    credential: str


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}")
_ROUTING = re.compile(
    # framing and hop-by-hop
    r"host|connection|content-length|content-encoding|transfer-encoding|te|trailer|upgrade|keep-alive|expect"
    r"|via|max-forwards|alt-used|proxy-.*|:.*"
    # what proxies and frameworks read as the real host, scheme, path, method or client
    r"|forwarded|x-forwarded.*|x-host|x-http-host-override|x-original-.*|x-rewrite-url|x-override-url"
    r"|x-http-method.*|x-method-override|x-scheme|x-url-scheme|front-end-https|x-real-ip|.*client-ip"
    r"|x-cluster-client-ip|x-proxyuser-ip|cf-.*|fastly-.*|x-envoy-.*|x-accel-.*|x-sendfile-.*",
    re.IGNORECASE,
)
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class HttpHook(_Strict):
    method: Literal["GET", "POST", "PUT"] = "GET"
    url: str
    headers: dict[str, str | HeaderCredential] = {}
    """Plain header values or credentials named from rotator.yaml; never one that routes or frames
    the request (`Host`, `Content-Length`, `X-Forwarded-*`…): behind a shared proxy those would
    carry it to another virtual host than the allowed one."""

    @field_validator("headers")
    @classmethod
    def _not_routing(cls, value: dict[str, str | HeaderCredential]) -> dict[str, str | HeaderCredential]:
        for name, content in value.items():
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"header name {name!r} is not a plain HTTP header name")
            if _ROUTING.fullmatch(name):
                raise ValueError(
                    f"header {name!r} routes or frames the request and is set by rotator alone; "
                    "hooks may send e.g. Authorization or X-… headers of their own"
                )
            if isinstance(content, str) and _UNPRINTABLE.search(content):
                raise ValueError(f"header {name!r}: control characters in its value")
        return value

    @field_validator("url")
    @classmethod
    def _an_http_url(cls, value: str) -> str:
        try:
            check_http_url(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is {exc}") from None
        parsed = urlsplit(value)
        if parsed.username or parsed.password:
            raise ValueError("no user or password in a hook URL: use headers with {credential: NAME}")
        return value


class Hook(_Strict):
    http: HttpHook | None = None
    command: str | None = None
    """The name of a command defined in rotator.yaml (`hooks.commands`)."""

    @field_validator("command", mode="before")
    @classmethod
    def _a_name(cls, value: Any) -> Any:
        if isinstance(value, list):
            raise ValueError(
                "a policy file names a command hook; the command itself is defined in rotator.yaml under "
                "hooks.commands (e.g. command: reload-support-api)"
            )
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Hook:
        if (self.http is None) == (self.command is None):
            raise ValueError("a hook is either http: {...} or command: NAME")
        return self


class Consumer(_Strict):
    name: str = Field(min_length=1, max_length=200)
    reload: Hook | None = None
    confirm: Hook | None = None


NAME = r"[A-Za-z0-9][A-Za-z0-9._/@+-]{0,199}"


Shared = Annotated[str, AfterValidator(sys.intern)]
"""A name that thousands of secrets repeat (a provider, a policy, a person): one string for all of
them, not one per secret (about 17 MB at 100,000 secrets)."""


class SecretEntry(Lean):
    """A secret as a policy file writes it, validated; kept as a SecretSpec (entry.spec())."""

    name: str = Field(
        pattern=f"^{NAME}$",
        description="a name is 1 to 200 letters, digits and . _ / @ + -, starting with a letter or digit",
    )
    provider: Shared
    store: StoreRef
    policy: Shared
    # tuples: one empty tuple is shared by every secret, an empty list is not
    access: tuple[Shared, ...] = ()
    consumers: tuple[Consumer, ...] = ()
    permissions: tuple[str, ...] = ()
    """What the key must be allowed (shown to an operator making it in a dashboard)."""

    def spec(self) -> SecretSpec:
        kind, part = self.store.chosen()
        return SecretSpec(
            self.name, self.provider, Place(kind, part), self.policy, self.access, self.consumers, self.permissions
        )


class Place(NamedTuple):
    """Where a secret is kept: the store type its `store:` names and the reference under it. A
    tuple, not a model: a fleet keeps 100,000 of them (a StoreRef model and its dict cost ~250 bytes
    more each)."""

    kind: str
    part: StoreRefPart

    def chosen(self) -> tuple[str, StoreRefPart]:
        return self.kind, self.part

    @property
    def instance(self) -> str:
        """The store instance in rotator.yaml."""
        return self.part.instance

    @property
    def location(self) -> str:
        """The secret's place in its store: an AWS secret id, or `<mount>:<path>` in Vault."""
        return self.part.location


class SecretSpec(NamedTuple):
    """One secret of the policies in force, as SecretEntry validated it. A tuple rather than a
    model: at 100,000 secrets a model and its dict per secret held ~35 MB more, and building one
    cost more than reading its YAML."""

    name: str
    provider: str
    store: Place
    policy: str
    access: tuple[str, ...] = ()
    consumers: tuple[Consumer, ...] = ()
    permissions: tuple[str, ...] = ()


class PolicyFile(_Strict):
    policies: dict[str, Policy] = {}
    secrets: list[SecretEntry] = []
    teams: dict[str, list[str]] = {}
