"""Assembles rotator from settings and policies: state, providers, stores, engine, runner."""

from __future__ import annotations

import os
import pwd
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from pydantic import SecretStr

from rotator import config as config_module
from rotator import policies as policies_module
from rotator.config import (
    BoltlyInstance,
    CredentialSource,
    OperatorInstance,
    Settings,
    VaultStoreSettings,
)
from rotator.credentials import read_credential
from rotator.engine.rotation import Engine, Target
from rotator.engine.runner import Runner
from rotator.errors import InputError, RotationError
from rotator.notify import Notifier
from rotator.policies import PolicySet, SecretSpec
from rotator.providers.base import Provider
from rotator.providers.boltly import SPENDING_TIMEOUT, Boltly, BoltlySession, FileKeeper, StoreKeeper, TokenKeeper
from rotator.providers.brandwave import Brandwave
from rotator.providers.http import HttpCore
from rotator.providers.operated import OPERATED
from rotator.ratelimit import Limit, Window
from rotator.state.db import StateDB
from rotator.state.schema import Rotation
from rotator.stores.aws import AwsSecretsManager
from rotator.stores.base import Store


def actor_name(kind: str = "cli") -> str:
    """`kind:user@host`, the user being the effective uid's name — not $LOGNAME or $USER, which
    anyone can set; a sudo caller's own name is kept apart as a claim (`claimed_by` in the audit)."""
    uid = os.geteuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    actor = f"{kind}:{user}@{socket.gethostname()}"
    if kind == "daemon":
        # replicas must be told apart in the audit trail: host, pid and a replica id
        actor += f"/{os.getpid()}/{os.environ.get('ROTATOR_REPLICA_ID') or _REPLICA}"
    return actor


_REPLICA = uuid.uuid4().hex[:6]


