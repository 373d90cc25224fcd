"""The concept search shared by AP and AGE (Bui et al., NeurIPS 2024 / ICLR 2025).

Candidates: the ``nearest`` vocabulary concepts to the erased one (L2 distance between
flattened text embeddings, 77 x dim), grouped by K-means into ``centres`` clusters, each
represented by its member nearest the cluster mean — so every candidate is a real word of
the vocabulary, and the search history can be read as words. (The papers use the K-means
centres; taking the member nearest each centre is our choice, documented in
``baselines/README.md``.)

Search: logits π over the candidates; a draw is a Gumbel-softmax selection w (hard: one-
hot forward, soft gradient backward), and the searched concept's embedding is w · M, M the
candidates' embeddings. π is moved by gradient *ascent* on the loss the caller gives (AP:
the preservation loss), so it drifts to the concept the erasure damages most: either by
its own forward pass (:meth:`ConceptSearch.ascend`, the papers' alternation) or from the
gradient the model's own backward pass left (:meth:`ConceptSearch.step_from_gradient`,
simultaneous steps at half the cost). ``search="pgd"`` instead moves a continuous
embedding: the nearest candidate plus a perturbation δ with ‖δ‖∞ ≤ radius ·
std(embedding), by signed-gradient ascent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import torch


def x0_from_noise(x_t: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor | float
                  ) -> torch.Tensor:
    """x̂₀ = (x_t − √(1−ᾱ) ε) / √ᾱ: the clean latent a noise prediction implies."""
    alpha_bar = torch.as_tensor(alpha_bar, dtype=x_t.dtype, device=x_t.device)
    return (x_t - (1 - alpha_bar).sqrt() * noise) / alpha_bar.sqrt()


def gumbel_selection(logits: torch.Tensor, temperature: float, hard: bool,
                     generator: torch.Generator, top_k: int = 1) -> torch.Tensor:
    """Gumbel-softmax weights over the last axis, drawn with ``generator``.

    Soft: softmax((π + g) / τ). Hard: the ``top_k`` largest of π + g share the weight
    equally in the forward pass (one-hot for top_k 1) while gradients flow through the soft
    weights (straight-through). ``torch.nn.functional.gumbel_softmax`` draws from the global
    RNG; a seeded generator keeps erasures reproducible.
    """
    uniform = torch.rand(logits.shape, generator=generator).to(logits.device)
    exponential = -torch.log(uniform.clamp_min(1e-20))
    gumbel = -torch.log(exponential.clamp_min(1e-20))
    perturbed = logits + gumbel.to(logits.dtype)
    soft = torch.softmax(perturbed / temperature, dim=-1)
    if not hard:
        return soft
    chosen = perturbed.topk(min(top_k, logits.shape[-1]), dim=-1).indices
    forward = torch.zeros_like(soft).scatter(-1, chosen, 1.0 / chosen.shape[-1])
    return forward - soft.detach() + soft


def nearest_concepts(embeddings: torch.Tensor, query: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` rows of ``embeddings`` (N x 77 x dim) nearest ``query``, nearest
    first (L2 over the flattened embedding). On the CPU wherever the embeddings are, so they
    index CPU word lists and index tensors as well as the embeddings themselves."""
    distances = (embeddings.flatten(1).float() - query.flatten().float()).norm(dim=1)
    return distances.topk(min(k, len(distances)), largest=False).indices.cpu()


def kmeans_representatives(points: torch.Tensor, clusters: int, generator: torch.Generator,
                           iterations: int = 50) -> torch.Tensor:
    """Indices of ``clusters`` rows of ``points``: K-means (k-means++ start, Lloyd steps)
    and, for each cluster, its member nearest the mean; unique, in cluster order.

    On the GPU for SD's 1000 x 59136 embeddings, where a CPU library would copy them out.
    """
    flat = points.flatten(1).float()
    clusters = min(clusters, len(flat))
    first = int(torch.randint(len(flat), (1,), generator=generator))
    centres = flat[first:first + 1]
    while len(centres) < clusters:  # k-means++: far points are likelier next centres
        weights = torch.cdist(flat, centres).min(dim=1).values.square().cpu()
        if float(weights.sum()) == 0:
            break
        pick = int(torch.multinomial(weights / weights.sum(), 1, generator=generator))
        centres = torch.cat([centres, flat[pick:pick + 1]])
    for _ in range(iterations):
        assignment = torch.cdist(flat, centres).argmin(dim=1)
        moved = torch.stack([flat[assignment == c].mean(0) if (assignment == c).any()
                             else centres[c] for c in range(len(centres))])
        if torch.allclose(moved, centres):
            break
        centres = moved
    assignment = torch.cdist(flat, centres).argmin(dim=1)
    chosen: list[int] = []
    for c in range(len(centres)):
        members = (assignment == c).nonzero().flatten()
        if len(members):
            best = members[(flat[members] - centres[c]).norm(dim=1).argmin()]
            chosen.append(int(best))
    return torch.tensor(list(dict.fromkeys(chosen)), dtype=torch.long)


