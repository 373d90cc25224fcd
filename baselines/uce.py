"""``uce``: Unified Concept Editing (Gandikota et al., WACV 2024), a closed-form edit of
the cross-attention key and value projections.

For every ``attn2.to_k`` / ``attn2.to_v`` matrix W, with text-embedding rows c_e of the
erased concepts, their targets v*_e = W c_g (c_g: the aligned rows of the guide concept,
computed with the original W) and rows c_p of the preserved concepts, the edit minimises

    λ‖W' − W‖² + s_e Σ_e ‖W' c_e − v*_e‖² + s_p Σ_p ‖W' c_p − W c_p‖²,

whose solution is W' = (λW + s_e Σ v*_e c_eᵀ + s_p Σ W c_p c_pᵀ)(λI + s_e Σ c_e c_eᵀ
+ s_p Σ c_p c_pᵀ)⁻¹ (solved in float64, one linear system per matrix).

Which text-embedding rows stand for a concept differs between the authors' two codes
(``token_rows``): ``aligned`` (the paper's code) takes every position from the last word
token to the end of the 77 (EOS and padding carry the prompt's meaning in CLIP), aligned
position by position with the guide's; ``last`` (their later diffusers code) takes the
last word token only. The guide is each request anchor, else ``guide`` ('' for objects,
'art' for styles). The paper's code always keeps '' in the preserve set and weighs the
preserved concepts by max(0.1, 1/#preserved) (``preserve_scale: null``); the later code
uses 1.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from erasebench.baselines.common import (
    concepts_and_targets,
    cross_attention_parameters,
    token_count,
)
from erasebench.edits import EditedModel
from erasebench.models import DiffusionModel
from erasebench.plugins import Eraser, PluginConfig
from erasebench.registry import register_eraser
from erasebench.specs import ErasureRequest


class UCEConfig(PluginConfig):
    lamb: float = Field(0.5, gt=0, description="λ: weight of staying close to W.")
    erase_scale: float = Field(1.0, gt=0, description="s_e: weight of the erase rows.")
    preserve_scale: float | None = Field(None, ge=0, description="s_p; null: max(0.1, "
                                         "1/#preserved) as the paper's code.")
    guide: str = Field("", description="Target of every erased concept without an anchor.")
    token_rows: Literal["aligned", "last"] = Field("aligned", description="Which embedding "
                                                   "rows stand for a concept (see above).")
    keep_empty_prompt: bool = Field(True, description="Add '' to the preserve set (paper code).")
    projections: tuple[Literal["to_k", "to_v"], ...] = ("to_k", "to_v")
    templates: tuple[str, ...] = Field(("{}",), description="Each concept (and its guide) is "
                                       "edited in every template, e.g. the later code's "
                                       "--expand_prompts: 'image of {}', 'photo of {}', ...")


def closed_form_edit(weight: torch.Tensor, erase_rows: torch.Tensor, target_rows: torch.Tensor,
                     preserve_rows: torch.Tensor, lamb: float, erase_scale: float,
                     preserve_scale: float) -> torch.Tensor:
    """W' minimising the UCE objective. ``weight`` (out, in); rows (n, in); targets (n, out)."""
    w = weight.double()
    c_e, v_e, c_p = erase_rows.double(), target_rows.double(), preserve_rows.double()
    eye = torch.eye(w.shape[1], dtype=torch.float64, device=w.device)
    left = lamb * w + erase_scale * v_e.T @ c_e + preserve_scale * (w @ c_p.T) @ c_p
    right = lamb * eye + erase_scale * c_e.T @ c_e + preserve_scale * c_p.T @ c_p
    # W' right = left  <=>  right^T W'^T = left^T (right is symmetric)
    return torch.linalg.solve(right, left.T).T.to(weight.dtype)


def concept_rows(model: DiffusionModel, texts: list[str], guides: list[str], mode: str
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Embedding rows of each text and the aligned rows of its guide: (n, dim) each."""
    embeddings = model.encode_text(texts).float()
    guide_embeddings = model.encode_text(guides).float()
    length = embeddings.shape[1]
    rows, targets = [], []
    for index, (text, guide) in enumerate(zip(texts, guides, strict=True)):
        # The last word token sits just before EOS; '' has none, so its BOS stands in.
        last, guide_last = max(token_count(model, text) - 2, 0), max(
            token_count(model, guide) - 2, 0)
        count = 1 if mode == "last" else length - max(last, guide_last)
        rows.append(embeddings[index, last:last + count])
        targets.append(guide_embeddings[index, guide_last:guide_last + count])
    return torch.cat(rows), torch.cat(targets)


@register_eraser("uce")
class UCE(Eraser):
    """Unified Concept Editing: closed-form edit of cross-attention K/V (erase, guide, preserve)."""

    Config = UCEConfig
    presets = {"shapes": {}, "tiny": {}}

    def editable_parameters(self, model: DiffusionModel) -> list[str]:
        return [name for name in cross_attention_parameters(model, self.config.projections)  # type: ignore[attr-defined]
                if name.endswith(".weight")]

    def erase(self, model: DiffusionModel, request: ErasureRequest) -> EditedModel:
        config: UCEConfig = self.config  # type: ignore[assignment]
        concepts, guides = concepts_and_targets(self.name, request, config.guide)
        pairs = [(template.format(concept), template.format(guide) if guide else guide)
                 for template in config.templates
                 for concept, guide in zip(concepts, guides, strict=True)]
        erase_rows, guide_rows = concept_rows(model, [p[0] for p in pairs],
                                              [p[1] for p in pairs], config.token_rows)
        preserved = [p for p in request.preserve if p not in request.concepts]
        if config.keep_empty_prompt and "" not in preserved:
            preserved.append("")
        preserve_rows = (concept_rows(model, preserved, preserved, config.token_rows)[0]
                         if preserved else erase_rows[:0])
        preserve_scale = (config.preserve_scale if config.preserve_scale is not None
                          else max(0.1, 1 / max(len(preserved), 1)))
        weights = {}
        with torch.no_grad():
            for name in self.editable_parameters(model):
                weight = model.parameter(name).detach()
                device = weight.device
                targets = guide_rows.to(device) @ weight.float().T
                weights[name] = closed_form_edit(
                    weight.float(), erase_rows.to(device), targets, preserve_rows.to(device),
                    config.lamb, config.erase_scale, preserve_scale).to(weight.dtype).cpu()
        return EditedModel(self.name, config.model_dump(mode="json"), request,
                           model.fingerprint, weights)
