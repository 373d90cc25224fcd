"""``mace``: Mass Concept Erasure (Lu et al., CVPR 2024), written from the paper.

Three stages, all on the cross-attention key and value projections:

1. **Closed-form refinement.** The words that come *after* a concept in a prompt absorb
   its meaning (the text encoder is causal: the EOS and padding embeddings have seen
   the concept). For every template, the embedding rows after the concept token are
   mapped to the rows at the same offsets of the prompt naming the mapping concept
   (the request's anchor, else ``mapping``), under the original W; a ridge of weight
   ``refine_lambda`` keeps W close and ``preserve_weight`` keeps the preserved
   concepts' rows (the paper's COCO prior, here the request's preserve set and '').
   The solution is UCE's closed form (:func:`erasebench.baselines.uce.closed_form_edit`).
2. **One rank-1 LoRA per concept** on every ``attn2.to_k``/``to_v``, trained so that
   the concept's tokens receive no cross-attention inside the object's mask, on
   ``images_per_concept`` images the model draws of the concept, noised to timesteps
   drawn with weight f(t) = σ(0.05(t − 200)) − σ(0.05(t − 400)).
3. **Closed-form fusion** of the LoRAs: one W* for all concepts, minimising
   Σ_i ‖W* C_i − (W₁ + ΔW_i) C_i‖² + ``preserve_weight`` ‖W* C_p − W₁ C_p‖²
   + ``fuse_lambda`` ‖W* − W₁‖², where C_i are concept i's prompt rows.

Deviation, stated: the paper's masks come from Grounded-SAM, which is not available
offline. ``mask``: ``"attention"`` (default) weights each pixel by the concept tokens'
own cross-attention at the start of training (normalised to [0, 1] per image) — where
the model itself puts the concept; ``"whole"`` uses the whole image.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from erasebench.baselines.common import (
    concepts_and_targets,
    cross_attention_modules,
    cross_attention_parameters,
    drawn_latents,
    seeded,
    token_count,
    train_loop,
)
from erasebench.baselines.uce import closed_form_edit
from erasebench.edits import EditedModel
from erasebench.models import DiffusionModel
from erasebench.plugins import Eraser, PluginConfig
from erasebench.registry import register_eraser
from erasebench.specs import ErasureRequest, PromptSpec
from erasebench.training_precision import autocast


class MACEConfig(PluginConfig):
    mapping: str = Field("", description="Mapping concept of concepts without an anchor.")
    templates: tuple[str, ...] = Field(
        ("a photo of a {}", "an image of a {}", "a picture of a {}"), min_length=1)
    refine_lambda: float = Field(1e3, gt=0, description="Stage 1 ridge toward W.")
    preserve_weight: float = Field(0.0, ge=0, description="Weight of preserved rows "
                                   "(paper: 0 for objects, 1e-4 art, 7e-7 nudity).")
    lora_steps: int = Field(50, ge=1, description="Stage 2 steps per concept.")
    lora_lr: float = Field(1e-5, gt=0)
    lora_rank: int = Field(1, ge=1)
    images_per_concept: int = Field(8, ge=1)
    image_steps: int = Field(30, ge=1, description="Sampling steps of the training images.")
    image_guidance: float = Field(7.5, ge=0)
    mask: Literal["attention", "whole"] = "attention"
    fuse_lambda: float = Field(1e-2, gt=0, description="Stage 3 ridge toward W₁.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    seed: int = Field(0, ge=0)


def importance_timesteps(count: int, generator: torch.Generator,
                         total: int = 1000) -> torch.Tensor:
    """Timesteps drawn with weight σ(0.05(t − 200)) − σ(0.05(t − 400)) (MACE's f)."""
    t = torch.arange(total, dtype=torch.float64)
    weight = torch.sigmoid(0.05 * (t - 200)) - torch.sigmoid(0.05 * (t - 400))
    return torch.multinomial(weight / weight.sum(), count, replacement=True,
                             generator=generator)


class LoRA(nn.Module):
    """ΔW = B A of rank r for one Linear; B starts at zero, so training starts at W."""

    def __init__(self, linear: nn.Linear, rank: int, generator: torch.Generator) -> None:
        super().__init__()
        out_features, in_features = linear.weight.shape
        a = torch.randn(rank, in_features, generator=generator) / in_features ** 0.5
        self.down = nn.Parameter(a.to(linear.weight.device))
        self.up = nn.Parameter(torch.zeros(out_features, rank, device=linear.weight.device))

    def delta(self) -> torch.Tensor:
        return self.up @ self.down


@contextmanager
def lora_attached(modules: list[tuple[str, nn.Module]], rank: int, generator: torch.Generator
                  ) -> Iterator[dict[str, LoRA]]:
    """Rank-``rank`` LoRAs on every to_k/to_v of the given attn2 modules, via forward hooks."""
    loras, handles = {}, []
    for prefix, attention in modules:
        for projection in ("to_k", "to_v"):
            linear = getattr(attention, projection)
            lora = LoRA(linear, rank, generator)
            loras[f"{prefix}.{projection}.weight"] = lora
            handles.append(linear.register_forward_hook(
                lambda module, inputs, output, lora=lora: output + inputs[0] @ lora.delta().T))
    try:
        yield loras
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def attention_inputs(modules: list[tuple[str, nn.Module]]) -> Iterator[list[tuple]]:
    """Records (module, hidden_states, encoder_hidden_states) of every attn2 call."""
    calls: list[tuple] = []

    def record(module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        context = kwargs.get("encoder_hidden_states", args[1] if len(args) > 1 else None)
        calls.append((module, hidden, context))

    handles = [module.register_forward_pre_hook(record, with_kwargs=True)
               for _, module in modules]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def token_attention(module: nn.Module, hidden: torch.Tensor, context: torch.Tensor,
                    tokens: list[int]) -> torch.Tensor:
    """Cross-attention probabilities of ``tokens``: (batch, heads, pixels, len(tokens))."""
    query = module.to_q(hidden)
    key = module.to_k(context)
    heads = module.heads
    batch, pixels, _ = query.shape
    query = query.view(batch, pixels, heads, -1).transpose(1, 2)
    key = key.view(batch, key.shape[1], heads, -1).transpose(1, 2)
    scores = (query @ key.transpose(-1, -2)) * module.scale
    return scores.softmax(dim=-1)[..., tokens]


@register_eraser("mace")
class MACE(Eraser):
    """MACE: closed-form refinement, per-concept rank-1 LoRAs on attention, closed-form fusion."""

    Config = MACEConfig
    presets = {
        # lr 1e-2 left single shapes mostly drawn (drops 0-45 points), 5e-2 for 80 steps
        # wiped every shape (collateral 82-93); 2e-2: split 1 ESR-1 99, PSR-1 19.
        "shapes": {"templates": ("a {}",), "lora_steps": 40, "lora_lr": 2e-2,
                   "images_per_concept": 16, "image_steps": 6, "image_guidance": 4.0},
        "tiny": {"lora_steps": 2, "images_per_concept": 2, "image_steps": 2,
                 "lora_lr": 1e-2},
    }

    def editable_parameters(self, model: DiffusionModel) -> list[str]:
        return [n for n in cross_attention_parameters(model, ("to_k", "to_v"))
                if n.endswith(".weight")]

    # -- the rows that stand for a prompt -------------------------------------------------
    def _rows(self, model: DiffusionModel, texts: list[str], words: list[str],
              after_word: bool) -> torch.Tensor:
        """Embedding rows of each text from its concept word (or just after it) to the end."""
        embeddings = model.encode_text(texts).float()
        rows = []
        for index, (text, word) in enumerate(zip(texts, words, strict=True)):
            start = self._word_end(model, text, word) + (1 if after_word else 0)
            rows.append(embeddings[index, max(start, 0):])
        return torch.cat(rows)

    @staticmethod
    def _word_end(model: DiffusionModel, text: str, word: str) -> int:
        """Index of the last token of ``word`` in ``text`` (the text's last word if absent)."""
        if word and word in text:
            return token_count(model, text[: text.rindex(word) + len(word)]) - 2
        return token_count(model, text) - 2

    def erase(self, model: DiffusionModel, request: ErasureRequest) -> EditedModel:
        config: MACEConfig = self.config  # type: ignore[assignment]
        _, mappings = concepts_and_targets(self.name, request, config.mapping)
        names = self.editable_parameters(model)
        original = {name: model.parameter(name).detach().clone() for name in names}
        # The training images are the original model's pictures of each concept.
        drawn = [self._concept_latents(model, concept, index)
                 for index, concept in enumerate(request.concepts)]
        preserve_rows = self._preserve_rows(model, request)  # the text encoder never changes
        refined = self._refine(model, request, mappings, original, preserve_rows)
        with torch.no_grad():
            for name in names:
                model.parameter(name).copy_(refined[name])
        try:
            deltas = [self._train_lora(model, concept, index, *drawn[index])
                      for index, concept in enumerate(request.concepts)]
            fused = self._fuse(model, request, refined, deltas, preserve_rows)
        finally:
            with torch.no_grad():
                for name in names:
                    model.parameter(name).copy_(original[name])
        weights = {name: fused[name].to(original[name].dtype).cpu() for name in names
                   if not torch.equal(fused[name].to(original[name].dtype), original[name])}
        return EditedModel(self.name, config.model_dump(mode="json"), request,
                           model.fingerprint, weights)

    def _preserve_rows(self, model: DiffusionModel, request: ErasureRequest) -> torch.Tensor:
        config: MACEConfig = self.config  # type: ignore[assignment]
        words = [p for p in request.preserve if p not in request.concepts] + [""]
        texts = [template.format(word) if word else "" for word in words
                 for template in config.templates]
        return self._rows(model, texts, [w for w in words for _ in config.templates], False)

    def _refine(self, model: DiffusionModel, request: ErasureRequest, mappings: list[str],
                original: dict[str, torch.Tensor], preserve_rows: torch.Tensor
                ) -> dict[str, torch.Tensor]:
        """Stage 1: rows after each concept -> the mapping prompt's rows at the same offsets."""
        config: MACEConfig = self.config  # type: ignore[assignment]
        sources, targets = [], []
        for concept, mapping in zip(request.concepts, mappings, strict=True):
            for template in config.templates:
                source = self._rows(model, [template.format(concept)], [concept], True)
                target = self._rows(model, [template.format(mapping)], [mapping], True)
                count = min(len(source), len(target))
                sources.append(source[:count])
                targets.append(target[:count])
        erase_rows, guide_rows = torch.cat(sources), torch.cat(targets)
        refined = {}
        for name, weight in original.items():
            device = weight.device
            refined[name] = closed_form_edit(
                weight.float(), erase_rows.to(device), guide_rows.to(device) @ weight.float().T,
                preserve_rows.to(device), config.refine_lambda, 1.0,
                config.preserve_weight).to(weight.dtype)
        return refined

    def _concept_latents(self, model: DiffusionModel, concept: str, index: int
                         ) -> tuple[torch.Tensor, list[str]]:
        config: MACEConfig = self.config  # type: ignore[assignment]
        texts = [config.templates[i % len(config.templates)].format(concept)
                 for i in range(config.images_per_concept)]
        # Seeds follow the concept, not its place in the request: a concept's pictures are
        # the same in every request that erases it (and drawn once per process).
        offset = zlib.crc32(concept.encode()) % 1_000_000 * 100
        prompts = [PromptSpec(text=text, seed=config.seed + offset + i)
                   for i, text in enumerate(texts)]
        return drawn_latents(model, prompts, config.image_steps, config.image_guidance), texts

    def _train_lora(self, model: DiffusionModel, concept: str, index: int,
                    latents: torch.Tensor, texts: list[str]) -> dict[str, torch.Tensor]:
        """Stage 2: a LoRA that takes the concept's attention off its masked region."""
        config: MACEConfig = self.config  # type: ignore[assignment]
        from diffusers import DDPMScheduler

        scheduler = DDPMScheduler.from_config(model.scheduler_config)
        generator = seeded(config.seed + index)
        device = model.device
        modules = cross_attention_modules(model)
        by_module = {id(module): prefix for prefix, module in modules}
        contexts = model.encode_text(texts).to(device)
        tokens = []
        for text in texts:
            end = self._word_end(model, text, concept)
            start = token_count(model, text[: text.rindex(concept)]) - 1 if concept in text else end
            tokens.append(list(range(max(start, 1), end + 1)))
        masks: dict[tuple[int, str], torch.Tensor] = {}

        def loss_of(step: int) -> torch.Tensor:
            pick = int(torch.randint(len(latents), (1,), generator=generator))
            noise = torch.randn(latents[pick:pick + 1].shape, generator=generator).to(device)
            t = importance_timesteps(1, generator).to(device)
            noisy = scheduler.add_noise(latents[pick:pick + 1], noise, t)
            with attention_inputs(modules) as calls, autocast(device, config.precision):
                model.unet(noisy, t, encoder_hidden_states=contexts[pick:pick + 1])
            total = torch.zeros((), device=device)
            for module, hidden, context in calls:
                # fp32 outside autocast: the recorded inputs may be bf16 on a GPU
                probs = token_attention(module, hidden.float(), context.float(), tokens[pick])
                mask = self._mask(masks, pick, by_module[id(module)], probs)
                total = total + (probs * mask).pow(2).sum() / probs.shape[2]
            return total

        with lora_attached(modules, config.lora_rank, generator) as loras:
            parameters = [p for lora in loras.values() for p in lora.parameters()]
            train_loop(config.lora_steps, loss_of, parameters, config.lora_lr,
                       f"mace LoRA for {concept!r}")
            return {name: lora.delta().detach() for name, lora in loras.items()}

    def _mask(self, masks: dict, pick: int, prefix: str, probs: torch.Tensor) -> torch.Tensor:
        """Where the concept is, per pixel: fixed from the first attention seen (or all ones)."""
        if self.config.mask == "whole":  # type: ignore[attr-defined]
            return torch.ones_like(probs[..., :1])
        key = (pick, prefix)
        if key not in masks:
            heat = probs.detach().mean(dim=(1, 3), keepdim=True)  # (batch, 1, pixels, 1)
            low, high = heat.amin(dim=2, keepdim=True), heat.amax(dim=2, keepdim=True)
            masks[key] = (heat - low) / (high - low).clamp_min(1e-8)
        return masks[key]

    def _fuse(self, model: DiffusionModel, request: ErasureRequest,
              refined: dict[str, torch.Tensor], deltas: list[dict[str, torch.Tensor]],
              preserve_rows: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Stage 3: one W* that answers every concept's rows as its own LoRA does."""
        config: MACEConfig = self.config  # type: ignore[assignment]
        concept_rows = [self._rows(model, [t.format(c) for t in config.templates],
                                   [c] * len(config.templates), False)
                        for c in request.concepts]
        if preserve_rows is None:
            preserve_rows = self._preserve_rows(model, request)
        fused = {}
        for name, weight in refined.items():
            device = weight.device
            rows = torch.cat([r.to(device) for r in concept_rows])
            targets = torch.cat([r.to(device) @ (weight.float() + d[name].float()).T
                                 for r, d in zip(concept_rows, deltas, strict=True)])
            fused[name] = closed_form_edit(weight.float(), rows, targets,
                                           preserve_rows.to(device), config.fuse_lambda, 1.0,
                                           config.preserve_weight)
        return fused
