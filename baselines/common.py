"""What the in-tree erasers share: which parameters they touch, editing a model in place
and handing back only the change, token positions, autocast and the frozen weights held
in its precision, and a seeded training loop.
"""

from __future__ import annotations

import contextlib
import copy
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from rich.progress import Progress
from torch import nn

from erasebench.edits import EditedModel, snapshot
from erasebench.errors import UserError
from erasebench.generate import tensors_cast
from erasebench.models import DiffusionModel
from erasebench.specs import ErasureRequest, GenerationSpec, PromptSpec

# --- parameter sets ------------------------------------------------------------------------


def cross_attention_parameters(model: DiffusionModel, projections: Sequence[str] = (
        "to_q", "to_k", "to_v", "to_out")) -> list[str]:
    """UNet cross-attention (``attn2``) parameters of the given projections."""
    return [name for name, _ in model.named_parameters()
            if name.startswith("unet.") and ".attn2." in name
            and any(f".attn2.{p}" in name for p in projections)]


def non_cross_attention_parameters(model: DiffusionModel,
                                   exclude: Sequence[str] = ("time_embedding", "conv_out")
                                   ) -> list[str]:
    """Every UNet parameter outside cross-attention (ESD-u's set), minus ``exclude``."""
    return [name for name, _ in model.named_parameters()
            if name.startswith("unet.") and ".attn2." not in name
            and not any(f"unet.{part}" in name for part in exclude)]


def cross_attention_modules(model: DiffusionModel) -> list[tuple[str, nn.Module]]:
    """(qualified prefix, module) of every UNet cross-attention block."""
    return [(f"unet.{name}", module) for name, module in model.unet.named_modules()
            if name.endswith("attn2")]


# --- edits made in place -------------------------------------------------------------------


@contextlib.contextmanager
def editing(model: DiffusionModel, names: Sequence[str], eraser: str, config: dict[str, Any],
            request: ErasureRequest) -> Iterator[list[EditedModel]]:
    """Lets an eraser change ``names`` in place; on exit the change is taken out as an
    :class:`EditedModel` (appended to the yielded list) and the model restored exactly.

    Only ``names`` get gradients inside; everything else stays frozen.
    """
    before = snapshot(model, names)
    result: list[EditedModel] = []
    wanted = set(names)
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    fingerprint = model.fingerprint
    try:
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(name in wanted)
        yield result
        result.append(EditedModel.from_changes(model, before, eraser=eraser, config=config,
                                               request=request))
    finally:
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if name in before:
                    parameter.copy_(before[name].to(parameter.device, parameter.dtype))
                parameter.requires_grad_(flags[name])
                parameter.grad = None
        model.set_fingerprint(fingerprint)


def frozen_unet(model: DiffusionModel, precision: str = "fp32") -> nn.Module:
    """A copy of the UNet that never trains (ESD's θ*): no gradients, eval mode; its
    layers' weights held in the dtype autocast runs them in for ``precision`` (as
    :func:`frozen_weights_cast` holds the model's), so it is only called under that
    autocast."""
    unet = copy.deepcopy(model.unet).eval().requires_grad_(False)
    dtype = autocast_dtype(model.device, precision)
    if dtype is not None:  # its own copy: no fp32 original to keep
        for weight in _frozen_layer_weights(unet):
            weight.data = weight.data.to(dtype)
    return unet


# --- text ----------------------------------------------------------------------------------


def token_count(model: DiffusionModel, text: str) -> int:
    """Tokens of ``text`` including BOS and EOS (the attention mask's sum)."""
    ids = model.token_ids([text])[0]
    eos = model.tokenizer.eos_token_id
    positions = (ids == eos).nonzero()
    return int(positions[0]) + 1 if len(positions) else len(ids)


# --- training ------------------------------------------------------------------------------


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def train_loop(steps: int, step: Callable[[int], torch.Tensor], parameters: list[nn.Parameter],
               lr: float, description: str, progress: bool = True,
               after_step: Callable[[], None] | None = None) -> list[float]:
    """Adam on ``parameters`` for ``steps`` steps of ``step(i) -> loss``; returns the losses.
    ``after_step`` runs after each update (AP's search takes its own step from the same
    backward pass)."""
    optimizer = torch.optim.Adam(parameters, lr=lr)
    losses = []
    with Progress(transient=True, disable=not progress or not sys.stderr.isatty()) as bar:
        task = bar.add_task(description, total=steps)
        for index in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss = step(index)
            loss.backward()
            optimizer.step()
            if after_step is not None:
                after_step()
            losses.append(float(loss.detach()))
            bar.advance(task)
    return losses


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The dtype the erasers' forward passes autocast to for ``precision`` ("auto" = bf16
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


