"""How much of the units' work the caches already hold: ``erasebench run --dry-run
--check-cache``.

``erasebench.workload`` counts a plan's distinct images and erasures without loading
anything; which of them a cache holds it cannot say, since cache entries are named by
the base model's fingerprint, a hash of its weights. Here each base model is loaded
once for its fingerprint. An erasure is held when the edit cache has a readable file at
its name (``Runner.edit_path``); an image when the image cache has its entry, keyed by
the base model's fingerprint, or by the edited model's for an eraser's edit that is held.
The images of an erasure not yet made cannot be held: they are keyed by an edit that does
not exist yet, so they are counted, by what makes them, as images to draw.

Entries are counted, not checked (a checksum would read every PNG: a full reproduction's
are about 140 GB); a run checks each before it uses it and makes a damaged one again.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from erasebench.edits import EditedModel
from erasebench.generate import Generator
from erasebench.workload import erasure_of, image_identities


@dataclass
class CachedWork:
    """Distinct images and erasures the units ask for, and how many the caches hold."""

    images: int = 0
    images_held: int = 0
    erasures: int = 0
    erasures_held: int = 0


def cached_work(units: Sequence[Any], runner: Any) -> CachedWork:
    """What of ``units`` (``runner.WorkUnit``) the caches of ``runner`` (a ``Runner``,
    which loads each base model once) hold."""
    keys: set[str] = set()  # images with a name: the base model's, or a held edit's
    unnamed: set[Hashable] = set()  # images of erasures not made yet
    held_erasures: dict[Hashable, bool] = {}
    prompts_of: dict[tuple[str, str], Any] = {}
    for unit in units:
        spec = unit.spec
        model = runner.model(spec.model)
        key = (spec.task.spec_hash(), spec.request.spec_hash())
        if key not in prompts_of:
            prompts_of[key] = unit.task.prompts(spec.request)
        fingerprint: str | None = model.fingerprint
        if unit.eraser.makes_edits:
            fingerprint = EditedModel.fingerprint_in(runner.edit_path(unit, model))
            held_erasures[erasure_of(unit)] = fingerprint is not None
        if fingerprint is None:
            unnamed |= image_identities(spec, prompts_of[key], makes_edits=True)
            continue
        generator = Generator(model, spec.generation, batch_size=1, progress=False)
        keys.update(generator.keys(prompts_of[key], fingerprint))
    return CachedWork(images=len(keys) + len(unnamed),
                      images_held=len(runner.images.present_keys(list(keys))),
                      erasures=len(held_erasures),
                      erasures_held=sum(held_erasures.values()))