class App:
    def __init__(self, settings: Settings, policies: PolicySet) -> None:
        self.settings = settings
        self.policies = policies
        self._db: StateDB | None = None
        self._lock = threading.Lock()
        self.notifier = Notifier(settings.notifications, db=lambda: self.db)
        self._stores: dict[str, Store] = {}
        self._clients: dict[str, HttpCore] = {}
        self._sessions: dict[str, BoltlySession] = {}
        self.connections = 64
        """Kept-alive connections per store and provider client: at least the rotations run at once
        (bulk.rotate_many raises it before its threads start; clients made earlier keep theirs)."""

    @classmethod
    def load(cls, config_path: Path | None = None, policies_dir: Path | None = None) -> App:
        """Read rotator.yaml and the policy files; raise InputError listing every problem."""
        found = config_module.config_path(config_path)
        settings = config_module.load(found)
        directory = policies_dir or settings.policies_dir
        if not directory.is_dir():
            source = (
                "--policies" if policies_dir else f"policies_dir in {found}" if found else "the default policies_dir"
            )
            problems = [f"{directory.absolute()}: policy directory not found ({source})"]
            if found is None:
                problems.append(
                    "no rotator.yaml found: looked for --config, $ROTATOR_CONFIG, ./rotator.yaml and "
                    "/etc/rotator/rotator.yaml; point at yours with --config or ROTATOR_CONFIG "
                    "(`rotator demo` tries rotator out without one)"
                )
            raise InputError(problems)
        return cls(settings, policies_module.load_dir(directory, settings))

    @property
    def db(self) -> StateDB:
        with self._lock:
            if self._db is None:
                self._db = StateDB(self.settings.state_url(), upgrade=self.settings.state.auto_upgrade)
            return self._db

    def store(self, instance: str) -> Store:
        if instance not in self._stores:
            cfg = self.settings.stores[instance]
            if isinstance(cfg, VaultStoreSettings):
                self._stores[instance] = self._vault(instance, cfg)
            else:
                self._stores[instance] = AwsSecretsManager(
                    region=cfg.region,
                    endpoint_url=cfg.endpoint_url,
                    timeout=cfg.timeout.total_seconds(),
                    writes_per_second=cfg.writes_per_second,
                    tags_per_second=cfg.tags_per_second,
                    connections=self.connections,
                )
        return self._stores[instance]

    def _vault(self, instance: str, cfg: VaultStoreSettings) -> Store:
        from rotator.stores.vault import VaultKV

        what = f"stores.{instance}.auth"
        token = approle = None
        if cfg.auth.token is not None:
            token = read_credential(cfg.auth.token, f"{what}.token")
        else:
            assert cfg.auth.approle is not None
            approle = (
                cfg.auth.approle.role_id,
                read_credential(cfg.auth.approle.secret_id, f"{what}.approle.secret_id"),
            )
        return VaultKV(
            url=cfg.url,
            token=token,
            approle=approle,
            pending_mount=cfg.pending_mount,
            pending_prefix=cfg.pending_prefix,
            verify=cfg.verify,
            ca_file=cfg.ca_file,
            timeout=cfg.timeout.total_seconds(),
            namespace=cfg.namespace,
            connections=self.connections,
        )

    def _credential(
        self, source: CredentialSource, spec: SecretSpec, what: str, rotation: Rotation | None
    ) -> Callable[[], SecretStr]:
        """Reads the admin credential when a call needs it, so a rotated credential is picked up.

        `current: true` within a rotation means the rotation's own old key until promotion, then its
        new key: whatever someone else may have written to the secret meanwhile, rotator acts with
        keys it knows, and after promotion it never touches the old key (whose use the cutover gate
        watches). Outside a rotation it is what the secret holds now.
        """
        store = self.store(spec.store.instance)

        def read() -> SecretStr:
            if not source.current:
                return read_credential(source, what)
            # each read is answered from memory after the first (Store.read_version, read_staged)
            if rotation is not None and rotation.old_version and rotation.promoted_at is None:
                old = store.read_version(location=spec.store.location, version_id=rotation.old_version)
                if old is not None:
                    return old.api_key
            if rotation is not None and rotation.promoted_at is not None:
                new = store.read_staged(location=spec.store.location, token=rotation.id)
                if new is not None:
                    return new.api_key
            current = store.read_current(location=spec.store.location)
            if current is None:
                raise RotationError(f"{what}: {spec.store.location} holds no current key to act with")
            return current.value.api_key

        return read

    def provider_for(self, spec: SecretSpec, rotation: Rotation | None = None) -> Provider:
        """The adapter for a secret's provider instance, acting for `rotation` when given."""
        cfg = self.settings.providers[spec.provider]
        if isinstance(cfg, OperatorInstance):
            kind = OPERATED[cfg.type]
            return kind(
                http=self._http(spec.provider, cfg.base_url or kind.default_base_url, cfg.timeout.total_seconds()),
                dashboard=cfg.dashboard,
            )
        http = self._http(spec.provider, cfg.base_url, cfg.timeout.total_seconds())
        if isinstance(cfg, BoltlyInstance):
            return Boltly(http=http, session=self.boltly_session(spec.provider))
        what = f"providers.{spec.provider}.admin_token"
        return Brandwave(http=http, admin_token=self._credential(cfg.admin_token, spec, what, rotation))

    def boltly_session(self, instance: str) -> BoltlySession:
        """One session per Boltly instance and process: its JWT and rotating refresh token are shared."""
        if instance not in self._sessions:
            cfg = self.settings.providers[instance]
            assert isinstance(cfg, BoltlyInstance)
            password = cfg.password
            keeper: TokenKeeper
            if (ref := cfg.refresh_token_store) is not None:
                where = f"{ref.instance}:{ref.location}"
                keeper = StoreKeeper(self.store(ref.instance), ref.location, where=where)
            else:
                keeper = FileKeeper(cfg.refresh_token_file or self.settings.state_dir() / f"{instance}.refresh")
            # one refresh at a time across every process on this state database: a refresh spends
            # the token, and two processes spending the same one would lock each other out
            hold = max(timedelta(seconds=4 * SPENDING_TIMEOUT), 4 * cfg.timeout)  # two refreshes and a login
            self._sessions[instance] = BoltlySession(
                http=self._http(instance, cfg.base_url, cfg.timeout.total_seconds()),
                email=cfg.email,
                password=(lambda: read_credential(password, f"providers.{instance}.password")) if password else None,
                keeper=keeper,
                serialised=lambda: self.db.exclusive(f"boltly-refresh:{instance}", ttl=hold, wait=hold),
            )
        return self._sessions[instance]

    def _http(self, instance: str, base_url: str, timeout: float) -> HttpCore:
        """One HTTP client per provider instance and process: its connections and rate limits are shared."""
        if instance not in self._clients:
            windows = [Window(limit) for limit in self.rate_limits(instance)]
            self._clients[instance] = HttpCore(
                provider=instance, base_url=base_url, timeout=timeout, limits=windows, connections=self.connections
            )
        return self._clients[instance]

    def rate_limits(self, instance: str) -> list[Limit]:
        """rotator.yaml's `rate_limits` of a provider instance, else its vendor's documented ones."""
        cfg = self.settings.providers[instance]
        if cfg.rate_limits is not None:
            return [Limit(r.requests, r.per) for r in cfg.rate_limits]
        if isinstance(cfg, OperatorInstance):
            return list(OPERATED[cfg.type].default_limits)
        return list((Boltly if isinstance(cfg, BoltlyInstance) else Brandwave).default_limits)

    def target(self, rotation: Rotation) -> Target:
        spec = self.policies.secret(rotation.secret)
        if rotation.policy not in self.policies.policies:
            raise InputError([f"rotation {rotation.id}: policy {rotation.policy!r} no longer exists"])
        return Target(
            spec=spec,
            policy=self.policies.policies[rotation.policy],
            provider=self.provider_for(spec, rotation),
            store=self.store(spec.store.instance),
            location=spec.store.location,
            hooks=self.settings.hooks,
        )

    def close(self) -> None:
        """Deliver due notifications (bounded wait) and release the database."""
        if self._db is not None:
            self.notifier.flush()
        self.notifier.stop()
        if self._db is not None:
            self._db.close()

    def runner(self, actor: str) -> Runner:
        engine = Engine(
            db=self.db, resolve=self.target, settings=self.settings.engine, actor=actor, notices=self.notifier.rows
        )
        self.notifier.start()
        return Runner(db=self.db, engine=engine, lease_ttl=self.settings.engine.lease_ttl)