def _frozen_layer_weights(module: nn.Module) -> list[nn.Parameter]:
    """The weights and biases of ``module``'s :data:`AUTOCAST_LAYERS` that get no gradient."""
    return [weight for layer in module.modules() if isinstance(layer, AUTOCAST_LAYERS)
            for weight in layer.parameters(recurse=False) if not weight.requires_grad]


@contextlib.contextmanager
def frozen_weights_cast(model: DiffusionModel, precision: str) -> Iterator[None]:
    """Within the block, the UNet's frozen layer weights (:func:`_frozen_layer_weights`,
    read as the block starts: enter it inside :func:`editing`) held in the dtype autocast
    casts them to for ``precision``; their fp32 tensors back afterwards, bit for bit. Every
    UNet call inside must run under that autocast.

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
    with tensors_cast(_frozen_layer_weights(model.unet), dtype):
        yield


# --- diffusion pieces ----------------------------------------------------------------------


def latent_shape(model: DiffusionModel) -> tuple[int, int, int]:
    """(channels, height, width) of the UNet's input at the model's native size."""
    size = int(model.unet.config.sample_size)
    return int(model.unet.config.in_channels), size, size


def ddim_scheduler(model: DiffusionModel, steps: int) -> Any:
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler.from_config(model.scheduler_config)
    scheduler.set_timesteps(steps)
    return scheduler


@torch.no_grad()
def partial_ddim_sample(unet: nn.Module, scheduler: Any, noise: torch.Tensor,
                        cond: torch.Tensor, uncond: torch.Tensor, guidance: float,
                        stop: int) -> torch.Tensor:
    """Runs the first ``stop`` DDIM steps of ``scheduler`` from ``noise`` with
    classifier-free guidance; the result lives at ``scheduler.timesteps[stop]``."""
    latents = noise * scheduler.init_noise_sigma
    context = torch.cat([uncond, cond])
    for t in scheduler.timesteps[:stop]:
        both = unet(torch.cat([latents, latents]), t, encoder_hidden_states=context).sample
        uncond_noise, cond_noise = both.float().chunk(2)
        latents = scheduler.step(uncond_noise + guidance * (cond_noise - uncond_noise), t,
                                 latents).prev_sample
    return latents


# --- the model's own pictures, as training data -------------------------------------------

_DRAWN: OrderedDict[tuple, torch.Tensor] = OrderedDict()
_DRAWN_KEEP = 16  # sets of latents remembered per process (SD: 1000 anchors are ~65 MB)


def drawn_latents(model: DiffusionModel, prompts: Sequence[PromptSpec], steps: int,
                  guidance: float) -> torch.Tensor:
    """The model's images of ``prompts`` encoded back to scaled latents (CA's anchor images,
    MACE's concept images). Remembered per process: the default run asks for the same
    anchor images in every request."""
    key = (model.fingerprint, str(model.device), tuple(prompts), steps, guidance)
    if key in _DRAWN:
        _DRAWN.move_to_end(key)
        return _DRAWN[key]
    from erasebench.generate import Generator

    settings = GenerationSpec(steps=steps, guidance=guidance)
    drawn = Generator(model, settings, batch_size=32, progress=False).images(prompts)
    pixels = torch.from_numpy(np.stack([np.asarray(image) for image in drawn]))
    images = pixels.permute(0, 3, 1, 2).float().div(127.5).sub(1).to(model.device)
    with torch.no_grad():
        encoded = model.vae.encode(images)
        latents = encoded.latent_dist.mode() if hasattr(encoded, "latent_dist") else (
            encoded.latents)
    _DRAWN[key] = latents * model.vae.config.scaling_factor
    while len(_DRAWN) > _DRAWN_KEEP:
        _DRAWN.popitem(last=False)
    return _DRAWN[key]


def concepts_and_targets(name: str, request: ErasureRequest, default: str
                         ) -> tuple[list[str], list[str]]:
    """The request's concepts and, for each, its target (anchor / guide / mapping): the
    request's anchors (one for all, or one per concept), else ``default``."""
    if not request.concepts:
        raise UserError(f"{name} needs at least one concept to erase")
    concepts = list(request.concepts)
    targets = list(request.anchors or (default,))
    if len(targets) not in (1, len(concepts)):
        raise UserError(f"{name} takes one anchor or one per concept; got {len(targets)} for "
                        f"{len(concepts)} concepts")
    return concepts, targets * len(concepts) if len(targets) == 1 else targets
