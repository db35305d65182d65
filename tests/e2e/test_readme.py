"""The README's quick start, run as written: its fenced blocks are read from README.md, its YAML
written to the files the text names, its shell commands run one by one in a fresh directory outside
the checkout, and what each comment quotes in backticks (`…` standing for anything) must be in what
that command printed, in order, on stdout, on stderr or in the file it wrote. Editing the README
changes what runs.

The only liberties, each explicit below: the README's fixed ports become free ones; the commands
get a PATH with this environment's `rotator`, `moto_server` and `aws`, and a HOME of their own;
a command run in the background is waited for until it prints what the README quotes; what reads
from a daemon just started is tried again until it answers or a minute passes, as a person would.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

README = Path(__file__).parents[2] / "README.md"
SECTION = "## Quick start"
FIXED_PORTS = ("5055", "8101", "9464")
"""The ports the README uses (moto_server, Brandwave's simulator, the daemon); each becomes a free one."""
PATIENCE = 60.0
"""How long a background command may take to say it is up, or a daemon to answer: a bound for a
machine that is very slow, not a measure of speed."""


@dataclass
class Command:
    line: str
    quoted: list[str]
    background: bool


@dataclass
class Block:
    kind: str
    text: str
    file: str | None = None
    commands: list[Command] = field(default_factory=list)


def quick_start(readme: str) -> list[Block]:
    """The fenced blocks of the Quick start section, in order; a YAML block with the file the text
    before it names (its last `*.yaml` in backticks), a shell block split into commands."""
    section = readme.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks, before = [], 0
    for fence in re.finditer(r"(?ms)^```(\w+)\n(.*?)^```", section):
        kind, text = fence.group(1), fence.group(2)
        block = Block(kind, text)
        if kind == "yaml":
            named = re.findall(r"`([\w./-]+\.yaml)`", section[before : fence.start()])
            assert named, f"no file named for the YAML block before: {text[:40]!r}"
            block.file = named[-1]
        elif kind == "sh":
            block.commands = [_command(line) for line in text.replace("\\\n", " ").splitlines() if line.strip()]
        blocks.append(block)
        before = fence.end()
    return blocks


def _command(line: str) -> Command:
    """A shell line: the command, the outputs its comment quotes in backticks, whether it ends in `&`."""
    quote = None
    for index, char in enumerate(line):
        if char in "'\"" and quote in (None, char):
            quote = None if quote else char
        elif char == "#" and quote is None and (index == 0 or line[index - 1].isspace()):
            command, comment = line[:index].strip(), line[index + 1 :]
            break
    else:
        command, comment = line.strip(), ""
    background = command.endswith("&")
    return Command(command.removesuffix("&").strip(), re.findall(r"`([^`]+)`", comment), background)


def pattern(quoted: list[str]) -> re.Pattern[str]:
    """The quoted outputs, in order, each a whole phrase: `…` is anything on its line, a run of
    spaces any white space ("1 secret" is not found in "1 secrets")."""
    parts = []
    for text in quoted:
        words = [re.escape(piece) for piece in re.split(r"\s+", text.strip())]
        phrase = r"\s+".join(words).replace(re.escape("…"), r"[^\n]*?")
        parts.append(rf"(?<![\w-]){phrase}(?![\w-])" if phrase[-1:].isalnum() else rf"(?<![\w-]){phrase}")
    return re.compile(r"[\s\S]*?".join(parts))


def free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def test_the_quick_start_runs_as_written(tmp_path: Path) -> None:
    readme = README.read_text()
    ports = {fixed: free_port() for fixed in FIXED_PORTS}
    for fixed, free in ports.items():
        readme = re.sub(rf"(?<![\d.]){fixed}(?!\d)", free, readme)
    blocks = quick_start(readme)
    assert [b.kind for b in blocks].count("sh") >= 5 and [b.file for b in blocks if b.file] == [
        "rotator.yaml",
        "policies/dev.yaml",
    ]
    quoted = [c for b in blocks for c in b.commands if c.quoted]
    assert len(quoted) >= 12, "the quick start quotes what its commands print"

    trial, logs, home = tmp_path / "rotator-trial", tmp_path / "logs", tmp_path / "home"
    for directory in (trial, logs, home):
        directory.mkdir()
    assert not trial.resolve().is_relative_to(README.parent.resolve())
    aws = shutil.which("aws", path=str(Path(sys.executable).parent))
    assert aws, "the aws CLI is a dev dependency: pip install -e '.[dev]'"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROTATOR_", "AWS_")) and k != "STATE_DIRECTORY"}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}", HOME=str(home))
    settled: list[str] = []  # export and umask lines: every later command runs after them, as in one shell
    running: list[tuple[str, subprocess.Popen[bytes], Path]] = []
    daemon_started = False
    try:
        for block in blocks:
            if block.file is not None:
                (trial / block.file).parent.mkdir(parents=True, exist_ok=True)
                (trial / block.file).write_text(block.text)
                continue
            for command in block.commands:
                script = "; ".join([*settled, ("exec " if command.background else "") + command.line])
                if command.line.startswith(("export ", "umask ")):
                    settled.append(command.line)
                if command.background:
                    out = logs / f"{len(running)}.log"
                    process = subprocess.Popen(
                        ["bash", "-c", script],
                        cwd=trial,
                        env=env,
                        stdout=out.open("wb"),
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                    running.append((command.line, process, out))
                    _wait_for(command, process, out)
                    daemon_started |= command.line.startswith("rotator run")
                    continue
                _run(command, script, trial, env, patient=daemon_started)
        # "SIGTERM stops it cleanly"
        daemons = [(process, out) for line, process, out in running if line.startswith("rotator run")]
        assert len(daemons) == 1, [line for line, _, _ in running]
        daemon, out = daemons[0]
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=PATIENCE) == 0, out.read_text()[-2000:]
        assert "daemon.stopped" in out.read_text(), out.read_text()[-2000:]
    finally:
        for _, process, _ in running:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def _written(command: Command, cwd: Path) -> str:
    """What the command printed into a file it redirected to (`> key.json`)."""
    return "".join((cwd / name).read_text() for name in re.findall(r">\s*([\w.-]+)\s*$", command.line))


