"""Progress while a run goes: rich bars on a terminal, a few plain lines otherwise."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from openbench.records import ItemResult


class PlainReporter:
    """For logs and CI: one line when a model starts, every 10% and when it ends."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self._totals: dict[str, int] = {}
        self._done: dict[str, int] = {}
        self._errors: dict[str, int] = {}

    def __enter__(self) -> PlainReporter:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def _say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def model_started(self, model_id: str, total: int) -> None:
        self._totals[model_id], self._done[model_id], self._errors[model_id] = total, 0, 0
        self._say(f"[{model_id}] {total} items")

    def item_done(self, model_id: str, record: ItemResult) -> None:
        self._done[model_id] += 1
        self._errors[model_id] += record.error is not None
        done, total = self._done[model_id], self._totals[model_id]
        step = max(1, total // 10)
        if done % step == 0 and done < total:
            self._say(f"[{model_id}] {done}/{total} done, {self._errors[model_id]} errors")

    def model_finished(self, model_id: str, status: str, reason: str | None) -> None:
        done = self._done.get(model_id)
        counts = f" {done}/{self._totals[model_id]} items, {self._errors[model_id]} errors" if done is not None else ""
        self._say(f"[{model_id}] {status}{counts}" + (f": {reason}" if reason else ""))

    def note(self, message: str) -> None:
        self._say(message)


class RichReporter(PlainReporter):
    """A live bar per model with items/s, errors and time left."""

    def __init__(self) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[errors]} errors"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._bars: dict[str, Any] = {}

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def _say(self, text: str) -> None:
        self.progress.console.print(text, markup=False, highlight=False)

    def model_started(self, model_id: str, total: int) -> None:
        self._totals[model_id], self._done[model_id], self._errors[model_id] = total, 0, 0
        self._bars[model_id] = self.progress.add_task(model_id, total=total, errors=0)

    def item_done(self, model_id: str, record: ItemResult) -> None:
        self._done[model_id] += 1
        self._errors[model_id] += record.error is not None
        self.progress.update(self._bars[model_id], advance=1, errors=self._errors[model_id])

    def model_finished(self, model_id: str, status: str, reason: str | None) -> None:
        if status != "ok" or reason:
            self._say(f"[{model_id}] {status}" + (f": {reason}" if reason else ""))


def reporter_for(stream: TextIO | None = None) -> PlainReporter:
    """Live bars on a terminal; plain lines in logs, pipes and under NO_COLOR (no escape codes at all)."""
    from openbench.report.table import plain

    stream = stream or sys.stderr
    return PlainReporter(stream) if plain(stream) else RichReporter()
