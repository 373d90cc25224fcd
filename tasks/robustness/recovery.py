"""The recovery attack: is an erased concept gone, or only hidden behind its words?

For an erased concept, a perturbation δ of the conditioning (the text encoder's output the
UNet reads, 77 × dim) is optimised so that the *edited* model's noise prediction on noisy
latents of the concept's images, conditioned on its prompt's encoding + δ, matches the
*original* model's prediction conditioned on the prompt alone (Bui et al.'s knowledge
recovery with a learnable prompt, here in the conditioning space: a white-box attacker
with the concept's images). δ is one perturbation shared by all prompts of the concept,
kept in an L2 ball of radius ρ·(mean norm of the prompts' encodings) by projection after
every Adam step. ρ = 0 is the plain prompt.

As an option, the attacker also gets ``soft_tokens`` free vectors: the conditioning's last
k positions (the padding the UNet's cross-attention reads after the prompt) are replaced by
k learnt vectors, shared by the concept's prompts and unbounded — the textual-inversion
attacker, who may write a new "word" for the concept rather than only nudge its name.
They start from the prompts' mean encoding at those positions, so the attack starts from
the plain prompt.

The attack's UNet passes run under autocast as the erasers train (``precision``, the
run's: ``auto`` is bf16 on a GPU, the frozen weights held cast, as
``erasebench.training_precision`` does for the erasers, and fp32 on a CPU): each class and
radius takes ``steps`` forward and backward passes over ``samples`` latents, more work on
SD than drawing the attacked images, and fp32 runs off the GPU's tensor cores.

On SD a backward pass of the default 32 samples may hold tens of GB of activations (an
estimate, not yet measured on a GPU), more than many GPUs have. So the samples' passes fit
the memory as the generator's batches do (:class:`FittedPasses`): all in one pass at first;
out of memory, the step starts over with passes of half as many, whose losses, weighted by
their share of the samples, add up to the same loss and gradient (up to float rounding).
The images are encoded the same way.

Each attack's result (δ, the soft tokens, the losses) is kept in the run's attack cache
(``erasebench.attack_cache``), keyed by the edited model, the prompts, the images' pixels,
the radius and the settings: a unit stopped half-way makes only its attacks not yet made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from erasebench.attack_cache import image_digest
from erasebench.memory import in_fitting_batches, summed_in_fitting_slices
from erasebench.probe import ModelProbe
from erasebench.specs import PromptSpec
from erasebench.training_precision import autocast, autocast_dtype, frozen_weights_cast

# Bump when the attack changes in a way that changes what it learns: the attack cache
# (erasebench.attack_cache) then makes every attack again.
RECOVERY_VERSION = 1


@dataclass(frozen=True)
class AttackSettings:
    steps: int = 50
    lr: float = 0.05  # Adam's step, in units of the conditioning's standard deviation
    samples: int = 32  # noisy latents the loss is averaged over (fixed for all steps)
    seed: int = 0
    soft_tokens: int = 0  # free, unbounded vectors in the conditioning's last positions
    # Of the UNet passes (the task gives the run's): auto = bf16 autocast on a GPU, fp32 on
    # a CPU; fp32, bf16, fp16.
    precision: str = "auto"


@dataclass(frozen=True)
class Recovery:
    """What the attack learnt: δ (tokens, dim) in its ball, and the free soft tokens
    (k, dim; k may be 0) that replace the conditioning's last k positions."""

    delta: torch.Tensor
    soft: torch.Tensor

    def apply(self, encodings: torch.Tensor) -> torch.Tensor:
        """``encodings`` (n, tokens, dim) attacked: + δ, last positions replaced."""
        return conditioning(encodings, self.delta, self.soft)


def conditioning(encodings: torch.Tensor, delta: torch.Tensor,
                 soft: torch.Tensor) -> torch.Tensor:
    attacked = encodings + delta
    if len(soft):
        free = soft.expand(len(encodings), *soft.shape)
        attacked = torch.cat([attacked[:, : -len(soft)], free], dim=1)
    return attacked


def project(delta: torch.Tensor, bound: float) -> torch.Tensor:
    """``delta`` scaled back onto the L2 ball of radius ``bound`` if it left it."""
    norm = float(delta.norm())
    return delta * (bound / norm) if norm > bound else delta


@dataclass
class FittedPasses:
    """How many of the attack's samples one UNet pass takes (``None``: all of them), and
    how many images one VAE pass encodes. Out of memory halves them; one instance kept for
    a unit's attacks makes only its first attack pay for the fitting."""

    samples: int | None = None
    images: int | None = None


