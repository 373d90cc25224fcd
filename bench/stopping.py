"""SIGTERM and Ctrl-C (SIGINT) as an exception. Slurm sends SIGTERM at a job's time limit
and on preemption, and ``kill`` by default; ``erasebench`` then stops in one line, its
helper processes stopped with it, instead of dying where it stands (on Ray, with Ray's
crash report). Every write is atomic, so what was recorded is whole and the same command
resumes.

A signal's handler runs wherever the main thread is, and that may be inside a finalizer
(an object's ``__del__`` as it is collected: a file lock's, an image's), whose exceptions
Python prints as "Exception ignored" and drops: the stop would be lost and the run go on
to its end, or to Slurm's SIGKILL. Within :func:`signals_stop` such a stop is sent again
(:func:`_sent_again_when_dropped`), to land outside the finalizer.
"""

from __future__ import annotations

import _thread
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(BaseException):  # noqa: N818 - a stop asked for, as KeyboardInterrupt
    """The process was sent ``signum``. A BaseException, as KeyboardInterrupt is, so that
    no ``except Exception`` on the way takes it for an error to handle."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name


# Stops raised by a signal's handler so far, and whether signals_stop is in force: a stop
# dropped in a finalizer is sent again only while no later one came and it still is.
_raised = [0]
_in_force = [0]
# Seconds before a dropped stop is sent again: the finalizer it was dropped in has long ended.
SEND_AGAIN_AFTER_SECONDS = 0.05


def _stop(signum: int, frame: FrameType | None) -> None:
    _raised[0] += 1
    raise Stopped(signum)


# A stop asked for by a call rather than a signal (request_stop): the signal it stands for.
_requested: list[int] = []


def request_stop(signum: int = signal.SIGTERM) -> None:
    """Has this process's training loops stop as at a held signal (:func:`stops_held`),
    from any thread: a Ray actor, which the driver's signals do not reach and whose work
    may run off the main thread, is asked so by its driver (its training ends its step,
    saves its checkpoint and raises :class:`Stopped`)."""
    _requested[:] = [signum]


def withdraw_stop_request() -> None:
    _requested.clear()


class HeldStop:
    """A stop held back by :func:`stops_held` until its holder can stop losing nothing."""

    held: int | None = None  # the signal held; None while none came

    @property
    def signum(self) -> int | None:
        """The signal held, else the one a :func:`request_stop` stands for, else None."""
        if self.held is not None:
            return self.held
        return _requested[0] if _requested else None

    def stop_if_asked(self) -> None:
        if self.signum is not None:
            raise Stopped(self.signum)


@contextlib.contextmanager
def signals_stop() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise :class:`Stopped` in the main thread
    (elsewhere, where Python takes no signals, nothing changes); the handlers before come
    back after. An ignored signal stays ignored: a shell's background job ignores SIGINT."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {signum: signal.getsignal(signum) for signum in SIGNALS}
    for signum, handler in before.items():
        if handler is not signal.SIG_IGN:
            signal.signal(signum, _stop)
    _in_force[0] += 1
    try:
        with _sent_again_when_dropped():
            yield
    finally:
        _in_force[0] -= 1
        _put_back(before)


@contextlib.contextmanager
def _sent_again_when_dropped() -> Iterator[None]:
    """Within the block, a :class:`Stopped` that Python drops (raised in a finalizer: it
    reaches ``sys.unraisablehook``) is not printed but its signal sent to the main thread
    again :data:`SEND_AGAIN_AFTER_SECONDS` later, unless another stop was raised meanwhile
    or :func:`signals_stop` has ended; every other dropped exception goes to the hook that
    was there before. A real signal, not ``_thread.interrupt_main``, so that a main thread
    waiting in a system call (a helper process, a lock) is woken as by the first."""
    before = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        dropped = unraisable.exc_value
        if not isinstance(dropped, Stopped):
            before(unraisable)
            return
        # A bare thread, which nothing waits for at exit: threading's would take that
        # module's lock, which the code the signal came into may be holding.
        _thread.start_new_thread(_send_again, (dropped.signum, _raised[0]))

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = before


def _send_again(signum: int, raised_when_dropped: int) -> None:
    time.sleep(SEND_AGAIN_AFTER_SECONDS)
    if _in_force[0] and _raised[0] == raised_when_dropped:
        signal.pthread_kill(threading.main_thread().ident or 0, signum)


@contextlib.contextmanager
def stops_held() -> Iterator[HeldStop]:
    """Within the block, the first SIGTERM or SIGINT that :func:`signals_stop` would have
    raise :class:`Stopped` is held instead, for the holder to raise where stopping loses
    nothing (:meth:`HeldStop.stop_if_asked`): an eraser's training finishes its step and
    saves its checkpoint first. A second signal stops at once, and so does an error that
    leaves the block with a signal held: the stop is asked for all the same. Where signals
    do not stop (another thread, a signal ignored or handled otherwise) only
    :func:`request_stop` does."""
    held = HeldStop()
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    ours = [signum for signum in SIGNALS if signal.getsignal(signum) is _stop]

    def hold(signum: int, frame: FrameType | None) -> None:
        if held.held is not None:
            _raised[0] += 1
            raise Stopped(signum)
        held.held = signum

    for signum in ours:
        signal.signal(signum, hold)
    try:
        yield held
    except Exception as error:
        if held.signum is not None:
            raise Stopped(held.signum) from error
        raise
    finally:
        for signum in ours:
            signal.signal(signum, _stop)


@contextlib.contextmanager
def keeping_signal_handlers() -> Iterator[None]:
    """SIGTERM's and SIGINT's handlers as they were before the block in force again after
    it, whatever a library put in their place meanwhile: ``ray.init`` puts two for
    SIGTERM, a Python one that exits with no word and its core worker's, which prints a
    crash report and aborts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {signum: signal.getsignal(signum) for signum in SIGNALS}
    try:
        yield
    finally:
        _put_back(before)


def _put_back(handlers: Mapping[signal.Signals, Any]) -> None:
    for signum, handler in handlers.items():
        # None: a handler not set from Python, which cannot be put back; the default then
        signal.signal(signum, signal.SIG_DFL if handler is None else handler)
