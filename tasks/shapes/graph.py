"""``shapes_graph``: the concept-graph protocol on the miniature world.

Each request erases one shape (by default five: ``DEFAULT_TARGETS``; ``erase`` takes any
of the ten); the model then draws every shape and the classifier
gives each shape's detection rate (top-1), G_e(c), on the edited model and, from the
original model's images of the same prompts and seeds, G_0(c). One request is one row
of the Δ matrix, Δ_e(c) = G_e(c) − G_0(c) in percentage points. Per request:

- ``erased_drop`` = −Δ_e(e): how much the erased shape fell;
- ``collateral`` = mean over c ≠ e of |Δ_e(c)|: how much everything else moved;
- ``locality``: Spearman correlation, over c ≠ e, between the base text encoder's
  similarity of c to e (cosine of the flattened token embeddings of the bare words,
  as AP measures concept distance) and the drop −Δ_e(c). Positive: the damage falls
  on the concepts the model considers close. Descriptive, not better or worse.

Across requests the reporter assembles the full matrix and its asymmetry, the mean over
pairs of |Δ_a(b) − Δ_b(a)| (:mod:`erasebench.tasks.graph_metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image
from pydantic import Field, field_validator

from erasebench.figures import Figure
from erasebench.plugins import MetricInfo, MetricValue, PluginConfig, ScoringContext
from erasebench.registry import register_task
from erasebench.specs import ErasureRequest, PromptSpec
from erasebench.tasks.graph_metrics import (
    delta_heatmaps,
    locality,
    matrices_markdown,
    text_similarity,
)
from erasebench.tasks.shapes.objects import ShapePromptsTask
from erasebench.tasks.shapes.render import SHAPES
from erasebench.tasks.shapes.scoring import read_images

# Erased by default: five shapes that each have a near neighbour among the others (circle:
# ring, crescent; square: diamond; triangle: arrow; star: cross; heart), so every row
# probes locality. All ten rows cost a second ESD-style training each: the default run
# would then take 19 minutes on 2 cores instead of its 15 (measured with nine erasers).
DEFAULT_TARGETS = ("circle", "square", "triangle", "star", "heart")


class ShapesGraphOptions(PluginConfig):
    erase: tuple[str, ...] = Field(DEFAULT_TARGETS, description="Shapes erased, one request "
                                   "each (the matrix's rows; every shape is measured).")
    images_per_class: int = Field(10, ge=1, description="Images drawn of every shape (10: "
                                  "each Δ entry moves in steps of 10 points).")
    prompt: str = Field("a {colour} {shape}", description="Prompt template, as shapes_objects.")
    seed: int = Field(0, ge=0, description="Seed of the first image, as shapes_objects.")

    @field_validator("erase")
    @classmethod
    def _known(cls, shapes: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(shapes) - set(SHAPES))
        if unknown:
            raise ValueError(f"unknown shapes {unknown}; shapes are {', '.join(SHAPES)}")
        return shapes


def detection_rates(logits: torch.Tensor, labels: Sequence[str]) -> np.ndarray:
    """% of each shape's images whose top-1 class is that shape (NaN if it has none)."""
    predicted = logits.argmax(1).numpy()
    truth = np.array([SHAPES.index(label) for label in labels])
    rates = np.full(len(SHAPES), np.nan)
    for index in range(len(SHAPES)):
        mine = truth == index
        if mine.any():
            rates[index] = 100.0 * (predicted[mine] == index).mean()
    return rates


@register_task("shapes_graph")
class ShapesGraph(ShapePromptsTask):
    """Concept-graph analogue: erase each shape in turn; Δ matrix, collateral, locality."""

    description = __doc__ or ""
    Options = ShapesGraphOptions
    metrics = {
        "erased_drop": MetricInfo(True, "fall of the erased shape's detection rate (points)"),
        "collateral": MetricInfo(False, "mean |change| of the other shapes' rates (points)"),
        "locality": MetricInfo(None, "Spearman(text similarity to the erased shape, drop)"),
        **{f"delta/{shape}": MetricInfo(None, f"change of {shape}'s detection rate",
                                         headline=False) for shape in SHAPES},
    }
    contract_options = {"images_per_class": 1, "erase": ("circle",)}

    def requests(self) -> list[ErasureRequest]:
        return [ErasureRequest(concepts=(shape,), label=shape)
                for shape in self.options.erase]  # type: ignore[attr-defined]

    def reference_prompts(self, request: ErasureRequest) -> list[PromptSpec]:
        return self.prompts(request)  # each shape's detection rate before the erasure

    def score(self, images: Sequence[Image.Image], prompts: Sequence[PromptSpec],
              request: ErasureRequest, context: ScoringContext) -> list[MetricValue]:
        labels = [prompt.label for prompt in prompts]
        edited = detection_rates(read_images(images, context.device)["shape"], labels)
        references = context.reference_images(prompts)
        base = detection_rates(read_images(references, context.device)["shape"], labels)
        delta = edited - base
        erased = SHAPES.index(request.concepts[0])
        others = [i for i in range(len(SHAPES)) if i != erased and not np.isnan(delta[i])]
        values = [MetricValue(metric=f"delta/{SHAPES[i]}", value=float(delta[i]))
                  for i in range(len(SHAPES)) if not np.isnan(delta[i])]
        values.append(MetricValue(metric="erased_drop", value=float(-delta[erased])))
        if others:
            values.append(MetricValue(metric="collateral",
                                      value=float(np.abs(delta[others]).mean())))
        if context.encode_text is not None:
            similarity = text_similarity(context.encode_text, request.concepts[0], SHAPES)
            # A constant side has no ranking: the correlation is undefined, not zero.
            rho = locality(similarity[others], -delta[others])
            if rho is not None:
                values.append(MetricValue(metric="locality", value=rho))
        return values


    @classmethod
    def report(cls, rows: pd.DataFrame) -> str:
        """The Δ matrix of every eraser (erased shape down, measured shape across) and its
        asymmetry, as markdown."""
        return matrices_markdown(rows, SHAPES, "points", noun="shape", digits=0)


    @classmethod
    def figures(cls, rows: pd.DataFrame, stem: str) -> list[Figure]:
        return delta_heatmaps(rows, SHAPES, stem, "Δ matrices: how erasing the shape of a "
                              "row moves the top-1 rate of the shape of a column (points)",
                              limit=100.0)
