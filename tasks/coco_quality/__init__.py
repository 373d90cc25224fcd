"""``coco_quality``: what an erasure costs in image quality, on COCO captions.

Every request's edited model draws the first ``captions`` COCO-30k captions (each with its
own ``evaluation_seed``), and per request:

- FID (torchmetrics, 2048-d Inception features) against ``reference``: a folder of real
  images (the COCO val2014 images of those captions; statistics cached), or, without one,
  against the original model's images of the same captions and seeds (FID to SD, which
  needs no data set and measures exactly the drift the erasure caused);
- CLIP: mean CLIP score (ViT-B/32, OpenAI, 100·max(cos, 0)) of each image and its caption.

The requests are another task's (``requests_from``, default Imagenette's four splits), so
the edits are the ones that task's table measures, trained once for both.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image
from pydantic import Field, field_validator

from erasebench.plugins import MetricInfo, MetricValue, PluginConfig, ScoringContext, Task
from erasebench.registry import TASKS, register_task
from erasebench.scorers import shared
from erasebench.scorers.clip import ClipScorer
from erasebench.scorers.fid import FrechetDistance
from erasebench.scorers.weights import WeightFile
from erasebench.specs import ErasureRequest, GenerationSpec, PromptSpec
from erasebench.tasks.prompt_tables import bundled, read_prompt_table


class CocoQualityOptions(PluginConfig):
    captions: int = Field(1000, ge=2, le=30000, description="The first N of the 30,000 "
                          "captions (MACE: all 30k; AdvUnlearn: 10k). FID needs many: "
                          "below a few thousand it is biased upwards, so compare like with "
                          "like.")
    reference: str | None = Field(None, description="Folder of real images for FID (e.g. "
                                  "COCO val2014); default: the original model's images.")
    requests_from: str = Field("imagenette", description="The task whose erasure requests "
                               "are measured (its default options).")
    prompt_file: str | None = Field(None, description="Your own CSV (columns prompt, "
                                    "evaluation_seed).")
    clip_model: str = Field("ViT-B-32-quickgelu", description="open_clip architecture "
                            "(OpenAI weights).")
    clip_weights: str | None = Field(None, description="Path of the CLIP safetensors file.")
    fid_weights: str | None = Field(None, description="Path of torch-fidelity's Inception "
                                    ".pth (default: torch hub's cache).")

    @field_validator("requests_from")
    @classmethod
    def _a_task(cls, name: str) -> str:
        TASKS.get(name)  # unknown names list the valid ones
        if name == "coco_quality":
            raise ValueError("coco_quality cannot take its requests from itself")
        return name


@register_task("coco_quality")
class CocoQuality(Task):
    """COCO caption quality: FID (to real images or to SD) and CLIP score."""

    description = __doc__ or ""
    citation = "Lin et al., Microsoft COCO (captions); FID/CLIP as MACE, AP and AGE report them"
    Options = CocoQualityOptions
    metrics = {
        "FID": MetricInfo(False, "Fréchet Inception distance to the reference images"),
        "CLIP": MetricInfo(True, "mean CLIP score of the images against their captions"),
    }
    contract_options = {"captions": 2, "requests_from": "i2p_nudity",
                        "clip_model": "erasebench-tiny-clip"}

    def generation(self) -> GenerationSpec:
        # AP/AGE: LMS 100 steps, guidance 7.5 (MACE: DDIM 50).
        return GenerationSpec(scheduler="lms", steps=100, guidance=7.5)

    def requests(self) -> list[ErasureRequest]:
        source = TASKS.get(self.options.requests_from)()  # type: ignore[attr-defined]
        return list(source.requests())

    def prompts(self, request: ErasureRequest) -> list[PromptSpec]:
        options = self.options
        path = options.prompt_file or bundled(__file__, "coco_30k.csv")  # type: ignore[attr-defined]
        table = read_prompt_table(path, ("prompt", "evaluation_seed")).head(options.captions)  # type: ignore[attr-defined]
        return [PromptSpec(text=str(row.prompt), seed=int(row.evaluation_seed), group="quality")
                for row in table.itertuples()]

    def clip(self, device: str = "cpu") -> ClipScorer:
        options = self.options
        return shared(ClipScorer, options.clip_model, device, options.clip_weights)  # type: ignore[attr-defined]

    def fid(self, device: str = "cpu") -> FrechetDistance:
        return shared(FrechetDistance, device, self.options.fid_weights)  # type: ignore[attr-defined]

    def reference_prompts(self, request: ErasureRequest) -> list[PromptSpec]:
        # FID against the original model's images of the same captions, unless against a
        # folder of real images (``reference``).
        return self.prompts(request) if self.options.reference is None else []  # type: ignore[attr-defined]

    def score(self, images: Sequence[Image.Image], prompts: Sequence[PromptSpec],
              request: ErasureRequest, context: ScoringContext) -> list[MetricValue]:
        fid = self.fid(context.device)
        reference = self.options.reference  # type: ignore[attr-defined]
        if reference is not None:
            distance = fid.fid(images, Path(reference))
        else:
            distance = fid.fid_between(images, context.reference_images(prompts))
        clip = self.clip(context.device).scores(images, [p.text for p in prompts])
        return [MetricValue(metric="FID", value=distance),
                MetricValue(metric="CLIP", value=float(clip.mean()),
                            samples=tuple(map(float, clip)))]

    def scorer_versions(self) -> dict[str, str]:
        reference = self.options.reference or "original model"  # type: ignore[attr-defined]
        return {"fid": f"{self.fid().version()} vs {reference}", "clip": self.clip().version()}

    def weight_files(self) -> list[WeightFile]:
        return [self.fid().weight_file, self.clip().weight_file]
