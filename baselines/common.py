"""What the in-tree erasers share: which parameters they touch, editing a model in place
and handing back only the change, token positions, and a seeded training loop that
resumes from its checkpoint after a stop (:mod:`erasebench.training_checkpoints`). The
precision their forward passes run in is :mod:`erasebench.training_precision`'s, which the
robustness task's attack shares.
"""

from __future__ import annotations

import contextlib
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
from erasebench.faults import checkpoint
from erasebench.models import DiffusionModel
from erasebench.specs import ErasureRequest, GenerationSpec, PromptSpec
from erasebench.stopping import HeldStop, stops_held
from erasebench.training_checkpoints import TrainingState, loop_checkpoint

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
               after_step: Callable[[], None] | None = None,
               state: TrainingState | None = None) -> list[float]:
    """Adam on ``parameters`` for ``steps`` steps of ``step(i) -> loss``; returns the losses.
    ``after_step`` runs after each update (AP's search takes its own step from the same
    backward pass).

    ``state``, all else the steps change (their random generators, AP's search), makes
    the loop resumable: in a run it saves checkpoints, and a stop signal lets the step
    end and its checkpoint be saved; the next start goes on from it
    (:mod:`erasebench.training_checkpoints`). Without it the loop starts over."""
    optimizer = torch.optim.Adam(parameters, lr=lr)
    saving = loop_checkpoint(description, steps, parameters, optimizer, state)
    first, losses = saving.resume() if saving is not None else (0, [])
    with (Progress(transient=True, disable=not progress or not sys.stderr.isatty()) as bar,
          stops_held() if saving is not None else contextlib.nullcontext(HeldStop()) as stop):
        task = bar.add_task(description, total=steps, completed=first)
        for index in range(first, steps):
            optimizer.zero_grad(set_to_none=True)
            loss = step(index)
            loss.backward()
            optimizer.step()
            if after_step is not None:
                after_step()
            losses.append(float(loss.detach()))
            bar.advance(task)
            if saving is not None and (stop.signum is not None or saving.due()):
                saving.save(index + 1, losses, stopping=stop.signum is not None)
            stop.stop_if_asked()
            checkpoint("train.step")
    return losses


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
