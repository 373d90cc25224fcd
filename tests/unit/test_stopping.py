import os
import signal

import pytest

from erasebench.stopping import Stopped, keeping_signal_handlers, signals_stop


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
