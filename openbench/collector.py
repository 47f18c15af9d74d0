"""Python's cycle collector around a run: off while it starts, and what has loaded is never scanned again.

Importing a vendor SDK builds about 1,500 pydantic classes in about 3,000 modules. The collector
scans them over and over while they load (~0.1 s for ``anthropic``), a full collection in the timed
phase walks them all while every stream in flight waits, and the collector's pass at exit walks them
once more (~0.2 s). So a run starts with the collector off; once a model has started, everything
alive is frozen (``gc.freeze``: kept out of every later collection) and the collector runs again
for what the requests create. The process's exit freezes again before the interpreter tears down.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator

_state = {"inside": False, "paused": False}  # inside ``starting``; the collector was on and ``starting`` turned it off


@contextlib.contextmanager
def starting() -> Iterator[None]:
    """Around a whole run: the collector is off until ``started``; afterwards it is as it was, nothing frozen."""
    was_on = gc.isenabled()  # a caller that turned it off keeps it off
    gc.disable()
    _state.update(inside=True, paused=was_on)
    try:
        yield
    finally:
        _state.update(inside=False, paused=False)
        gc.unfreeze()  # an in-process caller (tests, scripts) gets its collector back whole
        if was_on:
            gc.enable()


def started() -> None:
    """A model has started (SDK imported, weights loaded): freeze what is alive; collect what comes next.

    Only inside ``starting``: a runner driven by other code leaves the collector alone.
    """
    if not _state["inside"]:
        return
    gc.freeze()
    if _state["paused"]:
        _state["paused"] = False
        gc.enable()


def exiting() -> None:
    """The process ends now: its memory goes back whole, so the collector's last pass is skipped."""
    gc.freeze()
