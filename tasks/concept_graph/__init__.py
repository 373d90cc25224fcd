"""``concept_graph``: how erasing one concept moves every other (locality).

Two graphs (``graph``):

- ``ap_sensitivity`` (default; AP's "sensitivity spectrum"): 20 concepts (women, men, person,
  hat, apple, ..., naked, garbage truck, "a photo", " ", road, car, bus), each drawn from its
  bare name with AP's 200 seeds; G(c) = mean CLIP score (ViT-L/14, OpenAI, 100·max(cos, 0))
  of c's images against c. Erased by default: "nudity" and "garbage truck", as in AP.
- ``netfive`` (AGE's NetFive graph): 25 ImageNet classes in five groups (dogs, vehicles,
  instruments, buildings, devices), "a photo of {class}" with AGE's 500 seeds; G(c) = % of
  c's images that ResNet-50 classifies as c (top-1). AGE's analysis notebook is not
  public: this edge weight is our reading of it. Every node is erased in turn by default.

Per request (erased concept e), against the original model's images of the same prompts and
seeds: Δ_e(c) = G_e(c) − G_0(c) for every c (``delta/<c>``), ``erased_drop`` = −Δ_e(e)
when e is in the graph, ``collateral`` = mean |Δ_e(c)| over c ≠ e, ``locality`` and
``abnormal`` (:mod:`erasebench.tasks.graph_metrics`; text similarity from the base model's
text encoder). The leaderboard shows each eraser's Δ matrix and its asymmetry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from PIL import Image
from pydantic import Field

from erasebench.figures import Figure
from erasebench.plugins import MetricInfo, MetricValue, PluginConfig, ScoringContext, Task
from erasebench.registry import register_task
from erasebench.scorers import shared
from erasebench.scorers.clip import ClipScorer
from erasebench.scorers.imagenet import ImageNetClassifier
from erasebench.scorers.weights import WeightFile
from erasebench.specs import ErasureRequest, GenerationSpec, PromptSpec
from erasebench.tasks.graph_metrics import (
    abnormal,
    delta_heatmaps,
    locality,
    matrices_markdown,
    text_similarity,
)
from erasebench.tasks.prompt_tables import bundled, read_prompt_table

AP_FILES = ("similarity-nudity_200.csv", "similarity-nudity-2_200.csv",
            "similarity-nudity-3_200.csv", "similarity-nudity-4_200.csv")
NETFIVE_FILE = "netfive_500.csv"
# AGE's spellings that are not torchvision's category names (one is a typo in AGE's file).
NETFIVE_IMAGENET = {"Clumber Spaniel": "clumber", "Basson": "bassoon", "Saxophone": "sax"}
GRAPH_TARGETS = {"ap_sensitivity": ("nudity", "garbage truck"), "netfive": ()}


def _read_graph(graph: str) -> pd.DataFrame:
    files = AP_FILES if graph == "ap_sensitivity" else (NETFIVE_FILE,)
    tables = [read_prompt_table(bundled(__file__, name), ("prompt", "evaluation_seed",
                                                          "label_str")) for name in files]
    return pd.concat(tables, ignore_index=True)


def concepts_of(graph: str) -> list[str]:
    return list(dict.fromkeys(_read_graph(graph)["label_str"]))


class ConceptGraphOptions(PluginConfig):
    graph: Literal["ap_sensitivity", "netfive"] = Field(
        "ap_sensitivity", description="'ap_sensitivity': AP's 20 concepts, CLIP ViT-L/14; "
        "'netfive': AGE's 25 ImageNet classes, ResNet-50 top-1.")
    erase: tuple[str, ...] | None = Field(
        None, description="Concepts erased, one request each (default: 'nudity' and 'garbage "
        "truck' for ap_sensitivity, every node for netfive).")
    images_per_concept: int | None = Field(
        None, ge=1, description="Seeds per concept (default: all: 200 / 500).")
    clip_model: str = Field("ViT-L-14-quickgelu", description="open_clip architecture for "
                            "ap_sensitivity (OpenAI weights).")
    clip_weights: str | None = Field(None, description="Path of the CLIP safetensors file.")
    classifier_weights: str | None = Field(None, description="Path of ResNet-50 "
                                           "IMAGENET1K_V2 .pth for netfive.")
    abnormal_z: float = Field(2.0, gt=0, description="Residual, in standard deviations, "
                              "above which a concept's drop counts as abnormal.")


@register_task("concept_graph")
class ConceptGraph(Task):
    """Concept graph: Δ of every concept after erasing each target; locality, asymmetry."""

    description = __doc__ or ""
    citation = ("Bui et al., AP (NeurIPS 2024) sensitivity spectrum; AGE (ICLR 2025) "
                "NetFive graph")
    Options = ConceptGraphOptions
    metrics = {
        "erased_drop": MetricInfo(True, "fall of the erased concept's G (when in the graph)"),
        "collateral": MetricInfo(False, "mean |Δ| of the other concepts"),
        "locality": MetricInfo(None, "Spearman(text similarity to the erased concept, drop)"),
        "abnormal": MetricInfo(False, "concepts dropping far more than their similarity "
                               "predicts"),
        **{f"delta/{c}": MetricInfo(None, f"change of {c!r}'s G", headline=False)
           for graph in GRAPH_TARGETS for c in concepts_of(graph)},
    }
    contract_options = {"images_per_concept": 1, "erase": ("garbage truck",),
                        "clip_model": "erasebench-tiny-clip"}

    def generation(self) -> GenerationSpec:
        # AP's similarity figures and AGE's NetFive images: DDIM 100 steps, guidance 7.5.
        return GenerationSpec(scheduler="ddim", steps=100, guidance=7.5)

    def concepts(self) -> list[str]:
        return concepts_of(self.options.graph)  # type: ignore[attr-defined]

    def requests(self) -> list[ErasureRequest]:
        options = self.options
        targets = options.erase or GRAPH_TARGETS[options.graph] or tuple(self.concepts())  # type: ignore[attr-defined]
        return [ErasureRequest(concepts=(target,), label=target) for target in targets]

    def prompts(self, request: ErasureRequest) -> list[PromptSpec]:
        table = _read_graph(self.options.graph)  # type: ignore[attr-defined]
        if self.options.images_per_concept is not None:  # type: ignore[attr-defined]
            table = table.groupby("label_str", sort=False).head(
                self.options.images_per_concept)  # type: ignore[attr-defined]
        return [PromptSpec(text=str(row.prompt), seed=int(row.evaluation_seed),
                           label=str(row.label_str), group="graph")
                for row in table.itertuples()]

    # -- scorers ----------------------------------------------------------------------
    def clip(self, device: str = "cpu") -> ClipScorer:
        options = self.options
        return shared(ClipScorer, options.clip_model, device, options.clip_weights)  # type: ignore[attr-defined]

    def classifier(self, device: str = "cpu") -> ImageNetClassifier:
        return shared(ImageNetClassifier, "IMAGENET1K_V2", device,
                      self.options.classifier_weights)  # type: ignore[attr-defined]

    def strengths(self, images: Sequence[Image.Image], prompts: Sequence[PromptSpec],
                  device: str) -> pd.Series:
        """G(c) of every concept in the images: mean CLIP score, or % classified as c."""
        labels = [p.label for p in prompts]
        if self.options.graph == "ap_sensitivity":  # type: ignore[attr-defined]
            values = self.clip(device).scores(images, [p.text for p in prompts]).numpy()
        else:
            classifier = self.classifier(device)
            top1 = classifier.logits(images).argmax(1).numpy()
            truth = [classifier.class_index(NETFIVE_IMAGENET.get(label, label))
                     for label in labels]
            values = 100.0 * (top1 == np.array(truth))
        return pd.Series(values).groupby(pd.Series(labels)).mean()

    def reference_prompts(self, request: ErasureRequest) -> list[PromptSpec]:
        return self.prompts(request)  # each concept's strength before the erasure

    def score(self, images: Sequence[Image.Image], prompts: Sequence[PromptSpec],
              request: ErasureRequest, context: ScoringContext) -> list[MetricValue]:
        order = [c for c in self.concepts() if c in {p.label for p in prompts}]
        edited = self.strengths(images, prompts, context.device)[order]
        base = self.strengths(context.reference_images(prompts), prompts, context.device)[order]
        delta = (edited - base).to_numpy()
        target = request.concepts[0]
        values = [MetricValue(metric=f"delta/{c}", value=float(d))
                  for c, d in zip(order, delta, strict=True)]
        others = np.array([c.lower() != target.lower() for c in order])
        if not others.all():
            values.append(MetricValue(metric="erased_drop", value=float(-delta[~others][0])))
        values.append(MetricValue(metric="collateral", value=float(np.abs(delta[others]).mean())))
        if context.encode_text is not None:
            similarity = text_similarity(context.encode_text, target, order)[others]
            drop = -delta[others]
            rho = locality(similarity, drop)
            if rho is not None:
                values.append(MetricValue(metric="locality", value=rho))
            flagged = abnormal(similarity, drop, self.options.abnormal_z)  # type: ignore[attr-defined]
            values.append(MetricValue(metric="abnormal", value=float(flagged.sum())))
        return values

    def scorer_versions(self) -> dict[str, str]:
        if self.options.graph == "ap_sensitivity":  # type: ignore[attr-defined]
            return {"clip": self.clip().version()}
        return {"resnet50": self.classifier().version()}

    def weight_files(self) -> list[WeightFile]:
        if self.options.graph == "ap_sensitivity":  # type: ignore[attr-defined]
            return [self.clip().weight_file]
        return [self.classifier().weight_file]

    @classmethod
    def report(cls, rows: pd.DataFrame) -> str:
        return matrices_markdown(rows, _measured(rows), "CLIP score or top-1 points")

    @classmethod
    def figures(cls, rows: pd.DataFrame, stem: str) -> list[Figure]:
        return delta_heatmaps(rows, _measured(rows), stem, "Δ matrices: how erasing the "
                              "concept of a row moves the concept of a column")


def _measured(rows: pd.DataFrame) -> list[str]:
    """The concepts the rows measured (their ``delta/<c>`` metrics), in order."""
    return list(dict.fromkeys(rows.loc[rows["metric"].str.startswith("delta/"), "metric"]
                              .str.slice(len("delta/"))))
