"""``shapes_objects``: the Imagenette protocol on the miniature world.

Each split erases five shapes and preserves the other five, like AP/AGE's four
Imagenette splits (``imagenette_v1``..``v4``; the shape at Imagenette's class index
stands in for the class, so v2 and v4 are the complements of v1 and v3). Every shape is
drawn ``images_per_class`` times from ``prompt``; the shape classifier reads them, and
the same metric code as Imagenette's ResNet-50 (:class:`~erasebench.rates.ErasureSuccess`)
turns its logits into ESR-1/ESR-5 (erased shape not in the top-k) and PSR-1/PSR-5
(preserved shape in the top-k), overall and per shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from PIL import Image
from pydantic import Field, field_validator

from erasebench.figures import Figure, tradeoff_figure
from erasebench.metrics import erasure_metric_infos, erasure_values
from erasebench.plugins import MetricValue, PluginConfig, ScoringContext
from erasebench.registry import register_task
from erasebench.specs import ErasureRequest, PromptSpec
from erasebench.tasks.shapes.render import COLOURS, SHAPES
from erasebench.tasks.shapes.scoring import ShapesTask, read_images

# Imagenette's erased class indices in AP/AGE's splits v1 and v3, applied to SHAPES.
_V1, _V3 = (2, 4, 5, 6, 9), (0, 2, 3, 4, 7)


def _split(indices: Sequence[int], complement: bool = False) -> tuple[str, ...]:
    chosen = [i for i in range(len(SHAPES)) if (i in indices) != complement]
    return tuple(SHAPES[i] for i in chosen)


DEFAULT_SPLITS = (_split(_V1), _split(_V1, True), _split(_V3), _split(_V3, True))
KS = (1, 5)


class ShapesObjectsOptions(PluginConfig):
    splits: tuple[tuple[str, ...], ...] = Field(
        DEFAULT_SPLITS, description="Shapes erased in each split; the others are preserved.")
    images_per_class: int = Field(30, ge=1, description="Images drawn of every shape.")
    prompt: str = Field("a {colour} {shape}", description="Prompt template; {colour} cycles "
                        "through the 8 colours image by image. 'a photo of a {shape}' is "
                        "Imagenette's template.")
    seed: int = Field(0, ge=0, description="Seed of the first image; image j of shape i uses "
                   "seed + 1000 * i + j.")
    tell_preserved: bool = Field(False, description="Pass the preserved shapes to the eraser "
                                 "as the request's preserve set (AP/AGE's protocol does not).")

    @field_validator("splits")
    @classmethod
    def _known_shapes(cls, splits: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
        for split in splits:
            unknown = sorted(set(split) - set(SHAPES))
            if unknown:
                raise ValueError(f"unknown shapes {unknown}; shapes are {', '.join(SHAPES)}")
            if not split:
                raise ValueError("a split must erase at least one shape")
        return splits

    @field_validator("prompt")
    @classmethod
    def _names_the_shape(cls, prompt: str) -> str:
        if "{shape}" not in prompt:
            raise ValueError("the prompt template must contain {shape}")
        return prompt


def shape_prompts(template: str, images_per_class: int, seed: int,
                  erased: Sequence[str]) -> list[PromptSpec]:
    """``images_per_class`` prompts of every shape, grouped erase/preserve, labelled by shape.

    Prompt and seed depend only on the shape and the image index, never on the split, so
    the base model's images are generated once for all splits (through the cache).
    """
    colours = list(COLOURS)
    prompts = []
    for i, shape in enumerate(SHAPES):
        for j in range(images_per_class):
            text = template.format(shape=shape, colour=colours[j % len(colours)])
            prompts.append(PromptSpec(text=text, seed=seed + 1000 * i + j, label=shape,
                                      group="erase" if shape in erased else "preserve"))
    return prompts


class ShapePromptsTask(ShapesTask):
    """A task drawing every shape from ``prompt`` (options: prompt, images_per_class, seed)."""

    def prompts(self, request: ErasureRequest) -> list[PromptSpec]:
        options = self.options
        return shape_prompts(options.prompt, options.images_per_class,  # type: ignore[attr-defined]
                             options.seed, request.concepts)  # type: ignore[attr-defined]


@register_task("shapes_objects")
class ShapesObjects(ShapePromptsTask):
    """Imagenette analogue: erase 5 of 10 shapes per split; ESR/PSR from the shape classifier."""

    description = __doc__ or ""
    Options = ShapesObjectsOptions
    metrics = erasure_metric_infos(SHAPES, "shape", "the classifier", KS)
    contract_options = {"images_per_class": 1, "splits": (("circle",),)}

    def requests(self) -> list[ErasureRequest]:
        options = self.options
        requests = []
        for number, split in enumerate(options.splits, start=1):  # type: ignore[attr-defined]
            preserved = tuple(s for s in SHAPES if s not in split)
            requests.append(ErasureRequest(
                concepts=split, label=f"split {number}",
                preserve=preserved if options.tell_preserved else ()))  # type: ignore[attr-defined]
        return requests

    def score(self, images: Sequence[Image.Image], prompts: Sequence[PromptSpec],
              request: ErasureRequest, context: ScoringContext) -> list[MetricValue]:
        logits = read_images(images, context.device)["shape"]
        labels = torch.tensor([SHAPES.index(prompt.label) for prompt in prompts])
        erased = [SHAPES.index(shape) for shape in request.concepts]
        preserved = [i for i in range(len(SHAPES)) if i not in erased]
        return erasure_values(logits, labels, erased, preserved, dict(enumerate(SHAPES)), KS)

    @classmethod
    def figures(cls, rows: pd.DataFrame, stem: str) -> list[Figure]:
        return [tradeoff_figure(rows, stem, title="shapes_objects: erased vs preserved shapes")]

