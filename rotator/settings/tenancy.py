"""Teams: who owns which policy files, and what those files may use.

Several application teams write policy files in one repository while one operator owns
rotator.yaml. A team there names its files (globs under `policies_dir`) and the provider
instances, hook commands, hook credentials and hosts it may use; every reference in a file is
checked against its own team's allowances, never another team's. Without `teams:`, one implicit
team owns every file and may use everything rotator.yaml defines.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from pathlib import PurePosixPath

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rotator.plugin.settings import HostPattern

TEAM_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


class Team(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    policy_files: list[str] = Field(min_length=1)
    """File names or globs under policies_dir (`payments.yaml`, `payments-*.yaml`)."""
    providers: list[str] = []
    """Provider instances its secrets may name."""
    commands: list[str] = []
    """Names from hooks.commands its consumers may run."""
    credentials: list[str] = []
    """Names from hooks.credentials its hook headers may carry."""
    allowed_hosts: list[HostPattern] = []
    """`host` or `host:port` patterns its HTTP hooks may reach, besides hooks.allowed_hosts (every team's)."""

    @field_validator("policy_files")
    @classmethod
    def _inside(cls, value: list[str]) -> list[str]:
        for pattern in value:
            parts = PurePosixPath(pattern).parts
            if not pattern or pattern.startswith("/") or ".." in parts or "/" in pattern.strip("/"):
                raise ValueError(
                    f"policy_files entry {pattern!r}: a file name or glob directly under policies_dir "
                    "(no directory, no '..')"
                )
        return value


def owners(file_name: str, teams: Mapping[str, Team]) -> list[str]:
    """The teams whose `policy_files` match a policy file's name."""
    return [name for name, team in teams.items() if any(fnmatch.fnmatchcase(file_name, p) for p in team.policy_files)]


def check_names(teams: Mapping[str, Team]) -> list[tuple[str, str]]:
    """(team, problem) for team names that are not plain lowercase names."""
    return [
        (name, "a team name is lowercase letters, digits, - and _") for name in teams if not TEAM_NAME.fullmatch(name)
    ]
