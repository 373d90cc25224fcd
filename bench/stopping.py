"""SIGTERM as an exception. Slurm sends it at a job's time limit and on preemption, and
``kill`` by default; ``erasebench`` then stops as on Ctrl-C: in one line, its helper
processes stopped with it, instead of dying where it stands (on Ray, with Ray's crash
report). Every write is atomic, so what was recorded is whole and the same command
resumes."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class Stopped(BaseException):  # noqa: N818 - a stop asked for, as KeyboardInterrupt
    """The process was sent SIGTERM. A BaseException, as KeyboardInterrupt is, so that no
    ``except Exception`` on the way takes it for an error to handle."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise Stopped


@contextlib.contextmanager
def sigterm_stops() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Stopped` in the main thread (elsewhere,
    where Python takes no signals, it changes nothing); the handler before comes back
    after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, _stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if before is None else before)


@contextlib.contextmanager
def keeping_sigterm() -> Iterator[None]:
    """SIGTERM's handler as it was before the block in force again after it, whatever a
    library put in its place meanwhile: ``ray.init`` puts two, a Python one that exits
    with no word and its core worker's, which prints a crash report and aborts."""
    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if before is not None:
            signal.signal(signal.SIGTERM, before)
