"""rotator.yaml plus ROTATOR_… environment overrides → typed settings.

Environment variables override the file: `ROTATOR_STATE__URL` sets `state.url`; a double
underscore separates levels, and provider or store names match with `-` written as `_`
(`ROTATOR_PROVIDERS__BRANDWAVE_PROD__BASE_URL`). `ROTATOR_CONFIG` names the file itself.
Admin credentials are never values in this file: it says where they come from (env, file).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rotator.errors import InputError
from rotator.settings import grants
from rotator.settings.models import Settings
from rotator.settings.tenancy import check_names
from rotator.yamlfiles import problems as yamlproblems
from rotator.yamlfiles import source as yamlsource

ENV_PREFIX = "ROTATOR_"
_NOT_OVERRIDES = {"ROTATOR_CONFIG", "ROTATOR_FAILPOINTS", "ROTATOR_REPLICA_ID"}


def _apply_env(
    data: dict[str, Any], environ: dict[str, str], overridden: dict[tuple[str, ...], str] | None = None
) -> dict[str, Any]:
    """Apply ROTATOR_… overrides to `data`; `overridden` learns which setting each variable set."""
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in _NOT_OVERRIDES:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if "" in path:
            raise InputError([f"environment variable {name}: an empty level between double underscores"])
        if path[0] not in Settings.model_fields:
            known = ", ".join(f"{ENV_PREFIX}{f.upper()}" for f in Settings.model_fields)
            raise InputError([f"environment variable {name}: no such setting (overrides start with {known})"])
        node = data
        keys: list[str] = []
        for part in path[:-1]:
            match = next((k for k in node if str(k).replace("-", "_").lower() == part), part)
            keys.append(match)
            node = node.setdefault(match, {})
            if not isinstance(node, dict):
                raise InputError([f"environment variable {name}: {part} is not a section"])
        node[path[-1]] = _env_value(name, value)
        if (bad := yamlsource.control_character(node[path[-1]])) is not None:
            raise InputError([f"environment variable {name}: control character U+{ord(bad):04X}"])
        if overridden is not None:
            overridden[(*keys, path[-1])] = name
    return data


def _env_value(name: str, value: str) -> Any:
    """A list or a mapping comes as JSON (`["a.example.com"]`); anything else is the text itself
    (`[::1]:9464` is no JSON, and stays a listen address)."""
    if value[:1] in ("[", "{"):
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            return value
        if yamlsource.nesting(parsed) > yamlsource.MAX_DEPTH:
            raise InputError([f"environment variable {name}: nested deeper than {yamlsource.MAX_DEPTH} levels"])
        return parsed
    return value


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _team_problems(settings: Settings, doc: Any, path: Path | None) -> list[str]:
    """A team may be allowed only what rotator.yaml defines."""
    where = path or "(environment)"
    problems = [
        f"{where}:{yamlsource.line_of(doc, ('teams', name))}: teams.{name}: {problem}"
        for name, problem in check_names(settings.teams)
    ]
    defined = {
        "providers": (set(settings.providers), "providers"),
        "commands": (set(settings.hooks.commands), "hooks.commands"),
        "credentials": (set(settings.hooks.credentials), "hooks.credentials"),
    }
    for name, team in settings.teams.items():
        for field, (known, section) in defined.items():
            for index, value in enumerate(getattr(team, field)):
                if value not in known:
                    line = yamlsource.line_of(doc, ("teams", name, field, index))
                    problems.append(
                        f"{where}:{line}: teams.{name}.{field} names {value!r}, which is not in {section} "
                        f"(known: {', '.join(sorted(known)) or 'none'})"
                    )
    return problems


def _sqlite_beside(data: Any, directory: Path) -> None:
    """A relative SQLite path in the file's state.url names a file beside rotator.yaml, as
    policies_dir and state.directory do, not one in whatever directory a command runs from (which
    made a second, empty database for `rotator --config ~/trial/rotator.yaml status` run elsewhere)."""
    state: Any = data.get("state") if isinstance(data, dict) else None
    url = state.get("url") if isinstance(state, dict) else None
    if not isinstance(url, str) or not url.startswith("sqlite"):
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return  # the validator says what is wrong with it
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:") and not Path(database).is_absolute():
        state["url"] = parsed.set(database=str(directory / database)).render_as_string(hide_password=False)


def where_set(path: Path | None, keys: tuple[str, ...], environ: dict[str, str] | None = None) -> str:
    """Where a setting's value came from, for an error found after loading: its variable, or file:line."""
    variable = ENV_PREFIX + "__".join(k.upper().replace("-", "_") for k in keys)
    if variable in (os.environ if environ is None else environ):
        return f"environment variable {variable}"
    if path is None:
        return "the embedded defaults"
    try:
        return f"{path}:{yamlsource.line_of(yamlsource.load(path, multiline=True), keys)}"
    except InputError:
        return str(path)


def config_path(explicit: Path | None = None) -> Path | None:
    """The rotator.yaml in force: --config, $ROTATOR_CONFIG, ./rotator.yaml, /etc/rotator/rotator.yaml."""
    if explicit is not None:
        return explicit
    if env := os.environ.get("ROTATOR_CONFIG"):
        return Path(env)
    for candidate in (Path("rotator.yaml"), Path("/etc/rotator/rotator.yaml")):
        try:
            if candidate.is_file():
                return candidate
        except PermissionError:
            # a directory this user may not look into (root's home, for `sudo -u rotator`) holds
            # no rotator.yaml of theirs: look further
            continue
    return None


def load(path: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read settings; with no file at all, the embedded defaults (SQLite state) apply.

    Raises InputError with file:line problems, and names the environment variable for overrides.
    """
    environ = dict(os.environ if environ is None else environ)
    doc: Any = yamlsource.load(path, multiline=True) if path is not None else None
    overridden: dict[tuple[str, ...], str] = {}
    data = _apply_env(_plain(doc or {}), environ, overridden)
    if path is not None and ("state", "url") not in overridden:
        _sqlite_beside(data, path.parent.absolute())
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems = yamlproblems.problems_from(
            exc, doc, path or Path("(environment)"), overridden=overridden, data=data, model=Settings
        )
        raise InputError(problems) from None
    problems = [
        f"{path or '(environment)'}:{yamlsource.line_of(doc, ('providers', name, field))}: "
        f"providers.{name}.{field} names store {ref.instance!r}, which is not "
        f"in stores (known: {', '.join(sorted(settings.stores)) or 'none'})"
        for name, p in settings.providers.items()
        for field, ref in p.store_refs().items()
        if ref.instance not in settings.stores
    ]
    problems += _team_problems(settings, doc, path)
    _, unresolved = grants.resolved(settings.providers, settings.store_types())
    problems += grants.located(unresolved, doc, path, overridden)
    if problems:
        raise InputError(problems)
    if path is not None and not settings.policies_dir.is_absolute():
        settings = settings.model_copy(update={"policies_dir": path.parent / settings.policies_dir})
    directory = settings.state.directory
    if path is not None and directory is not None and not directory.is_absolute():
        state = settings.state.model_copy(update={"directory": path.parent / directory})
        settings = settings.model_copy(update={"state": state})
    return settings
