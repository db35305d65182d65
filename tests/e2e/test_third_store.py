"""A third store from a package of its own, found through its entry point: one file holds its
settings, its policy-file locations, its grant shape and the adapter, and a Brandwave secret kept
in it is rotated end to end — the old key revoked and proven dead, the new one current in the
store — without any change inside rotator/ (the seam of rotator/plugin/registry.py, as the sixth provider
test proves for providers). A grant of another shape than the store's is refused at its line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e

PLUGIN = '''\
"""Files: each secret a JSON document of versions under a directory, with current, previous and
pending labels as AWS Secrets Manager keeps them."""

import json
import os
import threading
import uuid
from pathlib import Path
from typing import Literal

from rotator.plugin.settings import StoreRefPart, StoreSettings
from rotator.errors import StoreConflict
from rotator.plugin.registry import StoreType
from rotator.plugin.store import Store, StoredValue, Version


class FileStoreSettings(StoreSettings):
    type: Literal["files"] = "files"
    directory: str
    """Where the secrets' files are."""


class FileRef(StoreRefPart):
    name: str
    """A secret's file under the directory (a grant: as a pattern)."""
    instance: str = "files"

    @classmethod
    def check_pattern(cls, name, pattern):
        if "/" in pattern or pattern.startswith("."):
            raise ValueError(f"name pattern {pattern!r}: one file name, no directories")
        return pattern

    @property
    def location(self):
        return self.name


class FileStore(Store):
    def __init__(self, directory):
        self._dir, self._lock = Path(directory), threading.RLock()

    def _read(self, location):
        try:
            return json.loads((self._dir / f"{location}.json").read_text())
        except FileNotFoundError:
            return None

    def _write(self, location, doc):
        path = self._dir / f"{location}.json"
        part = path.with_suffix(".part")
        part.write_text(json.dumps(doc))
        os.replace(part, path)

    def _value(self, doc, version_id):
        text = doc["versions"].get(version_id) if doc else None
        return None if text is None else StoredValue.from_json(text, where=version_id)

    def read_current(self, *, location):
        doc = self._read(location)
        if not doc or not doc.get("current"):
            return None
        return Version(doc["current"], self._value(doc, doc["current"]))

    def read_version(self, *, location, version_id):
        return self._value(self._read(location), version_id)

    def read_pending(self, *, location, token):
        doc = self._read(location)
        return self._value(doc, token) if doc and doc.get("pending") == token else None

    def stage(self, *, location, token, value, first=False):
        with self._lock:
            doc = self._read(location) or {"versions": {}, "current": None, "previous": None, "pending": None}
            held = doc["versions"].get(token)
            if held is not None and held != value.to_json():
                raise StoreConflict(f"{location}: another value is staged under {token}")
            doc["versions"][token], doc["pending"] = value.to_json(), token
            self._write(location, doc)

    def promote(self, *, location, token, expected_current):
        with self._lock:
            doc = self._read(location)
            if doc["current"] == token:
                return
            if doc["current"] != expected_current:
                raise StoreConflict(f"{location}: current is {doc['current']}, not {expected_current}")
            doc["previous"], doc["current"], doc["pending"] = doc["current"], token, None
            self._write(location, doc)

    def clear_pending(self, *, location, token):
        with self._lock:
            doc = self._read(location)
            if doc and doc.get("pending") == token:
                doc["pending"] = None
                self._write(location, doc)

    def pending_tokens(self, *, location):
        doc = self._read(location)
        return [doc["pending"]] if doc and doc.get("pending") else []

    def set_metadata(self, *, location, metadata):
        with self._lock:
            doc = self._read(location)
            doc["metadata"] = {**doc.get("metadata", {}), **metadata}
            self._write(location, doc)


def seed(directory, location, value_json):
    version = str(uuid.uuid4())
    doc = {"versions": {version: value_json}, "current": version, "previous": None, "pending": None}
    (Path(directory) / f"{location}.json").write_text(json.dumps(doc))


TYPE = StoreType(
    name="files",
    settings=FileStoreSettings,
    ref=FileRef,
    build=lambda settings, services, instance: FileStore(settings.directory),
)
'''


def install_plugin(where: Path) -> Path:
    """The package as pip would leave it: its module and its dist-info with the entry point."""
    where.mkdir()
    (where / "rotator_filestore.py").write_text(PLUGIN)
    info = where / "rotator_filestore-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rotator-filestore\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[rotator.stores]\nfiles = rotator_filestore:TYPE\n")
    return where


def test_a_third_store_from_its_own_package_keeps_a_secret_that_is_rotated(tmp_path: Path, brandwave: str) -> None:
    plugin = install_plugin(tmp_path / "site")
    vault_dir = tmp_path / "secrets"
    vault_dir.mkdir()
    name = f"app-{uuid.uuid4().hex[:6]}"
    first = httpx.post(f"{brandwave}/_sandbox/keys", json={"name": name}).json()
    value = {"api_key": first["secret"], "key_id": first["id"], "provider": "brandwave", "rotated_at": ""}
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "main.yaml").write_text(
        "policies:\n  fast: {max_age: 90d, cutover: {min_soak: 0s}}\n"
        f"secrets:\n  - {{name: {name}, provider: bw, policy: fast, store: {{files: {{name: {name}}}}}}}\n"
    )
    config = tmp_path / "rotator.yaml"

    def write_config(grant: str) -> None:
        config.write_text(
            f'state: {{url: "sqlite:///{tmp_path}/state.db"}}\npolicies_dir: policies\n'
            f'providers:\n  bw:\n    type: brandwave\n    base_url: "{brandwave}"\n'
            f"    admin_token: {{current: true}}\n    grants: [{grant}]\n"
            f'stores:\n  files: {{type: files, directory: "{vault_dir}"}}\n'
            "engine: {verify_interval: 200ms, retry_base: 100ms, retry_max: 1s, probe_deadline: 2s}\n"
        )

    env = {
        **os.environ,
        "ROTATOR_CONFIG": str(config),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(plugin), os.environ.get("PYTHONPATH")])),
    }

    def rotator(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rotator", *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )

    # the grant's shape is the store's: a secret_id grant does not fit a file store's locations
    write_config('{store: files, secret_id: "app-*"}')
    refused = rotator("validate", "--offline")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"{config}:8:" in refused.stderr and "secret_id: not a field" in refused.stderr, refused.stderr
    write_config('{name: "app-../*"}')
    refused = rotator("validate", "--offline")
    assert refused.returncode == 2 and "one file name" in refused.stderr, refused.stderr

    seeded = json.dumps(value)
    write_config('{name: "app-*"}')  # the store inferred: the one instance whose locations have a name
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"import rotator_filestore as s; s.seed({str(vault_dir)!r}, {name!r}, {seeded!r})",
        ],
        env=env,
        check=True,
    )
    checked = rotator("validate", "--offline")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    done = rotator("rotate", name, "--reason", "third store")
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads((vault_dir / f"{name}.json").read_text())
    current = json.loads(doc["versions"][doc["current"]])
    assert current["key_id"] != first["id"] and current["provider"] == "brandwave"
    assert doc["pending"] is None and doc["metadata"]["fingerprint"]
    keys = {k["id"]: k for k in httpx.get(f"{brandwave}/_sandbox/keys").json()["keys"]}
    assert keys[first["id"]]["revoked"] and not keys[current["key_id"]]["revoked"]
    assert first["secret"] not in done.stdout + done.stderr
