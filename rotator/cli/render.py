"""How the commands that follow one rotation print it: each step, what it waits on, how it ended."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from rotator.cli.exit import Exit
from rotator.lifecycle import WITH_OPERATOR, State

if TYPE_CHECKING:
    from rotator.engine.steps import Rotation, Step


def print_step(rotation: Rotation) -> Callable[[Step], None]:
    last = {"state": "", "note": ""}

    def show(step: Step) -> None:
        r = step.rotation
        if r.state == last["state"] and step.note == last["note"]:
            return
        when = datetime.now(UTC).strftime("%H:%M:%S UTC")
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
        done = click.style("completed", fg="green")
        click.echo(
            f"rotation {rotation.id} of {rotation.secret} {done}: new key {new} is current; "
            f"old key {old} revoked and refused"
        )
        return Exit.OK
    if rotation.state == State.FAILED:
        old_key = rotation.old_key_id or rotation.old_fingerprint
        failed = click.style("failed", fg="red", bold=True)
        click.echo(
            f"rotation {rotation.id} of {rotation.secret} {failed} and was rolled back: {rotation.failed_reason}; "
            f"the old key{' ' + old_key if old_key else ''} is still current"
        )
        return Exit.FAILED
    if rotation.held_reason:
        held = click.style("HELD", fg="red", bold=True)
        click.echo(f"rotation {rotation.id} of {rotation.secret} is {held} in {rotation.state}: {rotation.held_reason}")
        return Exit.HELD
    if rotation.state in WITH_OPERATOR:
        click.echo(f"rotation {rotation.id} of {rotation.secret} waits on an operator ({rotation.state}):")
        click.echo(f"  {rotation.waiting_for.removeprefix('operator: ')}")
        return Exit.OPERATOR
    click.echo(
        f"rotation {rotation.id} of {rotation.secret} is in progress ({rotation.state}: "
        f"{rotation.waiting_for}); next look at {moment(rotation.next_attempt_at)}"
    )
    return Exit.IN_PROGRESS


def json_document(head: dict[str, Any], key: str, rows: Iterable[dict[str, Any]]) -> None:
    """`{**head, key: [rows...]}` on stdout, a row at a time, each on a line of its own: a fleet's
    100,000 rows are neither held as one string nor put through json's slow indenting encoder."""
    import json
    import sys

    out = sys.stdout
    out.write("{\n")
    for name, value in head.items():
        out.write(f"  {json.dumps(name)}: {json.dumps(value)},\n")
    out.write(f"  {json.dumps(key)}: [")
    for index, row in enumerate(rows):
        out.write(("\n    " if index == 0 else ",\n    ") + json.dumps(row))
    out.write("\n  ]\n}\n")
    out.flush()


def count(n: int, one: str, many: str | None = None) -> str:
    """`1 secret`, `3 secrets`."""
    return f"{n} {one if n == 1 else many or one + 's'}"


def moment(value: datetime | str | None) -> str:
    """One way to print a time everywhere: `2026-12-04 07:49:36 UTC` (JSON keeps ISO 8601)."""
    if value is None:
        return "-"
    from rotator.durations import moment as said  # imported when a command runs, not for --help

    return said(datetime.fromisoformat(value) if isinstance(value, str) else value)


def age(seconds: float | None) -> str:
    """An age in the unit a person reads at a glance: `40s`, `18m`, `5h`, `3d`."""
    if seconds is None:
        return "never rotated"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{max(int(seconds), 0)}s"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """The header line, then a line per row: columns as wide as their widest cell, fitted to the
    terminal (a pipe or a file gets every cell whole): the last column (free text) is cut with `…`
    first, then the first (the names); narrower still, the header is empty and each row a block."""
    import shutil
    import sys

    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else 0
    least = 10  # of the first and the last column

    def cut(cell: str, most: int) -> str:
        return cell if len(cell) <= most else cell[: max(most - 1, 0)] + "…"

    if width and (over := sum(widths[:-1]) + 2 * (len(widths) - 1) + least - width) > 0:
        widths[0] = max(widths[0] - over, min(widths[0], least))
        if sum(widths[:-1]) + 2 * (len(widths) - 1) + least > width:
            # too narrow for columns: no header line, a block per row with a cell a line
            label = max(len(h) for h in header)
            return [
                "",
                *(
                    "\n".join(
                        cut(f"  {h.ljust(label)}  {cell}", width) if i else cut(cell, width)
                        for i, (h, cell) in enumerate(zip(header, row, strict=True))
                    )
                    for row in rows
                ),
            ]
    room = max(width - sum(widths[:-1]) - 2 * (len(widths) - 1), least)

    def line(cells: list[str]) -> str:
        first, *middle, last = cells
        shown = [
            cut(first, widths[0]).ljust(widths[0]),
            *(c.ljust(w) for c, w in zip(middle, widths[1:-1], strict=True)),
        ]
        return "  ".join([*shown, cut(last, room) if width else last]).rstrip()

    return [line(header), *(line(r) for r in rows)]
