"""`dabench finetune seg`'s console: third-party warnings go to the run's log file, one line per validation."""
from __future__ import annotations

import logging
import warnings

import pytest

from dabench.finetune.seg.quiet import WarningsToLog, attach_warnings, log_file_of, validation_line, warnings_to_run_log


def _file_logger(path):
    logger = logging.getLogger(f"dabench-test-{path.name}")
    logger.propagate = False
    handler = logging.FileHandler(path)
    logger.addHandler(handler)
    return logger, handler


def test_warnings_before_and_after_the_log_file_exists_go_into_it(tmp_path, capsys):
    logger, handler = _file_logger(tmp_path / "run.log")
    try:
        with WarningsToLog() as sink:
            warnings.warn("You should install mmcv rather than mmcv-lite (held)", UserWarning)
            sink.attach(logger)
            warnings.warn("build_loss would be deprecated soon (direct)", DeprecationWarning)
        handler.flush()
    finally:
        logger.removeHandler(handler)
        handler.close()
    text = (tmp_path / "run.log").read_text()
    assert "UserWarning: You should install mmcv rather than mmcv-lite (held)" in text
    assert "DeprecationWarning: build_loss would be deprecated soon (direct)" in text
    assert text.index("(held)") < text.index("(direct)")
    err = capsys.readouterr()
    assert "mmcv" not in err.err + err.out and "build_loss" not in err.err + err.out
    assert log_file_of(logger) is None  # the handler was removed


def test_held_warnings_are_shown_when_the_run_fails_before_its_log(capsys):
    @warnings_to_run_log
    def failing():
        warnings.warn("why it failed, maybe", UserWarning)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        failing()
    assert "UserWarning: why it failed, maybe" in capsys.readouterr().err


def test_filters_still_apply_and_showwarning_is_restored():
    before = warnings.showwarning
    with pytest.raises(UserWarning), warnings.catch_warnings():
        warnings.simplefilter("error")
        with WarningsToLog():
            warnings.warn("raised, not logged", UserWarning)
    assert warnings.showwarning is before
    attach_warnings(logging.getLogger("unused"))  # outside a block: nothing to attach, no error


def test_validation_line():
    assert validation_line(100, 300, {"miou": 41.2, "macc": 52.314, "aacc": 80.0, "IoU.road": 3.0}) == \
        "iter 100/300: val mIoU 41.20  mAcc 52.31  aAcc 80.00"
