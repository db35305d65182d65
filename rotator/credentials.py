"""Admin and hook credentials read from where rotator.yaml says: the environment or a file."""

from __future__ import annotations

import os

from pydantic import SecretStr

from rotator.errors import InputError
from rotator.keys import secret
from rotator.plugin.settings import CredentialSource


def read_credential(source: CredentialSource, what: str) -> SecretStr:
    """A credential from the environment or a file (systemd credentials, mounted secrets).

    Raises InputError naming the variable or file when it is missing.
    """
    if source.env is not None:
        value = os.environ.get(source.env)
        if not value:
            raise InputError([f"{what}: environment variable {source.env} is not set"])
        return secret(value.strip())
    if source.file is None:
        raise InputError([f"{what}: give env or file"])
    try:
        return secret(source.file.read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise InputError([f"{what}: cannot read {source.file}: {exc.strerror}"]) from None
