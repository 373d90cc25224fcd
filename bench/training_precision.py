"""The precision of forward passes that train, the erasers' and the robustness task's
prompt attack alike: bf16 autocast on a GPU unless asked otherwise, with the frozen layer
weights held in that dtype for a block instead of cast again at every call, and a frozen
copy of the UNet held in it.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from erasebench.generate import tensors_cast
from erasebench.models import DiffusionModel


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The dtype forward passes that train autocast to for ``precision`` ("auto" = bf16
    on CUDA), or None where they run in fp32 (any precision on CPU, "fp32")."""
    if device.type != "cuda" or precision == "fp32":
        return None
    return torch.float16 if precision == "fp16" else torch.bfloat16


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """Autocast to :func:`autocast_dtype` where there is one, else nothing."""
    dtype = autocast_dtype(device, precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# The layers whose weights autocast casts to its low precision at every call; the UNet's
# other weights (GroupNorm's, LayerNorm's) it runs in fp32, so they stay as they are.
AUTOCAST_LAYERS = (nn.Linear, nn.Conv2d)


def frozen_layer_weights(module: nn.Module) -> list[nn.Parameter]:
    """The weights and biases of ``module``'s :data:`AUTOCAST_LAYERS` that get no gradient."""
    return [weight for layer in module.modules() if isinstance(layer, AUTOCAST_LAYERS)
            for weight in layer.parameters(recurse=False) if not weight.requires_grad]


@contextlib.contextmanager
def frozen_weights_cast(model: DiffusionModel, precision: str) -> Iterator[None]:
    """Within the block, the UNet's frozen layer weights (:func:`frozen_layer_weights`,
    read as the block starts: an eraser enters it inside
    :func:`erasebench.baselines.common.editing`) held in the dtype autocast casts them to
    for ``precision``; their fp32 tensors back afterwards, bit for bit. Every UNet call
    inside must run under that autocast.

    Why: autocast casts a layer's weights at every call and keeps the cast only of those
    that require a gradient, so each UNet call of a training step casts every frozen one
    again: with ESD-x's trained set, 388 of SD v1.4's 468 layer weights, 3.26 GB read and
    1.63 GB written, 423 of the call's 2,041 operations (1,653 operations, 35 of them casts,
    with them held cast; benchmarks/frozen_weights.py), and ESD draws each x_t with up to
    50 such calls. The values autocast would cast them to are these, so outputs and
    gradients are the same bit for bit (tests/unit/baselines/test_common.py)."""
    dtype = autocast_dtype(model.device, precision)
    if dtype is None:
        yield
        return
    with tensors_cast(frozen_layer_weights(model.unet), dtype):
        yield


def frozen_unet(model: DiffusionModel, precision: str = "fp32") -> nn.Module:
    """A copy of the UNet that never trains (ESD's θ*): no gradients, eval mode; its
    layers' weights held in the dtype autocast runs them in for ``precision`` (as
    :func:`frozen_weights_cast` holds the model's), so it is only called under that
    autocast."""
    unet = copy.deepcopy(model.unet).eval().requires_grad_(False)
    dtype = autocast_dtype(model.device, precision)
    if dtype is not None:  # its own copy: no fp32 original to keep
        for weight in frozen_layer_weights(unet):
            weight.data = weight.data.to(dtype)
    return unet
