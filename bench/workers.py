"""Local worker processes for ``erasebench run --workers N``.

On a CPU the miniature world's small models are bound by per-operation overhead, not by
arithmetic: a second thread barely helps one process, a second process nearly doubles
the throughput. Helpers are the same ``erasebench run`` command; the runner's per-unit
locks share the work out (a unit another process holds is skipped), so no scheduler is
needed and a killed helper loses at most its current unit, which the main process then
runs. Every CPU process runs torch with one thread: training results then do not depend
on the machine's core count or on N (thread count changes floating-point reduction order).
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


def auto_workers(device: object) -> int:
    """One process per GPU device (more GPUs: the Ray backend); on a CPU, one per core."""
    if not _is_cpu(device):
        return 1
    return max(1, min(os.cpu_count() or 1, MAX_AUTO_WORKERS))


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


def start_helpers(argv: Sequence[str], count: int) -> list[subprocess.Popen[bytes]]:
    """Starts ``count`` helper processes; they print their own units' lines."""
    return [subprocess.Popen(helper_command(argv),
                             env={**os.environ, HELPER_VARIABLE: str(number)})
            for number in range(1, count + 1)]


def wait_for(helpers: Sequence[subprocess.Popen[bytes]]) -> list[int]:
    """Waits for every helper; returns their exit codes."""
    return [helper.wait() for helper in helpers]


def stop(helpers: Sequence[subprocess.Popen[bytes]]) -> None:
    """Terminates helpers still running (the main process was interrupted)."""
    for helper in helpers:
        if helper.poll() is None:
            helper.terminate()
    for helper in helpers:
        try:
            helper.wait(timeout=10)
        except subprocess.TimeoutExpired:
            helper.kill()