def _noisy_samples(probe: ModelProbe, texts: Sequence[str], references: Sequence[Image.Image],
                   settings: AttackSettings, passes: FittedPasses
                   ) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``settings.samples`` fixed (x_t, t, text) triples drawn from the references."""
    from diffusers import DDPMScheduler  # here: loading the task plugins stays quick

    model, device = probe.model, probe.model.device
    scheduler = DDPMScheduler.from_config(model.scheduler_config)
    generator = torch.Generator().manual_seed(settings.seed)
    encoded, passes.images = in_fitting_batches(
        len(references), passes.images or len(references),
        lambda part: probe.latents(references[part]))
    latents = torch.cat(encoded)
    pick = torch.randint(len(latents), (settings.samples,), generator=generator)
    steps = torch.randint(scheduler.config.num_train_timesteps, (settings.samples,),
                          generator=generator).to(device)
    noise = torch.randn((settings.samples, *latents.shape[1:]), generator=generator)
    x_t = scheduler.add_noise(latents[pick], noise.to(device, latents.dtype), steps)
    return x_t, steps, [texts[int(i)] for i in pick]


def recover(probe: ModelProbe, texts: Sequence[str], references: Sequence[Image.Image],
            radius: float, settings: AttackSettings, passes: FittedPasses | None = None
            ) -> tuple[Recovery, list[float]]:
    """The attack on prompts ``texts`` whose original images are ``references`` (one per
    text), and the loss at every step. δ's positions that soft tokens replace get no
    gradient and stay 0, so δ's whole budget goes to the prompt's own positions.
    ``passes``: the sizes that fit the memory so far (default: try all at once). Its
    seconds are the probe's :attr:`~erasebench.probe.ModelProbe.attacking`. An attack the
    probe's attack cache kept (the same prompts, images, radius and settings on the same
    edited model) is read from it, not made again."""
    fields = {"attack": "recovery", "version": RECOVERY_VERSION, "texts": list(texts),
              "references": image_digest(references), "radius": radius,
              "steps": settings.steps, "lr": settings.lr, "samples": settings.samples,
              "seed": settings.seed, "soft_tokens": settings.soft_tokens,
              "autocast": _autocast_name(probe.model.device, settings.precision)}

    def make() -> dict[str, torch.Tensor]:
        recovery, losses = _optimised(probe, texts, references, radius, settings, passes)
        return {"delta": recovery.delta, "soft": recovery.soft,
                "losses": torch.tensor(losses, dtype=torch.float64)}

    with probe.attack():
        learnt = probe.kept_attack(fields, make,
                                   made_as=made_as(probe.model.device, settings.precision))
    return Recovery(learnt["delta"], learnt["soft"]), learnt["losses"].tolist()


def made_as(device: torch.device, precision: str) -> str:
    """``recovery v1, bfloat16``: the attack's version and what its UNet passes run in on
    ``device`` (``Task.attack_kind``)."""
    return f"recovery v{RECOVERY_VERSION}, {_autocast_name(device, precision)}"


def _autocast_name(device: torch.device, precision: str) -> str:
    """What the attack's UNet passes run in: the dtype autocast casts to, or fp32."""
    dtype = autocast_dtype(device, precision)
    return "fp32" if dtype is None else str(dtype).removeprefix("torch.")


def _optimised(probe: ModelProbe, texts: Sequence[str], references: Sequence[Image.Image],
               radius: float, settings: AttackSettings, passes: FittedPasses | None
               ) -> tuple[Recovery, list[float]]:
    model, precision = probe.model, settings.precision
    passes = passes or FittedPasses()
    x_t, steps, chosen = _noisy_samples(probe, texts, references, settings, passes)
    count = len(x_t)
    with torch.no_grad():
        encodings = model.encode_text(chosen)
        with frozen_weights_cast(model, precision), autocast(model.device, precision):
            predicted, passes.samples = in_fitting_batches(
                count, passes.samples or count, lambda part: model.unet(
                    x_t[part], steps[part], encoder_hidden_states=encodings[part]).sample)
            target = torch.cat(predicted)
    with probe.edited() as edited, frozen_weights_cast(edited, precision):
        start = edited.encode_text(chosen).detach()
        bound = radius * float(start.flatten(1).norm(dim=1).mean())
        delta = torch.zeros_like(start[0], requires_grad=True)
        k = settings.soft_tokens
        soft = start[:, start.shape[1] - k :].mean(0).clone().requires_grad_(True)
        learnt = ([delta] if bound > 0 else []) + ([soft] if k else [])
        losses: list[float] = []
        if not learnt:  # the plain prompt
            return Recovery(delta.detach(), soft.detach()), losses
        optimiser = torch.optim.Adam(learnt, lr=settings.lr * float(start.std()))

        def backward(part: slice) -> float:
            """This part's share of the loss, its gradient added to δ's and the soft
            tokens'."""
            attacked = conditioning(start[part], delta, soft)
            with autocast(edited.device, precision):
                prediction = edited.unet(x_t[part], steps[part],
                                         encoder_hidden_states=attacked).sample
            share = (part.stop - part.start) / count  # 1 for all the samples at once
            loss = torch.nn.functional.mse_loss(prediction.float(), target[part].float())
            (loss * share).backward()
            return float(loss.detach()) * share

        for _ in range(settings.steps):
            optimiser.zero_grad()
            loss, passes.samples = summed_in_fitting_slices(
                count, passes.samples or count, backward, optimiser.zero_grad)
            optimiser.step()
            with torch.no_grad():
                delta.copy_(project(delta, bound))
            losses.append(loss)
    return Recovery(delta.detach(), soft.detach()), losses


def attacked_conditioning(probe: ModelProbe, prompts: Sequence[PromptSpec],
                          recovery: Recovery) -> torch.Tensor:
    """The edited model's encodings of ``prompts``, attacked: what their images are drawn
    with (``probe.edited_images``)."""
    with torch.no_grad(), probe.edited() as edited:
        return recovery.apply(edited.encode_text([p.text for p in prompts]))
