"""One rich progress bar for every loop over images (evaluation, predict): description, bar, done/total,
elapsed time, rate and time remaining.

rich's own ``TimeRemainingColumn`` estimates speed from the updates of the last 30 s and shows
``-:--:--`` until two updates have arrived, which on a slow CPU is most of a short dataset. Here rate
and ETA come from the average since the task started (items done / seconds elapsed), so both are
known after the first batch. A resumed task passes ``resumed=<items already done>`` to ``add_task``
so those items do not count towards the rate.
"""
from __future__ import annotations

from datetime import timedelta


def _columns(unit: str):
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Average items per second since the task started (``2.31 img/s``; ``s/img`` below 1/s)."""

        def render(self, task):
            elapsed = task.elapsed or 0.0
            done = task.completed - task.fields.get("resumed", 0)
            if done <= 0 or elapsed <= 0:
                return Text(f"– {unit}/s", style="progress.data.speed")
            rate = done / elapsed
            text = f"{rate:.2f} {unit}/s" if rate >= 1 else f"{1 / rate:.2f} s/{unit}"
            return Text(text, style="progress.data.speed")

    class EtaColumn(ProgressColumn):
        """Time left at the average rate so far (``eta 0:01:23``)."""

        def render(self, task):
            elapsed = task.elapsed or 0.0
            if task.finished:
                return Text("eta 0:00:00", style="progress.remaining")
            done = task.completed - task.fields.get("resumed", 0)
            if done <= 0 or elapsed <= 0 or task.total is None:
                return Text("eta –", style="progress.remaining")
            left = (task.total - task.completed) * elapsed / done
            return Text(f"eta {timedelta(seconds=int(round(left)))}", style="progress.remaining")

    return RateColumn(), EtaColumn()


def progress_bar(console=None, unit: str = "img", transient: bool = False):
    """A ``rich.progress.Progress`` with elapsed, rate (``unit``/s) and ETA columns; use as a context manager."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    rate, eta = _columns(unit)
    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), rate, eta, console=console, transient=transient)
