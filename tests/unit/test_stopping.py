import os
import signal

import pytest

from erasebench.stopping import Stopped, keeping_sigterm, sigterm_stops


def test_sigterm_raises_stopped_within_the_block_and_the_old_handler_comes_back():
    heard = []
    before = signal.signal(signal.SIGTERM, lambda *_: heard.append("old"))
    try:
        with pytest.raises(Stopped), sigterm_stops():
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs as it returns
            pytest.fail("SIGTERM did not stop the block")
        os.kill(os.getpid(), signal.SIGTERM)
        assert heard == ["old"]
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_handler_a_library_puts_in_place_is_undone_after_the_block():
    def ours(*_):
        raise Stopped

    before = signal.signal(signal.SIGTERM, ours)
    try:
        with keeping_sigterm():
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as ray.init puts its own
        assert signal.getsignal(signal.SIGTERM) is ours
    finally:
        signal.signal(signal.SIGTERM, before)
