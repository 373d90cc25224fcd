"""Timing and memory helpers shared by the benchmark scripts."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable

import torch


def timed(function: Callable[[], object], device: torch.device) -> float:
    """Seconds ``function()`` takes, with the GPU's queued work finished before and after."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    function()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def peak_memory_gb(device: torch.device) -> float:
    """CUDA's max allocated on a GPU; the process's peak RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
