"""Local worker processes for ``erasebench run --workers N``.

On a CPU the miniature world's small models are bound by per-operation overhead, not by
arithmetic: a second thread barely helps one process, a second process nearly doubles
the throughput. Helpers are the same ``erasebench run`` command; the runner's per-unit
locks share the work out (a unit another process holds is skipped), so no scheduler is
needed and a killed helper loses at most its current unit, which the main process then
runs. Every CPU process runs torch with one thread: training results then do not depend
on the machine's core count or on N (thread count changes floating-point reduction order).

On a GPU (``--device cuda``, or ``auto`` finding one) the processes spread over the
visible GPUs, one each: the main process keeps the first, and each helper is started
with ``CUDA_VISIBLE_DEVICES`` naming one other, so that it sees a single GPU as ``cuda``.
More processes than GPUs share them in turn. A device given with its index
(``cuda:1``) keeps every process on that GPU. Clusters of machines: the Ray backend.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

CPU_THREADS = 1
MAX_AUTO_WORKERS = 4  # each worker holds its own model copy and image batches (~1.3 GB)


def _is_cpu(device: object) -> bool:
    return str(device).split(":")[0] == "cpu"


def _spreads_over_gpus(device: object) -> bool:
    """Whether processes on ``device`` go one to a GPU: ``cuda`` without an index."""
    return str(device) == "cuda"


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` names them (indices or
    UUIDs), all of them when it is not set."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [name.strip() for name in listed.split(",") if name.strip()]
    import torch

    return [str(index) for index in range(torch.cuda.device_count())]


def auto_workers(device: object) -> int:
    """On a CPU one process per core (at most :data:`MAX_AUTO_WORKERS`); on ``cuda`` one
    per visible GPU; on a GPU named by its index, one."""
    if _is_cpu(device):
        return max(1, min(os.cpu_count() or 1, MAX_AUTO_WORKERS))
    return max(1, len(visible_gpus())) if _spreads_over_gpus(device) else 1


def helper_gpus(device: object, count: int) -> list[str | None]:
    """The ``CUDA_VISIBLE_DEVICES`` of helpers 1 to ``count``: the visible GPUs after the
    main process's first one, in turn; None (inherited) off ``cuda`` or with one GPU."""
    gpus = visible_gpus() if _spreads_over_gpus(device) else []
    if len(gpus) < 2:
        return [None] * count
    return [gpus[number % len(gpus)] for number in range(1, count + 1)]


def use_cpu_threads(device: object) -> None:
    """Pins torch to :data:`CPU_THREADS` threads on a CPU device ("cpu", torch.device)."""
    if _is_cpu(device):
        import torch

        torch.set_num_threads(CPU_THREADS)


def helper_command(argv: Sequence[str]) -> list[str]:
    """``argv`` of a run, as one helper runs it: one worker, no leaderboard."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--workers":
            skip = True
            continue
        if arg.startswith("--workers=") or arg in ("--report", "--no-report", "--dry-run"):
            continue
        kept.append(arg)
    return [sys.executable, "-m", "erasebench.cli", *kept, "--workers", "1", "--no-report"]


HELPER_VARIABLE = "ERASEBENCH_HELPER"  # set in a helper's environment to its number


def helper_number() -> int:
    """0 in the main process, k in the k-th helper."""
    return int(os.environ.get(HELPER_VARIABLE, "0") or 0)


def start_helpers(argv: Sequence[str], count: int,
                  device: object = "cpu") -> list[subprocess.Popen[bytes]]:
    """Starts ``count`` helper processes, each on a GPU of its own where ``device`` is
    ``cuda`` and there are several (:func:`helper_gpus`); they print their own units'
    lines."""
    helpers = []
    for number, gpu in enumerate(helper_gpus(device, count), start=1):
        env = {**os.environ, HELPER_VARIABLE: str(number)}
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        helpers.append(subprocess.Popen(helper_command(argv), env=env))
    return helpers


def wait_for(helpers: Sequence[subprocess.Popen[bytes]]) -> list[int]:
    """Waits for every helper; returns their exit codes."""
    return [helper.wait() for helper in helpers]


def stop(helpers: Sequence[subprocess.Popen[bytes]]) -> None:
    """Terminates helpers still running (the main process was interrupted), waiting up to
    a minute for each: a helper training an eraser ends its step and saves the training's
    checkpoint first (:mod:`erasebench.training_checkpoints`), ESD-u's 9.8 GB on SD."""
    for helper in helpers:
        if helper.poll() is None:
            helper.terminate()
    for helper in helpers:
        try:
            helper.wait(timeout=60)
        except subprocess.TimeoutExpired:
            helper.kill()
