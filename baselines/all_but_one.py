"""``all_but_one``: "All but One: Surgical Concept Erasing with Model Preservation in
Text-to-Image Diffusion Models" (Hong, Lee, Woo, AAAI 2024).

No code was published and we implement only the idea of the abstract; everything below
beyond it is an assumption, stated so that it can be checked against the paper:

* The classifier-guidance direction of the concept, ε_θ(x_t, c) − ε_θ(x_t, ∅), is moved to
  that of the user's alternative concept c_alt under the original model,
  ε*(x_t, c_alt) − ε*(x_t, ∅) (assumed: squared error, stop-gradient target). With no
  alternative (the empty prompt, the default) the concept's guidance becomes zero: the
  prompt then draws what the unconditional model draws.
* The unconditional score's drift is constrained by λ ‖ε_θ(x_t, ∅) − ε*(x_t, ∅)‖²
  (assumed: a squared-error penalty with weight ``drift_weight``, λ = 1).
* x_t and timesteps come from ESD's sampling (partial DDIM from noise with prompt c at
  guidance 3, the same ``timestep``/``sampler`` options), and the trained weights are the
  cross-attention layers (``attn2``), where text enters the UNet (assumed).
* Optimiser and schedule: ESD's (1000 Adam steps at 1e-5, batch 1) (assumed).
"""

from __future__ import annotations

import torch
from pydantic import Field

from erasebench.baselines.common import (
    TrainingState,
    concepts_and_targets,
    editing,
    train_loop,
)
from erasebench.baselines.esd import ESDX, ESDConfig
from erasebench.edits import EditedModel
from erasebench.models import DiffusionModel
from erasebench.registry import register_eraser
from erasebench.specs import ErasureRequest
from erasebench.training_precision import autocast, frozen_weights_cast


class AllButOneConfig(ESDConfig):
    drift_weight: float = Field(1.0, ge=0, description="λ on the unconditional score's drift.")


# Miniature world: ESD's preset (inherited). It meets the objective on the prompts it
# trains on (bare "circle" -> "square": the guidance-direction gap falls by 90 %, ε(∅)
# drifts by a tenth of that gap), but the edit reaches the tasks' "a {colour} {shape}"
# prompts only partly (gap -60 % at t = 400, +50 % at t = 100), so it erases less than ESD
# (split 1, 20 images per shape: ESR-1 43). Larger rates do not fix that: at 4e-3 / 6e-3
# / 8e-3 ESR-1 rose to 70 / 80 / 86 but the loss climbed instead of falling (at 8e-3
# 0.005 -> 0.1) and PSR-1 fell 71 -> 36 -> 22 -> 18: erasure by damage, not by the method.


@register_eraser("all_but_one")
class AllButOne(ESDX):
    """Re-aims the concept's guidance direction at an alternative, keeping ε(∅) in place."""

    Config = AllButOneConfig

    def erase(self, model: DiffusionModel, request: ErasureRequest) -> EditedModel:
        config: AllButOneConfig = self.config  # type: ignore[assignment]
        concepts, alternatives = concepts_and_targets(self.name, request, "")
        setup = self.training(model, ["", *concepts, *alternatives])
        frozen, scheduler, generator = setup.frozen, setup.scheduler, setup.generator
        empty = setup.texts[:1]
        erased = setup.texts[1:1 + len(concepts)]
        alternative = setup.texts[1 + len(concepts):]
        batch = config.batch_size
        with editing(model, setup.names, self.name, config.model_dump(mode="json"),
                     request) as edit, frozen_weights_cast(model, config.precision):
            parameters = setup.parameters(model)

            def step(index: int) -> torch.Tensor:
                which = index % len(concepts)
                cond = erased[which].expand(batch, -1, -1)
                alt = alternative[which].expand(batch, -1, -1)
                uncond = empty.expand(batch, -1, -1)
                with autocast(model.device, config.precision):
                    x_t, t, _ = self.noisy_latents(model, frozen, scheduler, cond, empty,
                                                   generator)
                    with torch.no_grad():
                        out = frozen(torch.cat([x_t, x_t]), t, encoder_hidden_states=(
                            torch.cat([uncond, alt]))).sample.float()
                        e_empty, e_alt = out.chunk(2)
                    both = model.unet(torch.cat([x_t, x_t]), t, encoder_hidden_states=(
                        torch.cat([uncond, cond]))).sample.float()
                    own_empty, own_cond = both.chunk(2)
                mse = torch.nn.functional.mse_loss
                return (mse(own_cond - own_empty, e_alt - e_empty)
                        + config.drift_weight * mse(own_empty, e_empty))

            train_loop(config.iterations, step, parameters, config.lr, f"{self.name} training",
                       state=TrainingState(generators=[generator]))
        return edit[0]

