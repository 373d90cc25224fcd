import os
import signal
import sys
import time

import pytest

from erasebench.stopping import (
    SEND_AGAIN_AFTER_SECONDS,
    Stopped,
    keeping_signal_handlers,
    signals_stop,
    stops_held,
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_raises_stopped_within_the_block_and_the_old_handler_comes_back(signum):
    heard = []
    before = signal.signal(signum, lambda *_: heard.append("old"))
    try:
        with pytest.raises(Stopped) as stopped, signals_stop():
            os.kill(os.getpid(), signum)  # the handler runs as it returns
            pytest.fail("the signal did not stop the block")
        assert stopped.value.signum == signum and stopped.value.name == signum.name
        os.kill(os.getpid(), signum)
        assert heard == ["old"]
    finally:
        signal.signal(signum, before)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_ignored_signal_stays_ignored_as_sigint_in_a_shells_background_job(signum):
    before = signal.signal(signum, signal.SIG_IGN)
    try:
        with signals_stop():
            assert signal.getsignal(signum) is signal.SIG_IGN
            os.kill(os.getpid(), signum)
    finally:
        signal.signal(signum, before)


def test_a_handler_a_library_puts_in_place_is_undone_after_the_block():
    def ours(*_):
        raise Stopped(signal.SIGTERM)

    before = signal.signal(signal.SIGTERM, ours)
    try:
        with keeping_signal_handlers():
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as ray.init puts its own
        assert signal.getsignal(signal.SIGTERM) is ours
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_held_stop_waits_for_its_holder_and_a_second_signal_stops_at_once():
    with pytest.raises(Stopped) as second, signals_stop(), stops_held() as held:
        os.kill(os.getpid(), signal.SIGTERM)
        assert held.signum == signal.SIGTERM, "the first signal is held, not raised"
        os.kill(os.getpid(), signal.SIGINT)
        pytest.fail("a second signal did not stop at once")
    assert second.value.signum == signal.SIGINT
    with signals_stop():
        with stops_held() as held:
            os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(Stopped):
            os.kill(os.getpid(), signal.SIGINT)  # after the block a signal stops at once again
    with pytest.raises(Stopped) as first:
        held.stop_if_asked()
    assert first.value.signum == signal.SIGTERM


def test_without_signals_stop_a_held_stop_changes_no_handler():
    heard = []
    before = signal.signal(signal.SIGTERM, lambda *_: heard.append("theirs"))
    try:
        with stops_held() as held:
            os.kill(os.getpid(), signal.SIGTERM)
        assert heard == ["theirs"] and held.signum is None
    finally:
        signal.signal(signal.SIGTERM, before)


def test_an_error_after_a_held_signal_still_stops():
    with pytest.raises(Stopped) as stopped, signals_stop(), stops_held():
        os.kill(os.getpid(), signal.SIGTERM)
        raise ValueError("the step failed after the signal came")
    assert stopped.value.signum == signal.SIGTERM
    assert isinstance(stopped.value.__cause__, ValueError)
    with pytest.raises(ValueError), signals_stop(), stops_held():
        raise ValueError("no signal held: the error itself")


class SignalledAsCollected:
    """An object whose finalizer is where the signal comes: its handler runs inside
    ``__del__`` (``raise_signal`` runs it at once), as it did in a file lock's as a run was
    sent SIGTERM, and Python drops what a finalizer raises."""

    def __init__(self, signum: int) -> None:
        self.signum = signum

    def __del__(self) -> None:
        signal.raise_signal(self.signum)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_dropped_in_a_finalizer_is_sent_again_and_stops(signum, capfd):
    began = time.monotonic()
    with pytest.raises(Stopped) as stopped, signals_stop():
        SignalledAsCollected(signum)  # collected at once, the stop raised in it dropped
        time.sleep(10)  # where the stop sent again lands, waking the sleep
        pytest.fail("the stop dropped in the finalizer was lost")
    assert stopped.value.signum == signum
    assert time.monotonic() - began < 5
    assert "Exception ignored" not in capfd.readouterr().err  # not printed: sent again


def test_a_dropped_stop_is_not_sent_again_after_another_stop_or_after_the_block():
    heard = []
    before = signal.signal(signal.SIGTERM, lambda *_: heard.append("after the block"))
    try:
        with signals_stop():
            with pytest.raises(Stopped):
                SignalledAsCollected(signal.SIGTERM)
                os.kill(os.getpid(), signal.SIGTERM)  # a second signal: it stops at once
            time.sleep(10 * SEND_AGAIN_AFTER_SECONDS)  # and the dropped one stays dropped
        with signals_stop():
            SignalledAsCollected(signal.SIGTERM)
        time.sleep(10 * SEND_AGAIN_AFTER_SECONDS)  # the run's block has ended: nothing sent
        assert heard == []
    finally:
        signal.signal(signal.SIGTERM, before)


def test_other_exceptions_a_finalizer_raises_go_to_the_hook_there_before(monkeypatch):
    heard = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: heard.append(
        type(unraisable.exc_value)))

    class Failing:
        def __del__(self):
            raise ValueError("not a stop")

    with signals_stop():
        Failing()
    assert heard == [ValueError]
