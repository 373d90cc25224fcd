"""Choosing the generation batch from the GPU memory it really takes.

No table of per-image costs can be right for every GPU, model, precision, attention kernel
and image size, so the generator measures instead: its first batch is small
(``PROBE_BATCH`` images), its peak memory above what was allocated before is the cost of
those images, and the batch is then the largest power of two whose cost fits in a share
of the free memory. An estimate that proves too large still costs nothing: out of memory
halves the batch and retries, and images never depend on the batch size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

PROBE_BATCH = 2
MAX_BATCH = 64  # beyond this an H100 is already saturated; larger only delays progress
HEADROOM = 0.8  # share of the free memory the batch may take (fragmentation, scorers)


def fitting_batch(free_bytes: float, per_image_bytes: float, cap: int = MAX_BATCH,
                  headroom: float = HEADROOM) -> int:
    """The largest power of two ≤ ``cap`` whose images fit in ``headroom`` × free memory
    (at least 1)."""
    if per_image_bytes <= 0:
        return cap
    fit = int(free_bytes * headroom // per_image_bytes)
    if fit < 1:
        return 1
    return min(cap, 1 << (fit.bit_length() - 1))


@dataclass
class Peak:
    bytes: float = 0.0  # peak allocation above the allocation at the start


@contextlib.contextmanager
def measure_peak(device: torch.device) -> Iterator[Peak]:
    """The peak CUDA allocation on ``device`` within the block, above its start."""
    peak = Peak()
    torch.cuda.synchronize(device)
    start = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    yield peak
    torch.cuda.synchronize(device)
    peak.bytes = float(torch.cuda.max_memory_allocated(device) - start)


def free_bytes(device: torch.device) -> float:
    """Memory a new batch can use: the driver's free memory plus what torch's caching
    allocator holds unused."""
    free, _ = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return float(free + cached)
