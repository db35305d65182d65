"""How the commands that follow one rotation print it: each step, what it waits on, how it ended."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from rotator.cli.exit import Exit
from rotator.lifecycle import WITH_OPERATOR, State

if TYPE_CHECKING:
    from rotator.engine.steps import Step
    from rotator.state.schema import Rotation


def print_step(rotation: Rotation) -> Callable[[Step], None]:
    last = {"state": "", "note": ""}

    def show(step: Step) -> None:
        r = step.rotation
        if r.state == last["state"] and step.note == last["note"]:
            return
        when = datetime.now(UTC).strftime("%H:%M:%S")
        suffix = f" — {step.note}" if step.note and step.note != r.state else ""
        click.echo(f"{when} {r.secret} [{r.id[:8]}] {r.state}{suffix}")
        last.update(state=r.state, note=step.note)

    return show


def print_blocked(secret: str) -> Callable[[str], None]:
    return lambda why: click.echo(f"{secret}: waiting: {why}", err=True)


def outcome(rotation: Rotation) -> Exit:
    if rotation.state == State.COMPLETED:
        new = f"{rotation.new_key_id} ({rotation.new_fingerprint})" if rotation.new_key_id else rotation.new_fingerprint
        old = rotation.old_key_id or rotation.old_fingerprint
        click.echo(
            f"rotation {rotation.id} of {rotation.secret} completed: new key {new} is current; "
            f"old key {old} revoked and refused"
        )
        return Exit.OK
    if rotation.state == State.FAILED:
        old_key = rotation.old_key_id or rotation.old_fingerprint
        click.echo(
            f"rotation {rotation.id} of {rotation.secret} failed and was rolled back: {rotation.failed_reason}; "
            f"the old key{' ' + old_key if old_key else ''} is still current"
        )
        return Exit.FAILED
    if rotation.held_reason:
        click.echo(f"rotation {rotation.id} of {rotation.secret} is HELD in {rotation.state}: {rotation.held_reason}")
        return Exit.HELD
    if rotation.state in WITH_OPERATOR:
        click.echo(f"rotation {rotation.id} of {rotation.secret} waits on an operator ({rotation.state}):")
        click.echo(f"  {rotation.waiting_for.removeprefix('operator: ')}")
        return Exit.OPERATOR
    click.echo(
        f"rotation {rotation.id} of {rotation.secret} is in progress ({rotation.state}: "
        f"{rotation.waiting_for}); next look at {rotation.next_attempt_at.isoformat(timespec='seconds')}"
    )
    return Exit.IN_PROGRESS
