"""Commands provider types add (rotator/plugin/actions.py) from packages of their own, as an
operator would have them installed: a hostile or broken package never replaces rotator's own
commands, never makes a command crash with a traceback, and never gets a key printed back. Each
package is a module and its dist-info on PYTHONPATH, as pip would leave it; `rotator` runs as a
process (nothing here reaches a network: every command stops before it would)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

KEY = "bwpat_" + "K" * 40
CONFIG = """\
state: {{url: "sqlite:///{dir}/state.db"}}
policies_dir: policies
providers:
  bw: {{type: brandwave, base_url: "http://127.0.0.1:9", grants: [{{secret_id: "x/*"}}],
       admin_token: {{current: true}}}}
  bolt: {{type: boltly, base_url: "http://127.0.0.1:9", email: ops@example.com, grants: [{{secret_id: "x/*"}}]}}
stores:
  aws: {{type: aws, region: us-east-1, endpoint_url: "http://127.0.0.1:9"}}
"""
HOSTILE = (
    """\
from rotator.errors import InputError, RotatorError
from rotator.plugin.actions import Action


def _echo(settings, ctx, ask):
    return "you gave " + ask("your key").get_secret_value()


def _refuse(settings, ctx, ask):
    raise RotatorError("bad key " + ask("key").get_secret_value())


def _boom(settings, ctx, ask):
    raise ValueError("a bug of the plugin's, holding bwpat_"""
    + "B" * 40
    + """")


def _wrong(settings, ctx, ask):
    raise InputError(["that is not how this works"])


ECHO = Action(name="hostile-echo", provider="brandwave", help="Echo.", run=_echo)
REFUSE = Action(name="hostile-refuse", provider="brandwave", help="Refuse.", run=_refuse)
BOOM = Action(name="hostile-boom", provider="brandwave", help="Boom.", run=_boom)
WRONG = Action(name="hostile-wrong", provider="brandwave", help="Wrong.", run=_wrong)
LOGIN = Action(name="login", provider="brandwave", help="Not Boltly's login.", run=lambda *_: "STOLEN")
TWIN = Action(name="twin", provider="brandwave", help="One twin.", run=lambda *_: "one")
ODD = Action(name="ROTATE", provider="brandwave", help="A look-alike.", run=lambda *_: "odd")
ORPHAN = Action(name="orphan", provider="nosuchtype", help="For a type nobody installed.", run=lambda *_: "x")
"""
)
TWIN = """\
from rotator.plugin.actions import Action

TWIN = Action(name="twin", provider="brandwave", help="The other twin.", run=lambda *_: "two")
"""


def package(where: Path, module: str, source: str, entry_points: str) -> Path:
    where.mkdir(parents=True)
    (where / f"{module}.py").write_text(source)
    info = where / f"{module.replace('_', '-')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    return where


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("actions")
    (root / "policies").mkdir()
    (root / "rotator.yaml").write_text(CONFIG.format(dir=root))
    names = ("hostile-echo", "hostile-refuse", "hostile-boom", "hostile-wrong", "login", "twin", "ORPHAN")
    points = "\n".join(f"{n.lower()} = hostile_actions:{n.upper().replace('HOSTILE-', '')}" for n in names)
    package(
        root / "hostile",
        "hostile_actions",
        HOSTILE,
        f"[rotator.actions]\n{points}\nrotate = hostile_actions:ODD\nROTATE = hostile_actions:ODD\n"
        "gone = hostile_gone:NOTHING\n",
    )
    package(root / "twin", "twin_actions", TWIN, "[rotator.actions]\ntwin = twin_actions:TWIN\n")
    package(
        root / "oldplugin",
        "old_provider",
        "from rotator.providers.base import ApiProvider  # rotator 0.1's path\n",
        "[rotator.providers]\nold = old_provider:TYPE\n",
    )
    return root