def _run(command: Command, script: str, cwd: Path, env: dict[str, str], *, patient: bool) -> None:
    """Run one command; it must exit 0 and print what the README quotes. `patient`: a daemon was
    just started, and what asks it is tried again until it answers so (its first look takes a moment)."""
    deadline = time.monotonic() + PATIENCE
    while True:
        result = subprocess.run(
            ["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        streams = [result.stdout, result.stderr, _written(command, cwd) if result.returncode == 0 else ""]
        printed = "\n".join(streams)
        # each stream on its own: the log lines on stderr repeat what stdout says, in their own order
        ok = result.returncode == 0 and any(pattern(command.quoted).search(text) for text in streams)
        if ok or not patient or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert result.returncode == 0, f"{command.line}\nexit {result.returncode}\n{printed}"
    assert ok, f"{command.line}\nthe README quotes {command.quoted}, it printed:\n{printed}"


def _wait_for(command: Command, process: subprocess.Popen[bytes], out: Path) -> None:
    """A background command is up once it has printed what the README quotes (while it runs)."""
    assert command.quoted, f"{command.line}: a command run in the background quotes what says it is up"
    deadline = time.monotonic() + PATIENCE
    while pattern(command.quoted).search(out.read_text(errors="replace")) is None:
        assert process.poll() is None, f"{command.line} exited {process.returncode}:\n{out.read_text()}"
        assert time.monotonic() < deadline, f"{command.line}: no {command.quoted} in\n{out.read_text()}"
        time.sleep(0.1)
