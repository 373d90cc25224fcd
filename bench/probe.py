"""Access to the edited model itself, for tasks that attack it rather than only read its
images (the robustness task's recovery attack).

The runner hands a :class:`ModelProbe` to :meth:`Task.score` through the scoring context;
tasks still never call a sampler of their own: images come from the runner's generator,
with the same seeds and settings as every other image of the unit. What an attack learns
is kept in the run's attack cache (:meth:`ModelProbe.kept_attack`), so a unit stopped
half-way makes only the attacks it had not made.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from erasebench.attack_cache import AttackCache
from erasebench.edits import EditedModel
from erasebench.faults import checkpoint
from erasebench.generate import Generator
from erasebench.models import DiffusionModel
from erasebench.specs import PromptSpec


@dataclass
class ModelProbe:
    """The base model, the unit's edit and its generator. Outside :meth:`edited` the model
    is the original one."""

    model: DiffusionModel
    edit: EditedModel
    generator: Generator
    # Where attacks' results are kept (the runner's ``<cache>/attacks``); None: nowhere,
    # every attack is made.
    kept: AttackCache | None = None
    unit: str = ""  # the work unit's run id, which the attacks it keeps are noted as made for
    attacking: float = 0.0  # seconds spent in :meth:`attack` blocks
    attacks_read: int = 0  # attacks :meth:`kept_attack` read from the attack cache
    attacked_drawn: int = 0  # images :meth:`edited_images` drew

    def kept_attack(self, fields: dict[str, Any], make: Callable[[], dict[str, torch.Tensor]],
                    made_as: str = "") -> dict[str, torch.Tensor]:
        """What ``make`` (an attack on the edited model) returns, from the attack cache where
        an attack with these ``fields`` on this edited model was kept before (tensors on the
        model's device; counted in :attr:`attacks_read`), else made and kept. ``fields``
        name everything the attack depends on besides the edited model (JSON); ``made_as``
        what the task's :meth:`~erasebench.plugins.Task.attack_kind` says of it, noted
        beside them for a look in the caches."""
        if self.kept is None:
            return make()
        key = {"edited_model": self.edit.edited_fingerprint(), **fields}
        held = self.kept.get(key)
        if held is not None:
            self.attacks_read += 1
            return {name: tensor.to(self.model.device) for name, tensor in held.items()}
        began = time.perf_counter()
        made = make()
        self.kept.put(key, made, unit=self.unit, seconds=time.perf_counter() - began,
                      made_as=made_as)
        checkpoint("attack.kept")
        return made

    @contextlib.contextmanager
    def attack(self) -> Iterator[None]:
        """Times the block as an attack on the model (an optimisation, such as the
        robustness task's recovery attack), which the unit's timings keep apart from the
        scoring's drawing and scorers (``UnitTimings.attacking``): it is no scorer's pace."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self.attacking += time.perf_counter() - began

    @contextlib.contextmanager
    def edited(self) -> Iterator[DiffusionModel]:
        with self.edit.applied(self.model):
            yield self.model

    @torch.no_grad()
    def latents(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """The VAE latents of ``images`` (posterior mean, scaled), on the model device."""
        pixels = np.stack([np.asarray(image.convert("RGB")) for image in images])
        batch = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        vae = self.model.vae
        batch = batch.to(device=self.model.device, dtype=self.model.dtype)
        if hasattr(vae, "encode_pixels"):  # the tiny model's exact pixel-shuffle codec
            latents = vae.encode_pixels(batch)
        else:  # AutoencoderKL: the posterior's mean
            latents = vae.encode(batch).latent_dist.mean
        return latents * vae.config.scaling_factor

    def edited_images(self, prompts: Sequence[PromptSpec],
                      conditioning: torch.Tensor) -> list[Image.Image]:
        """The edited model's images of ``prompts`` drawn with ``conditioning`` (counted in
        :attr:`attacked_drawn`)."""
        with self.edited():
            images = self.generator.images_from_conditioning(prompts, conditioning)
        self.attacked_drawn += len(images)
        return images
