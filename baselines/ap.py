"""``ap``: Erasing with Adversarial Preservation (Bui et al., NeurIPS 2024).

ESD's erasure, measured in x̂₀ space, plus the preservation of the concept that the
erasure damages most, found during training:

    L(θ) = ‖x̂₀(ε_θ(z, c_e)) − [x̂₀(ε*(z, ∅)) − η (x̂₀(ε*(z, c_e)) − x̂₀(ε*(z, ∅)))]‖²
           + λ ‖x̂₀(ε_θ(z_a, c_a)) − x̂₀(ε*(z_a, c_a))‖²,

x̂₀(ε) = (z − √(1−ᾱ) ε)/√ᾱ, z (z_a) drawn as in ESD with prompt c_e (c_a). The adversarial
concept c_a = w · M is a Gumbel-softmax selection w over M, the candidate concepts of
:mod:`erasebench.baselines.adversary` (nearest vocabulary words, K-means). Before every
model step the search takes ``adversary_steps`` ascent steps of π on the preservation term
(the paper interleaves 1000 of each). ``search="pgd"`` searches a continuous embedding
instead. The search history (the concepts drawn and the likeliest ones as training goes)
is kept in the edit's notes: ``erasebench search-history EDIT`` shows it.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field

from erasebench.baselines.adversary import (
    ConceptSearch,
    kmeans_representatives,
    nearest_concepts,
    x0_from_noise,
)
from erasebench.baselines.common import (
    TrainingState,
    concepts_and_targets,
    cross_attention_parameters,
    editing,
    non_cross_attention_parameters,
    train_loop,
)
from erasebench.baselines.esd import ESD, ESDConfig
from erasebench.baselines.esd import SHAPES_PRESET as ESD_SHAPES
from erasebench.baselines.esd import TINY_PRESET as ESD_TINY
from erasebench.baselines.vocabulary import load_vocabulary
from erasebench.edits import EditedModel
from erasebench.models import DiffusionModel
from erasebench.registry import register_eraser
from erasebench.specs import ErasureRequest
from erasebench.training_precision import autocast, frozen_weights_cast

_ENCODE_BATCH = 256  # vocabulary words per text-encoder call


class APConfig(ESDConfig):
    parameters: Literal["cross_attention", "non_cross_attention"] = Field(
        "cross_attention", description="Trained weights: ESD-x's set (objects, art) or "
        "ESD-u's (the papers' nudity runs).")
    vocabulary: str = Field("english_3000", description="Concepts searched: english_3000, "
                            "imagenet, clip_tokens, shapes, or a .csv/.txt file.")
    nearest: int = Field(1000, ge=1, description="Vocabulary concepts nearest the erased "
                         "one that the search considers (k).")
    centres: int = Field(100, ge=1, description="K-means clusters among them (candidates).")
    search: Literal["gumbel", "pgd"] = "gumbel"
    adversary_lr: float = Field(1e-2, gt=0, description="Adam rate of π (gumbel).")
    adversary_steps: int = Field(1, ge=0, description="alternate: search steps before each "
                                 "model step.")
    schedule: Literal["alternate", "simultaneous"] = Field(
        "alternate", description="alternate: the papers' interleaved search and model "
        "steps, each with its own forward pass; simultaneous: one forward/backward pass "
        "gives both steps (half the cost).")
    temperature: float = Field(2.0, gt=0, description="Gumbel-softmax τ.")
    hard: bool = Field(True, description="Straight-through one-hot draws (else soft).")
    top_k: int = Field(1, ge=1, description="Concepts mixed per hard draw.")
    pgd_radius: float = Field(0.1, gt=0, description="pgd: ‖δ‖∞ bound, in units of the "
                              "embedding's std.")
    preserve_weight: float = Field(1.0, ge=0, description="λ.")
    loss_space: Literal["x0", "noise"] = Field(
        "x0", description="x0: the papers' x̂₀-space losses; noise: plain ε-space (ESD's).")
    records: int = Field(20, ge=1, description="Search-history snapshots kept.")


# Miniature world: ESD's scaled settings, the world's own words as vocabulary (EN3K is
# mostly words the 48-wide text encoder never saw), every one a candidate.
# The search gets as far as the paper's (1000 steps at 1e-2) in the preset's 80 steps, and
# takes its steps from the model's backward pass: on all four splits the papers'
# alternation gave ESR-1 89.2 ± 5.6 / PSR-1 49.2 ± 11.3, simultaneous steps 88.0 ± 5.0 /
# 54.3 ± 13.3 (30 images per shape), in two thirds of the time.
SHAPES_PRESET: dict[str, Any] = {**ESD_SHAPES, "vocabulary": "shapes", "nearest": 20,
                                 "centres": 8, "adversary_lr": 0.1,
                                 "schedule": "simultaneous"}
TINY_PRESET: dict[str, Any] = {**ESD_TINY, "vocabulary": "shapes", "nearest": 6,
                               "centres": 3}


@register_eraser("ap")
class AdversarialPreservation(ESD):
    """ESD in x̂₀ space that preserves the concept its erasure hurts most (Gumbel search)."""

    Config = APConfig
    presets = {"shapes": SHAPES_PRESET, "tiny": TINY_PRESET}

    def editable_parameters(self, model: DiffusionModel) -> list[str]:
        config: APConfig = self.config  # type: ignore[assignment]
        if config.parameters == "non_cross_attention":
            return non_cross_attention_parameters(model)
        return cross_attention_parameters(model)

    def candidates(self, model: DiffusionModel, concept: str, embedding: torch.Tensor,
                   exclude: list[str], generator: torch.Generator
                   ) -> tuple[list[str], torch.Tensor]:
        """(words, embeddings) of the K-means representatives among the ``nearest``
        vocabulary concepts to ``concept`` (the erased concepts themselves excluded)."""
        config: APConfig = self.config  # type: ignore[assignment]
        words = load_vocabulary(config.vocabulary, exclude)
        # Streaming top-k: SD's 3000 x 77 x 768 vocabulary embeddings never sit in memory at
        # once, and no word is encoded twice.
        kept_index = torch.zeros(0, dtype=torch.long)
        kept = torch.zeros(0, *embedding.shape, dtype=embedding.dtype, device=embedding.device)
        with torch.no_grad():
            for start in range(0, len(words), _ENCODE_BATCH):
                chunk = model.encode_text(words[start:start + _ENCODE_BATCH])
                pool = torch.cat([kept, chunk])
                pool_index = torch.cat([kept_index, torch.arange(start, start + len(chunk))])
                best = nearest_concepts(pool, embedding, config.nearest)
                kept, kept_index = pool[best], pool_index[best]
        near_words, near = [words[i] for i in kept_index.tolist()], kept.detach()
        # Nearest-first inside each cluster order: keep candidate 0 the closest (pgd's base).
        chosen = kmeans_representatives(near, config.centres, generator)
        chosen = chosen[nearest_concepts(near[chosen], embedding, len(chosen))]
        return [near_words[i] for i in chosen.tolist()], near[chosen]

    def neutral(self, empty: torch.Tensor, found: torch.Tensor) -> torch.Tensor:
        """The conditioning the erased concept is steered from: AP keeps ESD's ∅."""
        return empty

    def erase(self, model: DiffusionModel, request: ErasureRequest) -> EditedModel:
        config: APConfig = self.config  # type: ignore[assignment]
        concepts, _ = concepts_and_targets(self.name, request, "")
        setup = self.training(model, ["", *concepts])
        frozen, scheduler, generator = setup.frozen, setup.scheduler, setup.generator
        empty, erased = setup.texts[:1], setup.texts[1:]
        searches = []
        for concept, embedding in zip(concepts, erased, strict=True):
            words, candidates = self.candidates(model, concept, embedding, concepts, generator)
            searches.append(ConceptSearch(
                words, candidates, method=config.search, lr=config.adversary_lr,
                temperature=config.temperature, hard=config.hard, top_k=config.top_k,
                radius=config.pgd_radius, generator=generator))
        batch = config.batch_size
        drawn: list[tuple[ConceptSearch, list[str]]] = []  # the draw the next update is for
        every = max(1, config.iterations // config.records)
        alternate = config.schedule == "alternate"

        def gap(x_t: torch.Tensor, alpha_bar: torch.Tensor, prediction: torch.Tensor,
                target_noise: torch.Tensor) -> torch.Tensor:
            """The papers' loss between two noise predictions, in x̂₀ (or ε) space."""
            if config.loss_space == "noise":
                return torch.nn.functional.mse_loss(prediction, target_noise)
            x_t = x_t.float()
            return torch.nn.functional.mse_loss(x0_from_noise(x_t, prediction, alpha_bar),
                                                x0_from_noise(x_t, target_noise, alpha_bar))

        def preservation(embedding: torch.Tensor) -> torch.Tensor:
            """λ's term for one searched concept: how far the model has moved on it."""
            cond = embedding.to(empty.dtype).expand(batch, -1, -1)
            with autocast(model.device, config.precision):
                z, t, alpha_bar = self.noisy_latents(model, frozen, scheduler, cond.detach(),
                                                     empty, generator)
                original = frozen(z, t, encoder_hidden_states=cond).sample.float()
                predicted = model.unet(z, t, encoder_hidden_states=cond).sample.float()
                return gap(z, alpha_bar, predicted, original)

        with editing(model, setup.names, self.name, config.model_dump(mode="json"),
                     request) as edit, frozen_weights_cast(model, config.precision):
            parameters = setup.parameters(model)

            def step(index: int) -> torch.Tensor:
                search = searches[index % len(searches)]
                for _ in range(config.adversary_steps if alternate else 0):
                    search.ascend(preservation)
                found, words = search.draw()
                found = (found.detach() if alternate else found).to(empty.dtype)
                if not alternate:
                    drawn.append((search, words))
                if index % every == 0:
                    search.record(index, words)
                cond = erased[index % len(erased)].expand(batch, -1, -1)
                neutral = self.neutral(empty, found.detach()).expand(batch, -1, -1)
                kept = found.expand(batch, -1, -1)
                with autocast(model.device, config.precision):
                    # One draw of z for the erased and the searched concept together.
                    z_both, t, alpha_bar = self.noisy_latents(
                        model, frozen, scheduler, torch.cat([cond, kept.detach()]), empty,
                        generator)
                    z, z_kept = z_both.chunk(2)
                    with torch.no_grad():
                        out = frozen(torch.cat([z, z]), t, encoder_hidden_states=(
                            torch.cat([neutral, cond]))).sample.float()
                        e_neutral, e_erased = out.chunk(2)
                        target = e_neutral - config.negative_guidance * (e_erased - e_neutral)
                    # The preserved concept's original prediction carries the search's
                    # gradient in simultaneous mode (kept is not detached there).
                    with torch.set_grad_enabled(not alternate):
                        e_kept = frozen(z_kept, t, encoder_hidden_states=kept).sample.float()
                    predicted = model.unet(z_both, t, encoder_hidden_states=torch.cat(
                        [cond, kept])).sample.float()
                    erase_loss = gap(z, alpha_bar, predicted[:batch], target)
                    keep_loss = gap(z_kept, alpha_bar, predicted[batch:], e_kept)
                return erase_loss + config.preserve_weight * keep_loss

            def search_step() -> None:
                search, words = drawn.pop()
                search.step_from_gradient(words)

            searched = {f"search {i}": search for i, search in enumerate(searches)}
            train_loop(config.iterations, step, parameters, config.lr, f"{self.name} training",
                       after_step=None if alternate else search_step,
                       state=TrainingState(generators=[generator], objects=searched))
        result = edit[0]
        result.notes = {"search": {concept: search.summary()
                                   for concept, search in zip(concepts, searches, strict=True)}}
        return result
