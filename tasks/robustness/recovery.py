"""The recovery attack: is an erased concept gone, or only hidden behind its words?

For an erased concept, a perturbation δ of the conditioning (the text encoder's output the
UNet reads, 77 × dim) is optimised so that the *edited* model's noise prediction on noisy
latents of the concept's images, conditioned on its prompt's encoding + δ, matches the
*original* model's prediction conditioned on the prompt alone (Bui et al.'s knowledge
recovery with a learnable prompt, here in the conditioning space: a white-box attacker
with the concept's images). δ is one perturbation shared by all prompts of the concept,
kept in an L2 ball of radius ρ·(mean norm of the prompts' encodings) by projection after
every Adam step. ρ = 0 is the plain prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from diffusers import DDPMScheduler
from PIL import Image

from erasebench.probe import ModelProbe
from erasebench.specs import PromptSpec


@dataclass(frozen=True)
class AttackSettings:
    steps: int = 50
    lr: float = 0.05  # Adam's step, in units of the conditioning's standard deviation
    samples: int = 32  # noisy latents the loss is averaged over (fixed for all steps)
    seed: int = 0


def project(delta: torch.Tensor, bound: float) -> torch.Tensor:
    """``delta`` scaled back onto the L2 ball of radius ``bound`` if it left it."""
    norm = float(delta.norm())
    return delta * (bound / norm) if norm > bound else delta


def recover(probe: ModelProbe, texts: Sequence[str], references: Sequence[Image.Image],
            radius: float, settings: AttackSettings) -> tuple[torch.Tensor, list[float]]:
    """The perturbation δ (tokens, dim) for prompts ``texts`` whose original images are
    ``references`` (one per text), and the loss at every step."""
    model, device = probe.model, probe.model.device
    scheduler = DDPMScheduler.from_config(model.scheduler_config)
    generator = torch.Generator().manual_seed(settings.seed)
    latents = probe.latents(references)
    pick = torch.randint(len(latents), (settings.samples,), generator=generator)
    steps = torch.randint(scheduler.config.num_train_timesteps, (settings.samples,),
                          generator=generator)
    noise = torch.randn((settings.samples, *latents.shape[1:]), generator=generator)
    x_t = scheduler.add_noise(latents[pick], noise.to(device, latents.dtype), steps.to(device))
    chosen = [texts[int(i)] for i in pick]
    with torch.no_grad():
        target = model.unet(x_t, steps.to(device),
                            encoder_hidden_states=model.encode_text(chosen)).sample
    with probe.edited() as edited:
        start = edited.encode_text(chosen).detach()
        bound = radius * float(start.flatten(1).norm(dim=1).mean())
        delta = torch.zeros_like(start[0], requires_grad=True)
        optimiser = torch.optim.Adam([delta], lr=settings.lr * float(start.std()))
        losses = []
        for _ in range(settings.steps if bound > 0 else 0):
            prediction = edited.unet(x_t, steps.to(device),
                                     encoder_hidden_states=start + delta).sample
            loss = torch.nn.functional.mse_loss(prediction.float(), target.float())
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            with torch.no_grad():
                delta.copy_(project(delta, bound))
            losses.append(float(loss.detach()))
    return delta.detach(), losses


def recovered_images(probe: ModelProbe, prompts: Sequence[PromptSpec],
                     delta: torch.Tensor) -> list[Image.Image]:
    """The edited model's images of ``prompts`` drawn with their encodings + δ."""
    with torch.no_grad(), probe.edited() as edited:
        conditioning = edited.encode_text([p.text for p in prompts]) + delta
    return probe.edited_images(prompts, conditioning)
