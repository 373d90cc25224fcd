"""What a device is, in words a reader of the records can compare: ``cuda (NVIDIA H100
80GB HBM3)``, ``cpu (AMD EPYC 7763 64-Core Processor)``.

Why: ``cuda`` alone says nothing of the pace. Records, edits and help records name the
device their seconds were spent on, so ``erasebench timings`` shows an H100's rows apart
from an A100's, the leaderboard says where an erasure was made, and a resumed run prices
the units left at the pace of the units recorded on its own kind of device
(``erasebench.run_progress``). The index of a GPU (``cuda:1``) is left out: it says
nothing of the pace, and another machine numbers its GPUs its own way.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

from erasebench.errors import UserError

DEVICES = "'auto' (cuda if present), 'cpu', 'cuda' or 'cuda:N'"  # what --device takes


@functools.cache
def describe_device(device: str) -> str:
    """``device`` ('cpu', 'cuda', 'cuda:N', 'mps') as its type and, where it can be
    found, its model: the GPU's name as CUDA gives it, the CPU's as Linux does."""
    kind = device.split(":")[0]
    if kind == "cuda":
        import torch

        try:
            index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
            return f"cuda ({torch.cuda.get_device_name(index)})"
        except (AssertionError, RuntimeError, ValueError):  # no such GPU here (a dry run's)
            return "cuda"
    if kind == "cpu":
        name = cpu_name()
        return f"cpu ({name})" if name else "cpu"
    return kind


def made_on(recorded: str, device: str) -> bool:
    """Whether a record's device (``recorded``, as :func:`describe_device` named it where
    the record was made) is ``device``: the same words, or, for a device named by its kind
    alone ("cuda": a dry run on a machine without the GPU it prices a run for), any of
    that kind ("cuda (NVIDIA H100 80GB HBM3)")."""
    return recorded == device or ("(" not in device and recorded.split(" (")[0] == device)


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name ('' where it cannot be told): Linux's ``cpuinfo``, else what
    Python's platform module knows."""
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return " ".join(value.split())
    except OSError:
        pass
    return platform.processor()


def checked_device(device: str, here: bool = True) -> str:
    """``device`` as given, once it is one erasebench runs on (:data:`DEVICES`) and, with
    ``here``, one this machine has. Why: else a mistyped device, or a GPU asked of a
    machine without one, fails deep in loading a model with torch's traceback; this says
    what the machine has before any work. ``here`` is False where the device is another
    machine's: a Ray cluster's, or a dry run pricing a run meant for a GPU machine."""
    kind, colon, index = device.partition(":")
    if device in ("auto", "cpu"):
        return device
    if kind != "cuda" or (colon and not index.isdigit()):
        raise UserError(f"--device {device!r} is not a device erasebench runs on: {DEVICES}")
    if not here:
        return device
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not count:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        why = ("this torch is built without CUDA" if torch.version.cuda is None else
               f"CUDA_VISIBLE_DEVICES={visible!r} hides them" if visible is not None else
               "no NVIDIA driver or GPU found")
        raise UserError(f"--device {device}: torch sees no GPU on this machine ({why}); use "
                        "--device cpu, or auto")
    if colon and int(index) >= count:
        seen = "1 GPU, cuda:0" if count == 1 else f"{count} GPUs, cuda:0 to cuda:{count - 1}"
        raise UserError(f"--device {device}: torch sees {seen}, on this machine")
    return device


def resolved_device(device: str) -> str:
    """``device`` with ``auto`` made what it stands for here: ``cuda`` if torch sees a
    GPU, else ``cpu``; the scorers and models are given a device torch takes."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
