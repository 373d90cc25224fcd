"""``artist``: erasing an artist's style, AP/AGE's protocol (their Table 3).

One request per artist (Kelly McKernan, Thomas Kinkade, Tyler Edlin, Kilian Eng, Ajin: Demi
Human; one edited model each). Every model draws AP's 200 prompts (40 per artist; ``prompts:
short`` for ESD's 100) ``images_per_prompt`` times. Prompts of the erased artist are the
"to erase" group, the other artists' the "to retain" group, and per group:

- CLIP_e / CLIP_r: CLIP score (ViT-B/32, OpenAI, 100·max(cos, 0)) of each image against its
  full prompt — low on the erased artist, high on the others;
- LPIPS_e / LPIPS_r: LPIPS (AlexNet, full resolution) between each image and the original
  model's image of the same prompt and seed — high on the erased artist, low on the others.

The reporter averages the five models (mean ± std).

Seeds: AP drew a prompt's 5 images as one batch from one seeded generator; here every
image has its own generator (an image never depends on its batch), image i of a row using
``evaluation_seed + i * 2**32``: image 0 is the row's seed, and no two images share one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from PIL import Image
from pydantic import Field, field_validator

from erasebench.plugins import MetricInfo, MetricValue, PluginConfig, ScoringContext, Task
from erasebench.registry import register_task
from erasebench.scorers import shared
from erasebench.scorers.clip import ClipScorer
from erasebench.scorers.perceptual import PerceptualDistance
from erasebench.scorers.weights import WeightFile
from erasebench.specs import MAX_SEED, ErasureRequest, GenerationSpec, PromptSpec
from erasebench.tasks.prompt_tables import bundled, read_prompt_table

# The artists as the prompt files name them -> the concept string the papers erased.
ARTISTS = {
    "Kelly McKernan": "Kelly Mckernan",
    "Thomas Kinkade": "Thomas Kinkade",
    "Tyler Edlin": "Tyler Edlin",
    "Kilian Eng": "Kilian Eng",
    "Ajin: Demi Human": "Ajin Demi Human",
}
PROMPT_FILES = {"long": "long_niche_art_prompts.csv", "short": "short_niche_art_prompts.csv"}
SEED_STRIDE = 2**32


def _metrics() -> dict[str, MetricInfo]:
    metrics = {
        "CLIP_e": MetricInfo(False, "CLIP score of the erased artist's images vs their prompts"),
        "CLIP_r": MetricInfo(True, "CLIP score of the other artists' images vs their prompts"),
        "LPIPS_e": MetricInfo(True, "LPIPS of the erased artist's images to the original's"),
        "LPIPS_r": MetricInfo(False, "LPIPS of the other artists' images to the original's"),
    }
    for artist in ARTISTS:
        metrics[f"CLIP/{artist}"] = MetricInfo(None, f"CLIP score of {artist}'s prompts",
                                               headline=False)
        metrics[f"LPIPS/{artist}"] = MetricInfo(None, f"LPIPS on {artist}'s prompts",
                                                headline=False)
    return metrics


class ArtistOptions(PluginConfig):
    artists: tuple[str, ...] = Field(tuple(ARTISTS), description="Artists erased, one request "
                                     "(one edited model) each; all are measured.")
    prompts: Literal["long", "short"] = Field(
        "long", description="'long': AP/AGE's 200 prompts (40 per artist); 'short': ESD's 100.")
    prompt_file: str | None = Field(None, description="Your own CSV (columns prompt, "
                                    "evaluation_seed, artist).")
    images_per_prompt: int = Field(5, ge=1, description="Images per prompt row (AP: 5).")
    limit_per_artist: int | None = Field(None, ge=1, description="Only the first N rows of "
                                         "each artist (quick runs).")
    clip_model: str = Field("ViT-B-32-quickgelu", description="open_clip architecture "
                            "(OpenAI weights).")
    clip_weights: str | None = Field(None, description="Path of the CLIP safetensors file "
                                     "(default: the Hugging Face cache).")
    lpips_weights: str | None = Field(None, description="Path of torchvision's AlexNet .pth "
                                      "(default: torch hub's cache).")

    @field_validator("artists")
    @classmethod
    def _known(cls, artists: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [a for a in artists if a not in ARTISTS]
        if unknown or not artists:
            raise ValueError(f"unknown artists {unknown}; choose from {', '.join(ARTISTS)}")
        return artists


@register_task("artist")
class ArtistStyle(Task):
    """Artist style erasure: CLIP_e/CLIP_r and LPIPS_e/LPIPS_r over five artists."""

    description = __doc__ or ""
    citation = "Bui et al., AP (NeurIPS 2024) and AGE (ICLR 2025), artist table"
    Options = ArtistOptions
    metrics = _metrics()
    contract_options = {"artists": ("Kelly McKernan",), "limit_per_artist": 1,
                        "images_per_prompt": 1, "clip_model": "erasebench-tiny-clip"}

    def generation(self) -> GenerationSpec:
        # AP's generate-images.py: LMS 100 steps, guidance 7.5, 512 px.
        return GenerationSpec(scheduler="lms", steps=100, guidance=7.5)

    def requests(self) -> list[ErasureRequest]:
        return [ErasureRequest(concepts=(ARTISTS[artist],), label=artist)
                for artist in self.options.artists]  # type: ignore[attr-defined]

    def prompts(self, request: ErasureRequest) -> list[PromptSpec]:
        options = self.options
        path = options.prompt_file or bundled(__file__, PROMPT_FILES[options.prompts])  # type: ignore[attr-defined]
        table = read_prompt_table(path, ("prompt", "evaluation_seed", "artist"))
        table = table[table["artist"].isin(list(ARTISTS))]
        if options.limit_per_artist is not None:  # type: ignore[attr-defined]
            table = table.groupby("artist", sort=False).head(options.limit_per_artist)  # type: ignore[attr-defined]
        prompts = []
        for row in table.itertuples():
            erased = ARTISTS[row.artist] in request.concepts
            for i in range(options.images_per_prompt):  # type: ignore[attr-defined]
                seed = int(row.evaluation_seed) + i * SEED_STRIDE
                if seed > MAX_SEED:
                    raise ValueError(f"seed of row {row.Index} too large for image {i}")
                prompts.append(PromptSpec(text=str(row.prompt), seed=seed, label=row.artist,
                                          group="erase" if erased else "preserve"))
        return prompts

    def clip(self, device: str = "cpu") -> ClipScorer:
        options = self.options
        return shared(ClipScorer, options.clip_model, device, options.clip_weights)  # type: ignore[attr-defined]

    def lpips(self, device: str = "cpu") -> PerceptualDistance:
        return shared(PerceptualDistance, device, self.options.lpips_weights)  # type: ignore[attr-defined]

    def reference_prompts(self, request: ErasureRequest) -> list[PromptSpec]:
        return self.prompts(request)  # LPIPS of each image to the original's

    def score(self, images: Sequence[Image.Image], prompts: Sequence[PromptSpec],
              request: ErasureRequest, context: ScoringContext) -> list[MetricValue]:
        clip = self.clip(context.device).scores(images, [p.text for p in prompts]).numpy()
        references = context.reference_images(prompts)
        lpips = self.lpips(context.device).distances(images, references).numpy()
        erase = np.array([p.group == "erase" for p in prompts])
        artist = np.array([p.label for p in prompts])
        values = []
        for suffix, mask in (("e", erase), ("r", ~erase)):
            if mask.any():
                values.append(MetricValue(metric=f"CLIP_{suffix}", value=float(clip[mask].mean()),
                                          samples=tuple(map(float, clip[mask]))))
                values.append(MetricValue(metric=f"LPIPS_{suffix}",
                                          value=float(lpips[mask].mean()),
                                          samples=tuple(map(float, lpips[mask]))))
        for name in ARTISTS:
            mask = artist == name
            if mask.any():
                values.append(MetricValue(metric=f"CLIP/{name}", value=float(clip[mask].mean())))
                values.append(MetricValue(metric=f"LPIPS/{name}",
                                          value=float(lpips[mask].mean())))
        return values

    def scorer_versions(self) -> dict[str, str]:
        return {"clip": self.clip().version(), "lpips": self.lpips().version()}

    def weight_files(self) -> list[WeightFile]:
        return [self.clip().weight_file, self.lpips().weight_file]
