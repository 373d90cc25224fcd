"""Timing and memory helpers shared by the benchmark scripts."""

from __future__ import annotations

import argparse
import contextlib
import resource
import time
from collections.abc import Callable, Iterator

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from erasebench.errors import UserError
from erasebench.hardware import DEVICES, checked_device, resolved_device
from erasebench.registry import ERASERS


def model_parser(description: str | None) -> argparse.ArgumentParser:
    """The arguments every script that builds a model takes: ``--model`` (SD v1.4's
    architecture with random weights by default) and ``--device``."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sd-v1-random")
    parser.add_argument("--device", default="auto", help=DEVICES)
    return parser


def checked_arguments(parser: argparse.ArgumentParser,
                      eraser_lists: tuple[str, ...] = ()) -> argparse.Namespace:
    """``parser``'s arguments, checked before anything is built: ``--device`` one this
    machine has and each comma-separated list of erasers named by ``eraser_lists`` (the
    options' names) registered. A typo is then argparse's one line at once, not a
    traceback minutes in, after the model was built and other rows timed (a lent GPU's
    minutes are few)."""
    args = parser.parse_args()
    try:
        args.device = resolved_device(checked_device(args.device))  # as the commands take it
        for option in eraser_lists:
            for name in filter(None, getattr(args, option).split(",")):
                ERASERS.get(name)
    except UserError as error:
        parser.error(str(error))
    return args


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


@contextlib.contextmanager
def cudnn_attention_first() -> Iterator[None]:
    """``scaled_dot_product_attention`` tries cuDNN's fused kernels first within the block
    (torch does so itself only on Hopper and Blackwell with a recent cuDNN, else tries them
    last, after FlashAttention-2, which is not written for Hopper);
    the others stay as fallbacks for the shapes cuDNN refuses."""
    with sdpa_kernel([SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION,
                      SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH], set_priority=True):
        yield
