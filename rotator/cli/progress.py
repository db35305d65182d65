"""What `incident` and `offboard` show while many rotations run: a live table on a terminal, a line
per state change otherwise, and a summary table whose long cells wrap instead of breaking rows."""

from __future__ import annotations

import sys
import threading
import time
from datetime import UTC, datetime
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.table import Table

from rotator.engine.steps import Step
from rotator.lifecycle import TERMINAL
from rotator.operations.bulk import Outcome


class Progress:
    def __init__(self, secrets: list[str], *, live: bool, quiet: bool = False) -> None:
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._rows: dict[str, tuple[str, float, str]] = {s: ("queued", self._started, "") for s in secrets}
        self._quiet = quiet
        self._console = Console(file=sys.stdout, highlight=False, soft_wrap=False)
        # the table is built when the screen refreshes (4 times a second), not on each of thousands of steps
        self._live = Live(console=self._console, refresh_per_second=4, get_renderable=self._table) if live else None

    def __enter__(self) -> Progress:
        if self._live is not None:
            self._live.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.__exit__(kind, exc, tb)

    def step(self, s: Step) -> None:
        rotation = s.rotation
        waits = rotation.held_reason or rotation.waiting_for or ""
        with self._lock:
            state, since, _ = self._rows.get(rotation.secret, ("", time.monotonic(), ""))
            changed = state != rotation.state
            if changed:
                since = time.monotonic()
            self._rows[rotation.secret] = (rotation.state, since, waits)
            if self._live is None and changed and not self._quiet:
                tail = f"  ({waits})" if waits else ""
                at = datetime.now(UTC)
                print(f"{at:%H:%M:%S} {rotation.secret} [{rotation.id[:8]}] {rotation.state}{tail}", flush=True)

    def done(self, o: Outcome) -> None:
        with self._lock:
            _, since, _ = self._rows.get(o.secret, ("", time.monotonic(), ""))
            self._rows[o.secret] = (o.state, since, o.note)

    def _table(self) -> Table:
        """The rotations under way (thousands queued or finished would not fit a screen: counted instead)."""
        states = [state for state, _, _ in self._rows.values()]
        queued = states.count("queued")
        finished = sum(_settled(s) for s in states)
        table = Table(
            box=None,
            pad_edge=False,
            caption=f"{finished}/{len(states)} finished, {queued} queued, {time.monotonic() - self._started:.0f}s",
            caption_justify="left",
        )
        for column in ("secret", "step", "for", "waiting for"):
            table.add_column(column, overflow="fold")
        now = time.monotonic()
        height = max(self._console.size.height - 4, 5)
        for secret, (state, since, waits) in self._rows.items():
            if state == "queued" or _settled(state):
                continue
            if table.row_count >= height:
                break
            table.add_row(secret, state, f"{now - since:.0f}s", waits)
        return table

    def summary(self, outcomes: list[Outcome]) -> None:
        if len(outcomes) > _TABLE_ROWS:
            self._plain(outcomes)
            return
        table = Table(box=None, pad_edge=False, show_lines=False)
        for column in ("secret", "provider", "outcome", "rotation", "note"):
            table.add_column(column, overflow="fold")
        for o in outcomes:
            table.add_row(o.secret, o.provider, o.state, o.rotation_id or "-", o.note)
        self._console.print()
        self._console.print(table)

    def _plain(self, outcomes: list[Outcome]) -> None:
        """Aligned columns without a table layout: laying out thousands of rows takes rich seconds."""
        rows = [("secret", "provider", "outcome", "rotation", "note")]
        rows += [(o.secret, o.provider, o.state, o.rotation_id or "-", o.note) for o in outcomes]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = [
            "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)) + "  " + row[4]
            for row in rows
        ]
        self._console.file.write("\n" + "\n".join(line.rstrip() for line in lines) + "\n")
        self._console.file.flush()


_TABLE_ROWS = 200
"""Above this many outcomes the summary is plain aligned lines."""


def _settled(state: str) -> bool:
    """Ended, held for a person, or refused before it started: nothing more happens to it here."""
    return state in TERMINAL or state.startswith("held") or state == "error"