def rotator(world: Path, *args: str, given: str | None = "") -> subprocess.CompletedProcess[str]:
    """`rotator ARGS` with `given` on stdin; None: stdin closed (`<&-`)."""
    path = os.pathsep.join(str(world / d) for d in ("hostile", "twin", "oldplugin"))
    env = {**os.environ, "ROTATOR_CONFIG": str(world / "rotator.yaml"), "PYTHONPATH": path}
    command = [sys.executable, "-m", "rotator", *args]
    if given is None:
        command = ["sh", "-c", 'exec "$@" <&-', "sh", *command]
    return subprocess.run(
        command,
        env=env,
        input=given,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_what_an_action_is_given_or_says_is_never_printed_back(world: Path) -> None:
    echoed = rotator(world, "hostile-echo", "bw", given=KEY + "\n")
    assert echoed.returncode == 0 and "you gave" in echoed.stdout, echoed.stderr
    refused = rotator(world, "hostile-refuse", "bw", given=KEY + "\n")
    assert refused.returncode == 1 and "hostile-refuse failed: bad key" in refused.stderr
    for run in (echoed, refused):
        assert KEY not in run.stdout + run.stderr


def test_an_actions_bug_or_bad_input_is_one_line_with_its_exit_code_never_a_traceback(world: Path) -> None:
    boom = rotator(world, "hostile-boom", "bw")
    assert boom.returncode == 1 and "ValueError" in boom.stderr and "Traceback" not in boom.stderr
    assert "bwpat_" + "B" * 40 not in boom.stderr
    wrong = rotator(world, "hostile-wrong", "bw")
    assert wrong.returncode == 2 and "not how this works" in wrong.stderr
    nothing = rotator(world, "hostile-echo", "bw", given="\n")  # an empty line, or stdin closed
    assert nothing.returncode == 2 and "nothing given" in nothing.stderr, nothing.stderr
    closed = rotator(world, "hostile-echo", "bw", given=None)
    assert closed.returncode == 2 and "nothing given" in closed.stderr, closed.stderr


def test_no_other_package_replaces_rotators_commands_or_boltlys_login(world: Path) -> None:
    login = rotator(world, "login", "bw")
    assert login.returncode == 2 and "STOLEN" not in login.stdout
    assert "acts on boltly provider instances" in login.stderr and "its instances: bolt" in login.stderr
    helped = rotator(world, "--help")
    assert helped.returncode == 0 and "Not Boltly's login" not in helped.stdout
    assert "ROTATE" not in helped.stdout  # a look-alike of a command is no command's name
    odd = rotator(world, "ROTATE", "bw")
    assert odd.returncode == 2 and "odd" not in odd.stdout


def test_two_packages_giving_one_command_are_named_and_neither_runs(world: Path) -> None:
    twin = rotator(world, "twin", "bw")
    assert twin.returncode == 2 and "several packages" in twin.stderr
    assert "hostile-actions" in twin.stderr and "twin-actions" in twin.stderr
    assert "one" not in twin.stdout and "two" not in twin.stdout


def test_a_broken_package_is_said_and_the_rest_of_rotator_works(world: Path) -> None:
    helped = rotator(world, "--help")
    assert helped.returncode == 0 and "cannot be used" in helped.stdout and "Traceback" not in helped.stderr
    gone = rotator(world, "gone", "bw")
    assert gone.returncode == 2 and "hostile_gone" in gone.stderr and "Traceback" not in gone.stderr
    orphan = rotator(world, "orphan", "bw")
    assert orphan.returncode == 2 and "'nosuchtype' is not installed" in orphan.stderr
    # a provider type written for rotator 0.1 (rotator.providers.base): the other types still work
    valid = rotator(world, "validate", "--offline")
    assert valid.returncode == 0, valid.stdout + valid.stderr


def test_rotator_yaml_naming_a_type_that_cannot_be_loaded_is_told_why(world: Path, tmp_path: Path) -> None:
    config = tmp_path / "rotator.yaml"
    (tmp_path / "policies").mkdir()
    config.write_text(CONFIG.format(dir=tmp_path).replace("providers:\n", "providers:\n  o: {type: old, grants: []}\n"))
    refused = rotator(world, "--config", str(config), "validate", "--offline")
    assert refused.returncode == 2 and f"{config}:4:" in refused.stderr, refused.stderr
    assert "cannot be loaded" in refused.stderr and "rotator.providers.base" in refused.stderr
