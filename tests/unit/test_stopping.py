import os
import signal

import pytest

from erasebench.stopping import Stopped, keeping_signal_handlers, signals_stop, stops_held


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
