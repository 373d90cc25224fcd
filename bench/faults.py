"""Fault injection for the test suite: make this process die at a named checkpoint.

``ERASEBENCH_KILL_AT="generate.batch:3"`` makes the process SIGKILL itself the 3rd time
it passes the ``generate.batch`` checkpoint: no cleanup, no ``finally``, exactly like a
power cut or the OOM killer. Unset (always, outside tests), a checkpoint is one dict
lookup. The checkpoints sit where a crash would hurt most: between computing something
and storing it, and between writing a file and renaming it into place.

With ``ERASEBENCH_KILL_MARK`` naming a file as well, only the first process to get there
dies, leaving that file; the processes after it (another worker, a restarted Ray actor)
pass, as after one lost machine.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

ENVIRONMENT_VARIABLE = "ERASEBENCH_KILL_AT"
MARK_VARIABLE = "ERASEBENCH_KILL_MARK"
CHECKPOINTS = (
    "erase.done",  # an eraser finished; its edit is not saved yet
    "generate.batch",  # a batch was sampled; its images are not cached yet
    "cache.png_written",  # a cached PNG is in place; its checksummed sidecar is not
    "score.done",  # a unit is scored; its record is not written yet
    "io.before_rename",  # any atomic write: the temp file is complete, not yet renamed
)
_passed: Counter[str] = Counter()
_counting = threading.Lock()  # cache writes pass their checkpoints on several threads


def checkpoint(name: str) -> None:
    target = os.environ.get(ENVIRONMENT_VARIABLE)
    if not target:
        return
    wanted, _, nth = target.partition(":")
    if wanted != name:
        return
    with _counting:
        _passed[name] += 1
        reached = _passed[name] == int(nth or 1)
    if reached and _first_to_die():
        os.kill(os.getpid(), signal.SIGKILL)


def _first_to_die() -> bool:
    """True without a mark file; with one, only for the process that creates it."""
    mark = os.environ.get(MARK_VARIABLE)
    if not mark:
        return True
    try:
        os.close(os.open(mark, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True
