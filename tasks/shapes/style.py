"""``shapes_style``: the artist-style protocol on the miniature world.

Textures play the artists: a request erases one texture ("striped" or "dotted"); the
model then draws every texture (plain included, which captions leave unnamed) on
cycling shapes and colours. The texture classifier says how often each image still
shows the texture it was prompted with: low on the erased texture, high on the
retained ones. As the artist task's LPIPS, the mean absolute pixel distance to the
original model's image for the same prompt and seed says how far each side moved;
the shape rate on erased-texture prompts says whether the content survived the
style's removal.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image
from pydantic import Field, field_validator

from erasebench.plugins import MetricInfo, MetricValue, PluginConfig, ScoringContext
from erasebench.registry import register_task
from erasebench.specs import ErasureRequest, PromptSpec
from erasebench.tasks.shapes.render import COLOURS, SHAPES, TEXTURES, caption
from erasebench.tasks.shapes.scoring import ShapesTask, read_images

NAMED_TEXTURES = tuple(t for t in TEXTURES if t != "plain")  # the ones a caption can name


class ShapesStyleOptions(PluginConfig):
    erase: tuple[str, ...] = Field(NAMED_TEXTURES, description="Textures erased, one request "
                                   "each.")
    images_per_texture: int = Field(30, ge=1, description="Images drawn of every texture.")
    seed: int = Field(0, ge=0, description="Seed of the first image; image j of texture i uses "
                   "seed + 1000 * i + j.")

    @field_validator("erase")
    @classmethod
    def _named(cls, textures: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(textures) - set(NAMED_TEXTURES))
        if unknown:
            raise ValueError(f"cannot erase {unknown}; erasable textures: "
                             f"{', '.join(NAMED_TEXTURES)}")
        return textures


@register_task("shapes_style")
class ShapesStyle(ShapesTask):
    """Artist-style analogue: erase one texture; texture rates and distance to the original."""

    description = __doc__ or ""
    Options = ShapesStyleOptions
    metrics = {
        "erased_texture_rate": MetricInfo(False, "% of erased-texture prompts drawn with it"),
        "retained_texture_rate": MetricInfo(True, "% of other prompts drawn with their texture"),
        "erased_shape_rate": MetricInfo(True, "% of erased-texture prompts with the right shape"),
        "distance_erased": MetricInfo(True, "mean |image - original image| / 255, erased side"),
        "distance_retained": MetricInfo(False, "the same on retained textures"),
    }
    contract_options = {"images_per_texture": 1, "erase": ("striped",)}

    def requests(self) -> list[ErasureRequest]:
        return [ErasureRequest(concepts=(texture,), label=texture)
                for texture in self.options.erase]  # type: ignore[attr-defined]

    def prompts(self, request: ErasureRequest) -> list[PromptSpec]:
        count, seed = self.options.images_per_texture, self.options.seed  # type: ignore[attr-defined]
        colours = list(COLOURS)
        prompts = []
        for i, texture in enumerate(TEXTURES):
            for j in range(count):
                shape = SHAPES[j % len(SHAPES)]
                colour = colours[(j // len(SHAPES) + j) % len(colours)]
                prompts.append(PromptSpec(
                    text=caption(shape, colour, texture), seed=seed + 1000 * i + j,
                    label=f"{texture}/{shape}",
                    group="erase" if texture in request.concepts else "preserve"))
        return prompts

    def reference_prompts(self, request: ErasureRequest) -> list[PromptSpec]:
        return self.prompts(request)  # each image's pixel change from the original's

    def score(self, images: Sequence[Image.Image], prompts: Sequence[PromptSpec],
              request: ErasureRequest, context: ScoringContext) -> list[MetricValue]:
        logits = read_images(images, context.device)
        textures = logits["texture"].argmax(1).numpy()
        shapes = logits["shape"].argmax(1).numpy()
        wanted = [prompt.label.split("/") for prompt in prompts]
        texture_hit = np.array([TEXTURES[t] == w[0] for t, w in zip(textures, wanted, strict=True)])
        shape_hit = np.array([SHAPES[s] == w[1] for s, w in zip(shapes, wanted, strict=True)])
        references = context.reference_images(prompts)
        distance = np.array([
            np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).mean() / 255
            for a, b in zip(images, references, strict=True)])
        erased = np.array([prompt.group == "erase" for prompt in prompts])
        values = {
            "erased_texture_rate": 100 * texture_hit[erased].mean(),
            "retained_texture_rate": 100 * texture_hit[~erased].mean(),
            "erased_shape_rate": 100 * shape_hit[erased].mean(),
            "distance_erased": distance[erased].mean(),
            "distance_retained": distance[~erased].mean(),
        }
        per_image = {  # what the values average, for bootstrap intervals
            "erased_texture_rate": 100.0 * texture_hit[erased],
            "retained_texture_rate": 100.0 * texture_hit[~erased],
            "erased_shape_rate": 100.0 * shape_hit[erased],
            "distance_erased": distance[erased],
            "distance_retained": distance[~erased],
        }
        return [MetricValue(metric=name, value=float(value),
                            samples=tuple(map(float, per_image[name])))
                for name, value in values.items()]

