"""Assembles rotator from settings and policies: state, providers, stores, engine, runner."""

from __future__ import annotations

import os
import pwd
import socket
import threading
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast

from pydantic import SecretStr

from rotator.credentials import read_credential
from rotator.errors import InputError, RotationError
from rotator.notify import Notifier
from rotator.plugin import registry
from rotator.plugin.http import HttpCore
from rotator.plugin.provider import Provider
from rotator.plugin.registry import Context
from rotator.plugin.settings import CredentialSource
from rotator.plugin.store import Store
from rotator.runtime.ratelimit import Limit, Window
from rotator.settings import config as config_module
from rotator.settings import policies as policies_module
from rotator.settings.models import Settings
from rotator.settings.policies import PolicySet, SecretSpec

if TYPE_CHECKING:
    # the engine and the state database (SQLAlchemy's ORM) load when a command first needs them,
    # not for `validate --offline` or `--help`
    from rotator.engine.runner import Runner
    from rotator.engine.steps import Target
    from rotator.state.db import StateDB
    from rotator.state.schema import Rotation


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


def database_named(url: str) -> str:
    """A state database as a person names it: the SQLite file, or the PostgreSQL database and host
    (never the URL, which may carry a password)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return str(parsed.database)
    return f"database {parsed.database} on {parsed.host or 'the local socket'}"


T = TypeVar("T")


class App:
    def __init__(self, settings: Settings, policies: PolicySet, policies_dir: Path | None = None) -> None:
        self.settings = settings
        self.policies = policies
        self.policies_dir = policies_dir or settings.policies_dir
        """The directory the policies were read from (--policies, else policies_dir)."""
        self._db: StateDB | None = None
        self._lock = threading.Lock()
        self.notifier = Notifier(settings.notifications, db=lambda: self.db)
        self._shared: dict[str, object] = {}
        self._shared_lock = threading.RLock()
        self.on_new_database: Callable[[str], None] = lambda where: None
        """Told where, when opening the state database made it (a command says so: a second,
        empty database beside a daemon's is the mistake it most likely is)."""
        self.connections = 64
        """Kept-alive connections per store and provider client: at least the rotations run at once
        (bulk.rotate_many raises it before its threads start; clients made earlier keep theirs)."""

    @classmethod
    def load(cls, config_path: Path | None = None, policies_dir: Path | None = None) -> App:
        """Read rotator.yaml and the policy files; raise InputError listing every problem."""
        found = config_module.config_path(config_path)
        settings = config_module.load(found)
        directory = policies_dir or settings.policies_dir
        try:
            usable, exists, refused = directory.is_dir(), directory.exists(), ""
        except OSError as exc:  # a directory on the way this user may not look into
            usable, exists, refused = False, False, exc.strerror or type(exc).__name__
        if not usable:
            source = (
                "--policies"
                if policies_dir
                else f"policies_dir at {config_module.where_set(found, ('policies_dir',))}"
                if found or os.environ.get("ROTATOR_POLICIES_DIR")
                else "the default policies_dir"
            )
            what = (
                f"cannot look there ({refused})"
                if refused
                else "is a file, not a directory: name the directory that holds the policy files"
                if exists
                else "policy directory not found"
            )
            problems = [f"{directory.absolute()}: {what} ({source})"]
            if found is None:
                problems.append(
                    "no rotator.yaml found: looked for --config, $ROTATOR_CONFIG, ./rotator.yaml and "
                    "/etc/rotator/rotator.yaml; point at yours with --config or ROTATOR_CONFIG "
                    "(`rotator demo` tries rotator out without one)"
                )
            raise InputError(problems)
        return cls(settings, policies_module.load_dir(directory, settings), directory)

    @property
    def db(self) -> StateDB:
        with self._lock:
            if self._db is None:
                from rotator.state.db import StateDB

                url = self.settings.state_url()
                self._db = StateDB(
                    url, upgrade=self.settings.state.auto_upgrade, lease_ttl=self.settings.engine.lease_ttl
                )
                if self._db.schema_was == "none":
                    self.on_new_database(database_named(url))
            return self._db

    def store(self, instance: str) -> Store:
        """One adapter per store instance and process, however many rotations ask at once."""
        cfg = self.settings.stores[instance]
        return self.once(f"store:{instance}", lambda: registry.store(cfg.type).build(cfg, self, instance))

    def credential(
        self, source: CredentialSource, what: str, own_key: Callable[[], SecretStr] | None
    ) -> Callable[[], SecretStr]:
        """Reads the admin credential when a call needs it, so a rotated credential is picked up;
        `current: true` is the key of the secret acted on (`own_key`, made by `_own_key`)."""
        if not source.current:
            return lambda: read_credential(source, what)
        if own_key is None:
            raise RotationError(f"{what}: `current: true` names a secret's own key, and no secret is acted on here")
        return own_key

    def _own_key(self, spec: SecretSpec, rotation: Rotation | None) -> Callable[[], SecretStr]:
        """The secret's own key, read when a call needs it.

        Within a rotation it means the rotation's own old key until promotion, then its new key:
        whatever someone else may have written to the secret meanwhile, rotator acts with keys it
        knows, and after promotion it never touches the old key (whose use the cutover gate
        watches). Outside a rotation it is what the secret holds now.
        """

        def read() -> SecretStr:
            store = self.store(spec.store.instance)
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
                raise RotationError(f"secret {spec.name!r}: {spec.store.location} holds no current key to act with")
            return current.value.api_key

        return read

    def provider_for(self, spec: SecretSpec, rotation: Rotation | None = None) -> Provider:
        """The adapter for a secret's provider instance, acting for `rotation` when given."""
        cfg = self.settings.providers[spec.provider]
        context = Context(instance=spec.provider, services=self, own_key=self._own_key(spec, rotation))
        provider: Provider = registry.provider(cfg.type).build(cfg, context)
        return provider

    # what factories may ask for (registry.Services) ------------------------------------------------

    def once(self, key: str, make: Callable[[], T]) -> T:
        with self._shared_lock:
            if key not in self._shared:
                self._shared[key] = make()
            return cast(T, self._shared[key])

    def exclusive(self, name: str, *, ttl: timedelta, wait: timedelta) -> AbstractContextManager[None]:
        return self.db.exclusive(name, ttl=ttl, wait=wait)

    def state_dir(self) -> Path:
        return self.settings.state_dir()

    def http(self, instance: str, base_url: str, timeout: float) -> HttpCore:
        """One HTTP client per provider instance and process: its connections and rate limits are
        shared (an incident's workers all start at once: one window, not one each)."""
        return self.once(
            f"http:{instance}",
            lambda: HttpCore(
                provider=instance,
                base_url=base_url,
                timeout=timeout,
                limits=[Window(limit) for limit in self.rate_limits(instance)],
                connections=self.connections,
            ),
        )

    def rate_limits(self, instance: str) -> list[Limit]:
        """rotator.yaml's `rate_limits` of a provider instance, else its vendor's documented ones."""
        cfg = self.settings.providers[instance]
        if cfg.rate_limits is not None:
            return [Limit(r.requests, r.per) for r in cfg.rate_limits]
        return list(registry.provider(cfg.type).default_limits)

    def target(self, rotation: Rotation) -> Target:
        from rotator.engine.steps import Target

        spec = self.policies.secret(rotation.secret)
        if rotation.policy not in self.policies.policies:
            raise InputError([f"rotation {rotation.id}: policy {rotation.policy!r} no longer exists"])
        return Target(
            spec=spec,
            policy=self.policies.policies[rotation.policy],
            provider=self.provider_for(spec, rotation),
            store=self.store(spec.store.instance),
            location=spec.store.location,
            hooks=self.settings.hooks_for(self.policies.team_of(spec.name)),
        )

    def close(self) -> None:
        """Deliver due notifications (bounded wait) and release the database."""
        if self._db is not None:
            self.notifier.flush()
        self.notifier.stop()
        if self._db is not None:
            self._db.close()

    def runner(self, actor: str, stop: threading.Event | None = None) -> Runner:
        """A Runner for `actor`; with `stop`, its waits end as soon as `stop` is set (Ctrl-C)."""
        from rotator.engine.rotation import Engine
        from rotator.engine.runner import Runner

        # every time that gates a key is read from the database's clock: replicas' clocks may disagree
        engine = Engine(
            db=self.db,
            resolve=self.target,
            settings=self.settings.engine,
            actor=actor,
            clock=self.db.clock,
            notices=self.notifier.rows,
        )
        self.notifier.start()
        runner = Runner(db=self.db, engine=engine, lease_ttl=self.settings.engine.lease_ttl, clock=self.db.clock)
        if stop is not None:
            runner.sleep = stop.wait
        return runner
