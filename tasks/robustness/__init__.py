"""``robustness``: can the erased concept be recovered?

Built on a classification task (``task``: ``shapes_objects`` on the miniature world by
default, ``imagenette`` on Stable Diffusion), whose requests, prompts and scorer it reuses.
For every request and every erased class:

- **Recovery attack** (:mod:`erasebench.tasks.robustness.recovery`): for each radius ρ in
  ``radii``, a conditioning perturbation within ρ of the class's prompts is optimised to make
  the edited model predict what the original model predicts on the class's images; the
  class's prompts are then drawn (same seeds) with the perturbed conditioning and the task's
  scorer reads them. RSR-k@ρ = % of those images whose class is in the top k (100 − ESR-k
  on the attacked images); RSR-k@0 is the plain prompts'. With ``soft_tokens`` = n > 0 the
  attacker also learns n free vectors at the conditioning's end, and the attacks are named
  RSR-k@ρ+nt (ρ = 0 included: the soft tokens alone).
- **Prompt-set attack** (``prompt_file``: CSV with prompt, evaluation_seed and label columns,
  label = an erased class): the prompts are drawn as they are; ASR-k = % of images whose
  class is in the top k.

An eraser whose effect is only to hide the words (``token_filter``) is recovered almost
fully; one that removed the knowledge stays low as ρ grows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from PIL import Image
from pydantic import Field, field_validator

from erasebench.errors import UserError
from erasebench.plugins import MetricInfo, MetricValue, PluginConfig, ScoringContext, Task
from erasebench.registry import TASKS, register_task
from erasebench.scorers.weights import WeightFile
from erasebench.specs import ErasureRequest, GenerationSpec, PromptSpec
from erasebench.tasks.imagenette import DEFAULT_SPLITS as IMAGENETTE_SPLITS
from erasebench.tasks.prompt_tables import read_prompt_table
from erasebench.tasks.robustness.recovery import (
    RECOVERY_VERSION,
    AttackSettings,
    FittedPasses,
    attacked_conditioning,
    made_as,
    recover,
)
from erasebench.tasks.shapes.objects import DEFAULT_SPLITS as SHAPE_SPLITS

KS = (1, 5)
ATTACK_GROUP = "attack_set"
# The attack costs an optimisation per erased class and radius: by default the first two
# splits (complements of each other, so every class is erased once) and fewer images.
DEFAULT_BASE_OPTIONS: dict[str, dict[str, Any]] = {
    "shapes_objects": {"images_per_class": 10,
                       "splits": [list(split) for split in SHAPE_SPLITS[:2]]},
    "imagenette": {"images_per_class": 50,
                   "splits": [list(split) for split in IMAGENETTE_SPLITS[:2]]},
}


def _format(radius: float, soft_tokens: int = 0) -> str:
    return f"{radius:g}" + (f"+{soft_tokens}t" if soft_tokens else "")


class RobustnessOptions(PluginConfig):
    task: str = Field("shapes_objects", description="The classification task attacked "
                      "(its requests, erased-class prompts and scorer): shapes_objects or "
                      "imagenette.")
    task_options: dict[str, Any] | None = Field(
        None, description="Options of that task (default: its first two splits, which "
        "erase every class once, with 10 images per class on shapes_objects and 50 on "
        "imagenette).")
    radii: tuple[float, ...] = Field((0.1, 0.2, 0.3), description="Attack radii ρ, relative "
                                     "to the prompts' conditioning norm (0, the plain prompt, "
                                     "is always measured).")
    steps: int = Field(50, ge=1, description="Adam steps of the recovery attack per class "
                       "and radius.")
    lr: float = Field(0.05, gt=0, description="Adam's step, in standard deviations of the "
                      "conditioning.")
    samples: int = Field(32, ge=1, description="Noisy latents the attack's loss averages "
                         "over.")
    seed: int = Field(0, ge=0, description="Seed of the attack's noisy latents.")
    soft_tokens: int = Field(0, ge=0, le=75, description="Free, unbounded vectors the attacker "
                             "learns in the conditioning's last positions (textual-inversion "
                             "style); 0: the ball around the prompt only. With n > 0 every "
                             "radius, 0 included, is attacked with them: RSR-k@ρ+nt.")
    prompt_file: str | None = Field(None, description="Adversarial prompts to run as they are "
                                    "(CSV: prompt, evaluation_seed, label); ASR-k.")

    @field_validator("task")
    @classmethod
    def _classification_task(cls, name: str) -> str:
        if "ESR-1" not in TASKS.get(name).metrics:
            raise ValueError(f"the robustness task needs a task that reports ESR-k; {name} "
                             "does not (use shapes_objects or imagenette)")
        return name

    @field_validator("radii")
    @classmethod
    def _positive(cls, radii: tuple[float, ...]) -> tuple[float, ...]:
        if any(r <= 0 for r in radii):
            raise ValueError("radii must be > 0 (0, the plain prompt, is always measured)")
        return tuple(sorted(set(radii)))


@register_task("robustness")
class Robustness(Task):
    """Robustness: recovery success rate RSR-k per attack radius; ASR of prompt sets."""

    description = __doc__ or ""
    citation = ("Bui et al., Hiding and Recovering Knowledge in Text-to-Image Diffusion "
                "Models via Learnable Prompts (ICLR 2025 workshop)")
    Options = RobustnessOptions
    contract_options = {"task_options": {"images_per_class": 1, "splits": [["circle"]]},
                        "radii": [0.2], "steps": 2, "samples": 2}

    def __init__(self, options: dict[str, Any] | PluginConfig | None = None) -> None:
        super().__init__(options)
        config: RobustnessOptions = self.options  # type: ignore[assignment]
        base_options = config.task_options
        if base_options is None:
            base_options = DEFAULT_BASE_OPTIONS.get(config.task, {})
        self.base = TASKS.get(config.task)(base_options)
        self.default_model = self.base.default_model  # type: ignore[misc]
        self.settings = AttackSettings(config.steps, config.lr, config.samples, config.seed,
                                       config.soft_tokens)
        # The attacks run, by name; the plain prompt (RSR-k@0) is measured apart.
        self.attacks = {_format(radius, config.soft_tokens): radius
                        for radius in ((0.0,) if config.soft_tokens else ()) + config.radii}
        metrics = {}
        for k in KS:
            for name in ("0", *self.attacks):
                metrics[f"RSR-{k}@{name}"] = MetricInfo(
                    False, f"% of erased-class images back in the top-{k} after the recovery "
                    f"attack {name} (radius[+soft tokens])", headline=k == 1)
            metrics[f"ASR-{k}"] = MetricInfo(False, f"% of the prompt set's images whose class "
                                                    f"is in the top-{k}")
        self.metrics = metrics  # type: ignore[misc]

    def generation(self) -> GenerationSpec:
        return self.base.generation()

    def requests(self) -> list[ErasureRequest]:
        return self.base.requests()

    def prompts(self, request: ErasureRequest) -> list[PromptSpec]:
        erased = [p for p in self.base.prompts(request) if p.group == "erase"]
        return erased + self._prompt_set(request)

    def _prompt_set(self, request: ErasureRequest) -> list[PromptSpec]:
        path = self.options.prompt_file  # type: ignore[attr-defined]
        if path is None:
            return []
        table = read_prompt_table(path, ("prompt", "evaluation_seed", "label"))
        prompts = [PromptSpec(text=str(row.prompt), seed=int(row.evaluation_seed),
                              label=str(row.label), group=ATTACK_GROUP)
                   for row in table.itertuples()]
        return [p for p in prompts if p.label in request.concepts]

    def _rates(self, images: Sequence[Image.Image], prompts: Sequence[PromptSpec],
               request: ErasureRequest, context: ScoringContext, name: str
               ) -> list[MetricValue]:
        """``name`` with k filled in: % of images whose class is in the top k, i.e. 100 −
        the base task's ESR-k (and per image, 100 − its ESR-k samples)."""
        values = {v.metric: v for v in self.base.score(images, prompts, request, context)}
        return [MetricValue(metric=name.format(k=k), value=100.0 - values[f"ESR-{k}"].value,
                            samples=tuple(100.0 - s for s in values[f"ESR-{k}"].samples))
                for k in KS]

    def reference_prompts(self, request: ErasureRequest) -> list[PromptSpec]:
        # The attacks recover the original model's images of the erased class's prompts.
        return [p for p in self.prompts(request) if p.group != ATTACK_GROUP]

    def score(self, images: Sequence[Image.Image], prompts: Sequence[PromptSpec],
              request: ErasureRequest, context: ScoringContext) -> list[MetricValue]:
        plain = [i for i, p in enumerate(prompts) if p.group != ATTACK_GROUP]
        attack_set = [i for i, p in enumerate(prompts) if p.group == ATTACK_GROUP]
        values = []
        if attack_set:
            values += self._rates([images[i] for i in attack_set],
                                  [prompts[i] for i in attack_set], request, context, "ASR-{k}")
        erased = [prompts[i] for i in plain]
        values += self._rates([images[i] for i in plain], erased, request, context, "RSR-{k}@0")
        if context.probe is None:
            raise UserError("the robustness task attacks the edited model itself: run it "
                            "through `erasebench run`, not on a folder of images")
        references = context.reference_images(erased)
        # The attack runs in the run's precision: bf16 autocast on a GPU unless it asks fp32.
        settings = replace(self.settings, precision=context.probe.generator.settings.precision)
        # One attack per class and radius; a radius's attacked images of all the classes
        # are drawn together, in batches as full as the unit's own (class by class, the
        # last batch of each class ran part empty: 50 images at a batch of 64 on SD).
        by_class = [[i for i, p in enumerate(erased) if p.label == label]
                    for label in dict.fromkeys(p.label for p in erased)]
        order = [erased[i] for mine in by_class for i in mine]
        passes = FittedPasses()  # what fits the memory, found once for all the attacks
        for name, radius in self.attacks.items():
            conditionings = []
            for mine in by_class:
                recovery, _ = recover(context.probe, [erased[i].text for i in mine],
                                      [references[i] for i in mine], radius, settings,
                                      passes)
                conditionings.append(attacked_conditioning(
                    context.probe, [erased[i] for i in mine], recovery))
            attacked = context.probe.edited_images(order, torch.cat(conditionings))
            values += self._rates(attacked, order, request, context, f"RSR-{{k}}@{name}")
        return values

    def scorer_versions(self) -> dict[str, str]:
        # The attack is scoring too: its version tells the RSR numbers of two apart.
        return {**self.base.scorer_versions(), "recovery attack": f"v{RECOVERY_VERSION}"}

    def weight_files(self) -> list[WeightFile]:
        return self.base.weight_files()

    def attack_kind(self, generation: GenerationSpec, device: str) -> str:
        # The attack runs in the run's precision (score(), above).
        return made_as(torch.device(device), generation.precision)
