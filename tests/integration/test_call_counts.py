"""What one rotation costs at the store and the state database (issue 13): counted, not timed.

An incident over thousands of secrets is bounded by these counts (AWS's write quota, the
database's commits), so they are held here as limits; the benchmark reports the times.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import event

from rotator.app import App
from rotator.stores.aws import AwsSecretsManager
from rotator.stores.vault import VaultKV
from tests.support.world import World


def _count_aws(app: App) -> Counter[str]:
    store = app.store("aws")
    assert isinstance(store, AwsSecretsManager)
    calls: Counter[str] = Counter()

    def seen(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    store._client.meta.events.register("before-call.secrets-manager", seen)
    return calls


def _count_commits(app: App) -> list[int]:
    commits = [0]

    def committed(_: Any) -> None:
        commits[0] += 1

    event.listen(app.db.engine, "commit", committed)
    return commits


def _rotate(world: World, app: App) -> str:
    rotation = app.db.create_rotation(
        secret=world.name, provider="bw", policy="fast", trigger="incident", reason="test", actor="test"
    )
    return app.runner("test").run(rotation, follow=True).state


def test_a_rotation_makes_five_aws_calls_and_nine_transactions(world: World) -> None:
    """The essential set: read current, write pending, move AWSCURRENT, drop AWSPENDING, tag. The
    database: the rotation made, its lease taken with it read, the old key found on record, the
    five steps' writes (one each), the lease let go."""
    app = world.app()
    _rotate(world, app)  # the first rotation proves the seeded key at the provider; the second uses the record
    calls, commits = _count_aws(app), _count_commits(app)
    assert _rotate(world, app) == "completed"
    assert sum(calls.values()) <= 5, dict(calls)
    assert calls["PutSecretValue"] == 1 and calls["UpdateSecretVersionStage"] <= 2, dict(calls)
    assert commits[0] <= 9, commits[0]
    assert world.probe(world.current()["api_key"]) == 200 and not world.pending_left()


def test_a_rotation_in_vault_makes_five_calls(vault_world: World) -> None:
    """Read current, write pending (check-and-set 0), write current (check-and-set on the version
    read), delete pending, patch metadata: the new key is never read back."""
    app = vault_world.app()
    _rotate(vault_world, app)
    store = app.store("vault")
    assert isinstance(store, VaultKV)
    calls: Counter[str] = Counter()
    adapter = store._client.adapter
    send = adapter.request

    def counting(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        calls[f"{method.upper()} {url.split('?')[0]}"] += 1
        return send(method, url, *args, **kwargs)

    adapter.request = counting  # type: ignore[method-assign]
    assert _rotate(vault_world, app) == "completed"
    assert sum(calls.values()) <= 5, dict(calls)


def test_discovering_a_fleet_reads_twenty_secrets_a_call(aws_url: str, sm: Any) -> None:
    """A daemon's cold start reads the stored ages of secrets never rotated here: in bulk
    (BatchGetSecretValue, 20 ids a call), not one GetSecretValue each."""
    import json
    import uuid

    store = AwsSecretsManager(region="us-east-1", endpoint_url=aws_url)
    prefix = f"test/fleet-{uuid.uuid4().hex[:8]}"
    names = [f"{prefix}/app-{i:02d}" for i in range(45)]
    for i, name in enumerate(names):
        value = {"api_key": f"key-{i}", "key_id": f"k{i}", "rotated_at": f"2026-01-{1 + i % 28:02d}T00:00:00Z"}
        sm.create_secret(Name=name, SecretString=json.dumps(value))
    calls: Counter[str] = Counter()
    store._client.meta.events.register("before-call.secrets-manager", lambda model, **_: calls.update([model.name]))
    missing = f"{prefix}/never-made"
    found = store.read_current_many([*names, missing])
    assert dict(calls) == {"BatchGetSecretValue": 3}
    assert found[missing] is None and len(found) == 46
    assert all((v := found[n]) is not None and v.value.key_id == f"k{i}" for i, n in enumerate(names))
    assert found[names[3]] is not None and found[names[3]].value.rotated_at == "2026-01-04T00:00:00Z"


def test_discovery_reads_the_version_labelled_current(aws_url: str, sm: Any) -> None:
    """A batch answer is taken only for the version labelled AWSCURRENT: moto's batch read returns
    a secret's first version, and a stale rotated_at made every secret look never rotated after a
    lost state database (all rotated at once)."""
    import json
    import uuid

    store = AwsSecretsManager(region="us-east-1", endpoint_url=aws_url)
    name = f"test/fleet-{uuid.uuid4().hex[:8]}/app"
    old = {"api_key": "old", "key_id": "k-old", "rotated_at": "2026-01-01T00:00:00Z"}
    new = {"api_key": "new", "key_id": "k-new", "rotated_at": "2026-11-30T00:00:00Z"}
    first = sm.create_secret(Name=name, SecretString=json.dumps(old))["VersionId"]
    # promoted as rotator promotes: the new version written pending, then the label moved to it
    second = sm.put_secret_value(SecretId=name, SecretString=json.dumps(new), VersionStages=["AWSPENDING"])
    sm.update_secret_version_stage(
        SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=second["VersionId"], RemoveFromVersionId=first
    )
    found = store.read_current_many([name])[name]
    assert found is not None and found.value.key_id == "k-new" and found.value.rotated_at == "2026-11-30T00:00:00Z"


def test_a_version_read_once_is_not_read_again(aws_url: str, sm: Any) -> None:
    """Store versions never change: a version this process read as current, or by id, is
    answered from memory when a step asks for it by id again (the old key, to act with and to
    probe); another secret's version of the same id is not taken for it."""
    import json
    import uuid

    store = AwsSecretsManager(region="us-east-1", endpoint_url=aws_url)
    name, other = (f"test/known-{uuid.uuid4().hex[:8]}/{n}" for n in ("app", "other"))
    sm.create_secret(Name=name, SecretString=json.dumps({"api_key": "old", "key_id": "k-old"}))
    calls: Counter[str] = Counter()
    store._client.meta.events.register("before-call.secrets-manager", lambda model, **_: calls.update([model.name]))
    current = store.read_current(location=name)
    assert current is not None
    for _ in range(2):
        again = store.read_version(location=name, version_id=current.version_id)
        assert again is not None and again.key_id == "k-old"
    assert dict(calls) == {"GetSecretValue": 1}
    sm.create_secret(Name=other, SecretString=json.dumps({"api_key": "x", "key_id": "k-x"}))
    assert store.read_version(location=other, version_id=current.version_id) is None  # no such version there
    assert dict(calls) == {"GetSecretValue": 2}
