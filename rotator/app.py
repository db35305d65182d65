"""Assembles rotator from settings and policies: state, providers, stores, engine, runner."""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr

from rotator import config as config_module
from rotator import policies as policies_module
from rotator.config import BrandwaveInstance, CredentialSource, Settings
from rotator.engine.rotation import Engine, Target
from rotator.engine.runner import Runner
from rotator.errors import InputError, RotationError
from rotator.keys import secret
from rotator.policies import PolicySet, SecretSpec
from rotator.providers.base import Provider
from rotator.providers.brandwave import Brandwave
from rotator.providers.brandwave import read_error as brandwave_error
from rotator.providers.http import HttpCore
from rotator.state.db import StateDB
from rotator.state.schema import Rotation
from rotator.stores.aws import AwsSecretsManager
from rotator.stores.base import Store


def actor_name(kind: str = "cli") -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{kind}:{user}@{socket.gethostname()}"


class App:
    def __init__(self, settings: Settings, policies: PolicySet) -> None:
        self.settings = settings
        self.policies = policies
        self._db: StateDB | None = None
        self._stores: dict[str, Store] = {}
        self._providers: dict[str, Provider] = {}

    @classmethod
    def load(cls, config_path: Path | None = None, policies_dir: Path | None = None) -> App:
        """Read rotator.yaml and the policy files; raise InputError listing every problem."""
        settings = config_module.load(config_module.config_path(config_path))
        directory = policies_dir or settings.policies_dir
        return cls(settings, policies_module.load_dir(directory, settings))

    @property
    def db(self) -> StateDB:
        if self._db is None:
            self._db = StateDB(self.settings.state_url())
        return self._db

    def store(self, instance: str) -> Store:
        if instance not in self._stores:
            cfg = self.settings.stores[instance]
            self._stores[instance] = AwsSecretsManager(
                region=cfg.region, endpoint_url=cfg.endpoint_url, timeout=cfg.timeout.total_seconds()
            )
        return self._stores[instance]

    def _credential(self, source: CredentialSource, spec: SecretSpec, what: str) -> Callable[[], SecretStr]:
        def read() -> SecretStr:
            if source.env is not None:
                value = os.environ.get(source.env)
                if not value:
                    raise InputError([f"{what}: environment variable {source.env} is not set"])
                return secret(value.strip())
            if source.file is not None:
                try:
                    return secret(source.file.read_text(encoding="utf-8").strip())
                except OSError as exc:
                    raise InputError([f"{what}: cannot read {source.file}: {exc.strerror}"]) from None
            current = self.store(spec.store.instance).read_current(location=spec.store.location)
            if current is None:
                raise RotationError(f"{what}: {spec.store.location} holds no current key to act with")
            return current.value.api_key

        return read

    def provider_for(self, spec: SecretSpec) -> Provider:
        """The adapter for a secret's provider instance (admin credentials may be the secret's own key)."""
        if spec.name not in self._providers:
            self._providers[spec.name] = self._build_provider(spec)
        return self._providers[spec.name]

    def _build_provider(self, spec: SecretSpec) -> Provider:
        cfg = self.settings.providers[spec.provider]
        assert isinstance(cfg, BrandwaveInstance)
        http = HttpCore(
            provider=spec.provider,
            base_url=cfg.base_url,
            timeout=cfg.timeout.total_seconds(),
            read_error=brandwave_error,
        )
        return Brandwave(
            http=http,
            admin_token=self._credential(cfg.admin_token, spec, f"providers.{spec.provider}.admin_token"),
        )

    def target(self, rotation: Rotation) -> Target:
        spec = self.policies.secret(rotation.secret)
        if rotation.policy not in self.policies.policies:
            raise InputError([f"rotation {rotation.id}: policy {rotation.policy!r} no longer exists"])
        return Target(
            spec=spec,
            policy=self.policies.policies[rotation.policy],
            provider=self.provider_for(spec),
            store=self.store(spec.store.instance),
            location=spec.store.location,
        )

    def runner(self, actor: str) -> Runner:
        engine = Engine(db=self.db, resolve=self.target, settings=self.settings.engine, actor=actor)
        return Runner(db=self.db, engine=engine, lease_ttl=self.settings.engine.lease_ttl)