class ConceptSearch:
    """π over candidate concepts (or a PGD perturbation), with its history of draws."""

    def __init__(self, words: list[str], embeddings: torch.Tensor, *, method: str = "gumbel",
                 lr: float = 1e-2, temperature: float = 2.0, hard: bool = True,
                 top_k: int = 1, radius: float = 0.1, generator: torch.Generator) -> None:
        self.words = words
        self.embeddings = embeddings.detach()  # K x 77 x dim
        self.method = method
        self.temperature, self.hard, self.top_k = temperature, hard, top_k
        self.generator = generator
        device = embeddings.device
        self.logits = torch.zeros(len(words), device=device, requires_grad=True)
        scale = float(self.embeddings[0].float().std())
        self.bound = radius * scale
        self.step_size = self.bound / 4
        self.delta = torch.zeros_like(self.embeddings[0], dtype=torch.float32,
                                      requires_grad=True)
        self.optimizer = torch.optim.Adam([self.logits], lr=lr, maximize=True)
        self.counts: Counter[str] = Counter()
        self.history: list[dict[str, Any]] = []

    def draw(self) -> tuple[torch.Tensor, list[str]]:
        """(embedding of the searched concept, differentiable w.r.t. the search; its words)."""
        if self.method == "pgd":
            base = self.embeddings[0].float()
            return (base + self.delta)[None], [f"{self.words[0]} + δ"]
        weights = gumbel_selection(self.logits, self.temperature, self.hard, self.generator,
                                   self.top_k)
        chosen = weights.detach().topk(min(self.top_k, len(weights))).indices.tolist()
        mixed = torch.einsum("k,k...->...", weights, self.embeddings.float())
        return mixed[None], [self.words[i] for i in chosen]

    def ascend(self, objective: Callable[[torch.Tensor], torch.Tensor]) -> float:
        """One ascent step of the search on ``objective(embedding)``; returns its value."""
        embedding, words = self.draw()
        value = objective(embedding)
        variable = self.delta if self.method == "pgd" else self.logits
        (variable.grad,) = torch.autograd.grad(value, [variable])
        self.step_from_gradient(words)
        return float(value.detach())

    def step_from_gradient(self, words: list[str] | None = None) -> None:
        """Ascends on the gradient a backward pass left in π (or δ), then clears it."""
        variable = self.delta if self.method == "pgd" else self.logits
        grad = variable.grad
        if grad is None:
            return
        if self.method == "pgd":
            with torch.no_grad():
                self.delta.add_(self.step_size * grad.sign())
                self.delta.clamp_(-self.bound, self.bound)
        else:
            self.optimizer.step()
        variable.grad = None
        if words:
            self.counts.update(words)

    def record(self, step: int, words: list[str]) -> None:
        """Keeps the draw of ``step`` and the three likeliest candidates at that point."""
        entry: dict[str, Any] = {"step": step, "drawn": words}
        if self.method == "gumbel":
            probabilities = torch.softmax(self.logits.detach() / self.temperature, 0)
            top = probabilities.topk(min(3, len(probabilities)))
            entry["top"] = [[self.words[i], round(float(p), 4)]
                            for p, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)]
        self.history.append(entry)

    def state_dict(self) -> dict[str, Any]:
        """What its steps change, for a training checkpoint
        (:mod:`erasebench.training_checkpoints`)."""
        return {"logits": self.logits.detach(), "delta": self.delta.detach(),
                "optimizer": self.optimizer.state_dict(), "counts": dict(self.counts),
                "history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.logits.copy_(state["logits"])
            self.delta.copy_(state["delta"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.counts = Counter(state["counts"])
        self.history = list(state["history"])

    def summary(self) -> dict[str, Any]:
        return {"candidates": self.words, "drawn_counts": dict(self.counts.most_common()),
                "history": self.history}
