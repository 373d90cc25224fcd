"""``imagenette``: object erasure on the 10 Imagenette classes, AP/AGE's protocol.

Each request erases five classes and preserves the other five (AP/AGE's four splits by
default; ``mode: single`` erases one class at a time, like UCE's table). Every class is
drawn ``images_per_class`` times from the prompt file ("Image of {Class}", AP's seeds; UCE's
"an image of a {class}" with ``prompts: uce``), torchvision's ResNet-50 classifies the
images, and ESR-k / PSR-k follow (:class:`~erasebench.rates.ErasureSuccess`): ESR-k is the
share of erased-class images whose class is not in the top k, PSR-k the share of
preserved-class images whose class is. The reporter averages the splits (mean ± std).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import pandas as pd
import torch
from PIL import Image
from pydantic import Field, field_validator

from erasebench.figures import Figure, tradeoff_figure
from erasebench.metrics import erasure_metric_infos, erasure_values
from erasebench.plugins import MetricValue, PluginConfig, ScoringContext, Task
from erasebench.registry import register_task
from erasebench.scorers import shared
from erasebench.scorers.imagenet import ImageNetClassifier
from erasebench.scorers.weights import WeightFile
from erasebench.specs import ErasureRequest, GenerationSpec, PromptSpec
from erasebench.tasks.prompt_tables import bundled, read_prompt_table

# The ten classes as torchvision's ResNet-50 names them (the papers match lower-cased).
CLASSES = ("tench", "English springer", "cassette player", "chain saw", "church",
           "French horn", "garbage truck", "gas pump", "golf ball", "parachute")
# AP/AGE's splits v1 and v3; v2 and v4 are their complements.
_V1 = ("cassette player", "church", "garbage truck", "parachute", "French horn")
_V3 = ("cassette player", "chain saw", "church", "gas pump", "tench")


def _complement(split: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(c for c in CLASSES if c not in split)


DEFAULT_SPLITS = (_V1, _complement(_V1), _V3, _complement(_V3))
PROMPT_FILES = {"ap": "imagenette_ap.csv", "uce": "imagenette_uce.csv"}
KS = (1, 5)


def canonical_class(name: str) -> str:
    """The torchvision spelling of an Imagenette class given in any case."""
    for known in CLASSES:
        if known.lower() == name.strip().lower():
            return known
    raise ValueError(f"{name!r} is not an Imagenette class; the classes are {', '.join(CLASSES)}")


class ImagenetteOptions(PluginConfig):
    mode: Literal["splits", "single"] = Field(
        "splits", description="'splits': erase the classes of each split together (AP/AGE); "
        "'single': erase each class alone (UCE's table).")
    splits: tuple[tuple[str, ...], ...] = Field(
        DEFAULT_SPLITS, description="Classes erased per split (mode 'splits'); the other "
        "Imagenette classes are preserved. Default: AP/AGE's v1..v4.")
    prompts: Literal["ap", "uce"] = Field(
        "ap", description="'ap': \"Image of {Class}\" with AP's seeds (default); 'uce': "
        "\"an image of a {class}\" with UCE's seeds.")
    prompt_file: str | None = Field(
        None, description="Your own CSV instead (columns prompt, evaluation_seed and "
        "label_str or class).")
    images_per_class: int = Field(500, ge=1, description="Rows read per class (the files "
                                  "have 500).")
    classifier: Literal["IMAGENET1K_V2", "IMAGENET1K_V1"] = Field(
        "IMAGENET1K_V2", description="torchvision ResNet-50 weights (V2 = DEFAULT, as the "
        "papers).")
    classifier_weights: str | None = Field(
        None, description="Path of the ResNet-50 .pth (default: torch hub's cache).")
    tell_preserved: bool = Field(False, description="Pass the preserved classes to the "
                                 "eraser as the request's preserve set (AP/AGE do not).")

    @field_validator("splits")
    @classmethod
    def _known_classes(cls, splits: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
        normalised = tuple(tuple(canonical_class(name) for name in split) for split in splits)
        if not normalised or any(not split for split in normalised):
            raise ValueError("every split must erase at least one class")
        return normalised


@register_task("imagenette")
class Imagenette(Task):
    """Imagenette object erasure: ESR-1/5 and PSR-1/5 from torchvision's ResNet-50."""

    description = __doc__ or ""
    citation = ("Bui et al., Erasing with Precision: Adaptive Guided Erasure (ICLR 2025); "
                "Bui et al., Adversarial Preservation (NeurIPS 2024)")
    Options = ImagenetteOptions
    metrics = erasure_metric_infos(CLASSES, "class", "ResNet-50", KS)
    contract_options = {"images_per_class": 1, "splits": (_V1,)}
    borrowed_metrics = {"coco_quality": ("FID", "CLIP")}

    # -- what to generate -------------------------------------------------------------
    def generation(self) -> GenerationSpec:
        # AP/AGE's generate_images_ldm.py: DDIM 100 steps, eta 0, guidance 7.5, 512 px.
        return GenerationSpec(scheduler="ddim", steps=100, guidance=7.5)

    def table(self) -> pd.DataFrame:
        """The prompt rows used: ``images_per_class`` per class, with a ``label`` column
        (the class as torchvision spells it)."""
        options = self.options
        path = options.prompt_file or bundled(__file__, PROMPT_FILES[options.prompts])  # type: ignore[attr-defined]
        raw = read_prompt_table(path, ("prompt", "evaluation_seed"))
        label = "label_str" if "label_str" in raw.columns else "class"
        if label not in raw.columns:
            raise ValueError(f"prompt file {path} needs a label_str or class column")
        raw["label"] = [canonical_class(str(name)) for name in raw[label]]
        return raw.groupby("label", sort=False).head(options.images_per_class)  # type: ignore[attr-defined]

    def requests(self) -> list[ErasureRequest]:
        options = self.options
        if options.mode == "single":  # type: ignore[attr-defined]
            erased_sets = [(name,) for name in CLASSES]
            labels = list(CLASSES)
        else:
            erased_sets = list(options.splits)  # type: ignore[attr-defined]
            labels = [f"split {n}" for n in range(1, len(erased_sets) + 1)]
        return [ErasureRequest(
            concepts=erased, label=label,
            preserve=_complement(erased) if options.tell_preserved else ())  # type: ignore[attr-defined]
            for erased, label in zip(erased_sets, labels, strict=True)]

    def prompts(self, request: ErasureRequest) -> list[PromptSpec]:
        return [PromptSpec(text=row.prompt, seed=int(row.evaluation_seed), label=row.label,
                           group="erase" if row.label in request.concepts else "preserve")
                for row in self.table().itertuples()]

    # -- how to score -----------------------------------------------------------------
    def classifier(self, device: str = "cpu") -> ImageNetClassifier:
        options = self.options
        return shared(ImageNetClassifier, options.classifier, device,  # type: ignore[attr-defined]
                      options.classifier_weights)  # type: ignore[attr-defined]

    def score(self, images: Sequence[Image.Image], prompts: Sequence[PromptSpec],
              request: ErasureRequest, context: ScoringContext) -> list[MetricValue]:
        classifier = self.classifier(context.device)
        logits = classifier.logits(images)
        labels = torch.tensor([classifier.class_index(p.label) for p in prompts])
        erased = [classifier.class_index(name) for name in request.concepts]
        preserved = [classifier.class_index(name) for name in _complement(request.concepts)]
        names = {classifier.class_index(name): name for name in CLASSES}
        return erasure_values(logits, labels, erased, preserved, names, KS)

    def scorer_versions(self) -> dict[str, str]:
        return {"resnet50": self.classifier().version()}

    def weight_files(self) -> list[WeightFile]:
        return [self.classifier().weight_file]

    @classmethod
    def figures(cls, rows: pd.DataFrame, stem: str) -> list[Figure]:
        return [tradeoff_figure(rows, stem, title="imagenette: erased vs preserved classes")]
