"""Choosing the generation batch from the GPU memory it really takes, and batches that
halve until they fit (the scorers', the recovery attack's).

No table of per-image costs can be right for every GPU, model, precision, attention kernel
and image size, so the generator measures instead: its first batch is small
(``PROBE_BATCH`` images), its peak memory above what was allocated before is the cost of
those images, and the batch is then the largest power of two whose cost fits in a share
of the free memory. An estimate that proves too large still costs nothing: out of memory
halves the batch and retries, and images never depend on the batch size.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import torch

Output = TypeVar("Output")

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


def free_device_memory() -> None:
    """What failed work's frames held (reference cycles through the traceback) freed, and
    the memory torch's allocator keeps cached handed back to the device, which other
    processes sharing it may need."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def in_fitting_batches(count: int, batch_size: int,
                       work: Callable[[slice], Output]) -> tuple[list[Output], int]:
    """``work`` over consecutive slices of ``count`` items, ``batch_size`` long; a slice
    that runs the device out of memory is tried again at half its length, down to one
    item (which raises). Returns the outputs, one per slice in order, and the batch size
    that fit, for the next call to start from.

    Why: a scorer's batch (64 images for ResNet-50 and CLIP) is far under a GPU's memory
    alone, but not on a card other processes share, nor beside a generator's cache, and a
    unit out of memory is left undone. ``work`` must change nothing it keeps before its
    device work is done, so that a slice may be tried again; every scorer's outputs are
    each item's own, so they do not depend on the batch size.
    """
    outputs: list[Output] = []
    start = 0
    while start < count:
        end = min(count, start + batch_size)
        fitted = True
        try:
            outputs.append(work(slice(start, end)))
        except torch.OutOfMemoryError:
            if end - start == 1:
                raise
            fitted = False
        if fitted:
            start = end
        else:  # freed once the handler is left: the error's traceback held work's frames
            batch_size = (end - start) // 2
            free_device_memory()
    return outputs, batch_size


def summed_in_fitting_slices(count: int, batch_size: int, work: Callable[[slice], float],
                             reset: Callable[[], None]) -> tuple[float, int]:
    """The sum of ``work`` over consecutive slices of ``count`` items, ``batch_size`` long,
    for work that accumulates across its slices (gradients, by backward passes): a slice
    that runs the device out of memory has ``reset`` undo what the slices before it
    accumulated, and every slice is tried again at half the length, down to one item
    (which raises). Returns the sum and the batch size that fit.

    Why not :func:`in_fitting_batches`: a backward pass that runs out of memory may have
    added to the gradients before it failed, so only starting over is sure to count every
    item once. One slice of all ``count`` items is the work done whole.
    """
    while True:
        total, failed = 0.0, False
        try:
            for start in range(0, count, batch_size):
                total += work(slice(start, min(count, start + batch_size)))
        except torch.OutOfMemoryError:
            if batch_size == 1:
                raise
            failed = True
        if not failed:
            return total, batch_size
        batch_size //= 2  # freed once the handler is left, as in_fitting_batches does
        reset()
        free_device_memory()
