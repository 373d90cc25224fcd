"""Fault injection for the test suite: make this process die at a named checkpoint.

``ERASEBENCH_KILL_AT="generate.batch:3"`` makes the process SIGKILL itself the 3rd time
it passes the ``generate.batch`` checkpoint: no cleanup, no ``finally``, exactly like a
power cut or the OOM killer. Unset (always, outside tests), a checkpoint is one dict
lookup. The checkpoints sit where a crash would hurt most: between computing something
and storing it, and between writing a file and renaming it into place.

With ``ERASEBENCH_KILL_MARK`` naming a file as well, only the first process to get there
dies, leaving that file; the processes after it (another worker, a restarted Ray actor)
pass, as after one lost machine.

``ERASEBENCH_OUT_OF_MEMORY_AT="erase.done"`` has the checkpoint raise torch's
out-of-memory error instead, every time, as a GPU too small for the work would (Ray's
actors, which monkeypatching does not reach, inherit it).

With ``ERASEBENCH_KILL_LOCKS_OUTLIVE`` set to seconds, the process's file locks outlive it
by that long, as a lost node's locks on a network file system do until the server's lease
on them ends: a child forked as it dies holds them (a lock belongs to the open file, which
the child shares) and exits that much later.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import threading
import time
from collections import Counter

ENVIRONMENT_VARIABLE = "ERASEBENCH_KILL_AT"
MARK_VARIABLE = "ERASEBENCH_KILL_MARK"
LOCKS_OUTLIVE_VARIABLE = "ERASEBENCH_KILL_LOCKS_OUTLIVE"
OUT_OF_MEMORY_VARIABLE = "ERASEBENCH_OUT_OF_MEMORY_AT"
CHECKPOINTS = (
    "train.step",  # an eraser's training step ended (its checkpoint saved, if due)
    "erase.done",  # an eraser finished; its edit is not saved yet
    "generate.batch",  # a batch was sampled; its images are not cached yet
    "cache.png_written",  # a cached PNG is in place; its checksummed sidecar is not
    "attack.kept",  # an attack on a unit's model is in the attack cache; the unit goes on
    "score.done",  # a unit is scored; its record is not written yet
    "io.before_rename",  # any atomic write: the temp file is complete, not yet renamed
)
_passed: Counter[str] = Counter()
_counting = threading.Lock()  # cache writes pass their checkpoints on several threads


def checkpoint(name: str) -> None:
    if os.environ.get(OUT_OF_MEMORY_VARIABLE) == name:
        import torch

        raise torch.OutOfMemoryError(f"CUDA out of memory (the test's fault at {name}). "
                                     "Tried to allocate 2.00 GiB.")
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
        _leave_locks_held(float(os.environ.get(LOCKS_OUTLIVE_VARIABLE) or 0))
        os.kill(os.getpid(), signal.SIGKILL)


def _leave_locks_held(seconds: float) -> None:
    """Forks a child that holds this process's open files, and so its locks, for
    ``seconds`` after this process dies; its own session, out of the reach of whatever
    kills this process's group. Its sockets and pipes it closes at once, as a lost node's
    connections drop: whoever watches this process (Ray's raylet) sees it die."""
    if seconds <= 0:
        return
    # Copies, because filelock closes the descriptors of its locks in a forked child.
    for fd, mode in _open_descriptors():
        if stat.S_ISREG(mode):
            os.dup(fd)
    if os.fork():
        return
    os.setsid()
    for fd, mode in _open_descriptors():
        if not stat.S_ISREG(mode):
            with contextlib.suppress(OSError):
                os.close(fd)
    time.sleep(seconds)
    os._exit(0)


def _open_descriptors() -> list[tuple[int, int]]:
    """This process's open file descriptors, each with its file's mode."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own, closed by now
            found.append((int(name), os.fstat(int(name)).st_mode))
    return found


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
