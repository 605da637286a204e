"""What `dabench finetune seg` prints, and what it keeps in the run's log file.

mmengine logs the environment, the whole config and every iteration to the console and to
``<work_dir>/<timestamp>/<timestamp>.log``; mmcv-lite and mmseg raise import-time and deprecation warnings
("You should install mmcv rather than mmcv-lite", "``build_loss`` would be deprecated soon", ...). A
fine-tune printed about a thousand lines. Here:

- :class:`WarningsToLog` keeps every Python warning raised during the fine-tune out of the terminal and
  writes it, formatted as Python prints it, into the run's log file (warnings raised before the log file
  exists are held until it does; if the run fails before that, they go to stderr with the error);
- :func:`quiet_runner_class` is mmengine's ``Runner`` whose console handler shows errors only (the
  log file keeps everything at the config's ``log_level``);
- :func:`print_validation` is the one line printed per validation (iteration, mIoU, mAcc, aAcc).
"""
from __future__ import annotations

import functools
import logging
import sys
import warnings

_ACTIVE: list["WarningsToLog"] = []  # the WarningsToLog blocks entered and not yet left, innermost last


class WarningsToLog:
    """Context manager routing Python warnings into the log file(s) of an mmengine logger.

    Inside the block ``warnings.showwarning`` is replaced (filters stay as they are: ``-W error`` still
    raises); :meth:`attach` names the logger whose ``FileHandler`` s receive the warnings, and flushes the
    ones held so far."""

    def __init__(self):
        self._handlers: list[logging.Handler] = []
        self._pending: list[logging.LogRecord] = []
        self._saved = None

    def __enter__(self) -> "WarningsToLog":
        self._saved = warnings.showwarning
        warnings.showwarning = self._show
        _ACTIVE.append(self)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        warnings.showwarning = self._saved
        _ACTIVE.remove(self)
        if self._pending and exc_type is not None:  # never hide what may explain a failure
            for rec in self._pending:
                print(rec.getMessage(), file=sys.stderr)
        self._pending.clear()

    def attach(self, logger: logging.Logger) -> None:
        """Send warnings to ``logger``'s file handlers from now on (and the ones held until now)."""
        self._handlers = [h for h in logger.handlers if isinstance(h, logging.FileHandler)]
        if self._handlers:
            for rec in self._pending:
                self._emit(rec)
            self._pending.clear()

    def _show(self, message, category, filename, lineno, file=None, line=None) -> None:
        text = warnings.formatwarning(message, category, filename, lineno, line).rstrip()
        rec = logging.LogRecord("py.warnings", logging.WARNING, str(filename), int(lineno or 0), text, None, None)
        if self._handlers:
            self._emit(rec)
        else:
            self._pending.append(rec)

    def _emit(self, rec: logging.LogRecord) -> None:
        for h in self._handlers:
            if rec.levelno >= h.level:
                h.handle(rec)


def warnings_to_run_log(fn):
    """Decorator: ``fn`` runs inside a :class:`WarningsToLog` block; ``fn`` calls :func:`attach_warnings`
    once its logger (and log file) exists."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with WarningsToLog():
            return fn(*args, **kwargs)

    return wrapper


def attach_warnings(logger: logging.Logger) -> None:
    """:meth:`WarningsToLog.attach` on the innermost active block (no-op outside one)."""
    if _ACTIVE:
        _ACTIVE[-1].attach(logger)


def quiet_runner_class():
    """mmengine's ``Runner`` with the console handler of its logger raised to ERROR: the environment,
    config and per-iteration lines go to the log file only."""
    from mmengine.runner import Runner

    class QuietRunner(Runner):
        def build_logger(self, *args, **kwargs):
            logger = super().build_logger(*args, **kwargs)
            for h in logger.handlers:
                if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                    h.setLevel(max(h.level, logging.ERROR))
            return logger

    return QuietRunner


def log_file_of(logger: logging.Logger) -> str | None:
    """The path of ``logger``'s first log file (``None`` without one)."""
    for h in logger.handlers:
        if isinstance(h, logging.FileHandler):
            return h.baseFilename
    return None


def validation_line(iteration: int, max_iters: int, metrics: dict) -> str:
    """``iter 100/300: val mIoU 41.20  mAcc 52.31  aAcc 80.02`` (the metrics present, in percent)."""
    shown = [f"{label} {float(metrics[key]):.2f}" for key, label in (("miou", "mIoU"), ("macc", "mAcc"),
                                                                     ("aacc", "aAcc")) if key in metrics]
    return f"iter {iteration}/{max_iters}: val " + "  ".join(shown)


def print_validation(runner, metrics: dict) -> None:
    """Print :func:`validation_line` for ``runner``'s current iteration (main process only)."""
    from mmengine import dist

    if dist.is_main_process():
        print(validation_line(runner.iter, runner.max_iters, metrics or {}), flush=True)
