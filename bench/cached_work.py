"""How much of the units' work the caches already hold: ``erasebench run --dry-run
--check-cache``.

``erasebench.workload`` counts a plan's distinct images and erasures without loading
anything; which of them a cache holds it cannot say, since cache entries are named by
the base model's fingerprint, a hash of its weights. Here each base model is loaded
once for its fingerprint. An erasure is held when the edit cache has a readable file at
its name (``Runner.edit_path``); an image when the image cache has its entry, keyed by
the base model's fingerprint, or by the edited model's for an eraser's edit that is held.
The images of an erasure not yet made cannot be held: they are keyed by an edit that does
not exist yet, so they are counted, by what makes them, as images to draw. The original
model's images a unit's scoring compares with (``Task.reference_prompts``) are keyed by
the base model's fingerprint, as ``sd``'s are.

The attacks a unit's task makes on its edited model (the robustness task's) are held when
the attack cache has entries made for the unit (``erasebench.attack_cache``: a run stopped
in the middle of its attacks, or a unit scored again); each entry says the seconds it took.

A run's progress line prices what is left by it (``CachedWork.to_draw`` and
``references_to_draw``, the erasures and attacks held), so that images, erasures and
attacks another run made are not priced as still to make.

Entries are counted, not checked (a checksum would read every PNG: a full reproduction
writes hundreds of thousands); a run checks each before it uses it and makes a damaged
one again. What the images still to draw and the erasures still to make will take on
disk is ``erasebench.cache_space``'s to say; an erasure is sized here, with its base model
loaded, by the parameters its eraser may change (its edit, and its training's checkpoint
while it is made).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.filesize import decimal

from erasebench.attack_cache import AttackCache, HeldAttacks
from erasebench.cache_space import CacheSpace, cache_space
from erasebench.edits import EditedModel
from erasebench.generate import Generator
from erasebench.run_progress import format_duration
from erasebench.training_checkpoints import CheckpointPlace
from erasebench.workload import (
    Erasure,
    PromptMemo,
    erasure_of,
    image_identities,
    prompts_of_unit,
)


@dataclass
class CachedWork:
    """Distinct images and erasures the units ask for, and which the caches hold."""

    images: int = 0
    images_held: int = 0
    erasures: set[Erasure] = field(default_factory=set)  # as workload.erasure_of names them
    erasures_held: set[Erasure] = field(default_factory=set)
    # erasures not held whose training left checkpoints to resume from
    erasures_begun: set[Erasure] = field(default_factory=set)
    # files in the edit cache's training folder that no erasure of the units resumes from,
    # with their bytes: another run's trainings, one whose settings changed since, an
    # erasure made by a process killed before it removed them, a checkpoint half-written
    checkpoints_elsewhere: dict[Path, int] = field(default_factory=dict)
    # run id -> the unit's images that neither the image cache nor a unit before it holds
    # or asks for: those it draws when the units run in order
    to_draw: dict[str, int] = field(default_factory=dict)
    # run id -> the original model's images its scoring compares with (Task.
    # reference_prompts) that neither the image cache nor it nor a unit before it holds,
    # asks for or draws
    references_to_draw: dict[str, int] = field(default_factory=dict)
    # run id -> the (height, width) of the unit's images (erasebench.cache_space)
    size_of: dict[str, tuple[int, int]] = field(default_factory=dict)
    # erasure not held -> about the bytes its edit file takes (edit_size): ESD-u's 3.3 GB
    # on SD v1.4, UCE's 77 MB; and its training's checkpoint while it is made
    # (checkpoint_size): ESD-u's 9.8 GB, 0 for an eraser that keeps none
    edit_bytes: dict[Erasure, int] = field(default_factory=dict)
    checkpoint_bytes: dict[Erasure, int] = field(default_factory=dict)
    # run id -> the attacks on its edited model the attack cache holds, made for the unit
    # by a run before (stopped in the middle, or one whose record is to be scored again)
    attacks_held: dict[str, HeldAttacks] = field(default_factory=dict)

    def by_size(self, draws: Mapping[str, int]) -> dict[tuple[int, int], int]:
        """Images to draw per (height, width), of ``draws`` (run id -> images to draw)."""
        sizes: dict[tuple[int, int], int] = {}
        for run_id, count in draws.items():
            size = self.size_of[run_id]
            sizes[size] = sizes.get(size, 0) + count
        return sizes

    @property
    def to_draw_by_size(self) -> dict[tuple[int, int], int]:
        return self.by_size({run_id: count + self.references_to_draw.get(run_id, 0)
                             for run_id, count in self.to_draw.items()})

    def elsewhere_line(self) -> str | None:
        """``2 files, 9.9 GB, in /cache/edits/training that no erasure of these units
        resumes from (...)``; None where there are none."""
        if not self.checkpoints_elsewhere:
            return None
        count, first = len(self.checkpoints_elsewhere), next(iter(self.checkpoints_elsewhere))
        return (f"{count:,} file{'s' if count > 1 else ''}, "
                f"{decimal(sum(self.checkpoints_elsewhere.values()))}, in {first.parent} that "
                "no erasure of these units resumes from (another run's trainings, or left by "
                "settings changed since or by a process killed); remove them once no run "
                "trains from them")

    def held_line(self) -> str:
        """``4,100 of the 15,429 distinct images of the units to do, 40 of their 88
        erasures`` (``, 1 more begun (its training resumes from a checkpoint)``; ``, 15
        attacks on their edited models (42 min of making them)``)."""
        begun = len(self.erasures_begun)
        told = "" if not begun else (
            ", 1 more begun (its training resumes from a checkpoint)" if begun == 1 else
            f", {begun:,} more begun (their trainings resume from checkpoints)")
        return (f"{self.images_held:,} of the {self.images:,} distinct images of the units to "
                f"do, {len(self.erasures_held):,} of their {len(self.erasures):,} "
                f"erasures{told}{self.attacks_line()}")

    def attacks_line(self) -> str:
        """``, 15 attacks on their edited models (3.2 min of making them)``, "" for none."""
        count = sum(held.count for held in self.attacks_held.values())
        if not count:
            return ""
        seconds = sum(held.seconds for held in self.attacks_held.values())
        return (f", {count:,} attack{'s' if count > 1 else ''} on their edited models "
                f"({format_duration(seconds)} of making {'them' if count > 1 else 'it'})")


def fingerprint_drawing(unit: Any, runner: Any) -> str | None:
    """The fingerprint of the model that draws ``unit``'s images: the base model's for an
    eraser that makes no edit, the edited model's when the edit cache holds the edit,
    else None (the edit is still to make)."""
    model = runner.model(unit.spec.model)
    if not unit.eraser.makes_edits:
        return model.fingerprint
    return EditedModel.fingerprint_in(runner.edit_path(unit, model))


# An edit file's header beyond its tensors' names: each tensor's dtype, shape and offsets
# (at most 84 bytes in the default run's 88 edits), and the metadata: provenance and the
# eraser's notes (at most 4.7 kB there; AP's search history is the longest).
TENSOR_HEADER, METADATA = 96, 8192


def _editable(eraser: Any, model: Any) -> list[tuple[str, Any]]:
    """(name, parameter) of every parameter of ``model`` that ``eraser`` may change
    (``Eraser.editable_parameters``; an eraser may change fewer): what its edit and its
    training's checkpoint are sized by."""
    editable = set(eraser.editable_parameters(model))
    return [(name, parameter) for name, parameter in model.named_parameters()
            if name in editable]


def edit_size(eraser: Any, model: Any) -> int:
    """About the bytes an edit of ``model`` by ``eraser`` takes: every parameter it may
    change and the file's header."""
    return METADATA + sum(parameter.numel() * parameter.element_size() + len(name)
                          + TENSOR_HEADER for name, parameter in _editable(eraser, model))


# A training checkpoint's bytes beyond its tensors' data, as measured on the tiny and
# miniature models: per trained parameter, its tensors' header entries and state tree (the
# weight, Adam's two moments and step: 500 bytes); for the whole, the generators' states
# and a concept search's (6 to 17 kB), and the losses (20 bytes a step done). Next to
# SD's 0.5 to 9.8 GB of weights and moments, neither counts.
CHECKPOINT_PER_PARAMETER, CHECKPOINT_FIXED = 512, 16 * 1024


def checkpoint_size(eraser: Any, model: Any) -> int:
    """About the bytes of the checkpoint ``eraser``'s training keeps while it erases from
    ``model`` (``erasebench.training_checkpoints``): each parameter it may change and
    Adam's two moments of it; 0 for an eraser that keeps none
    (``Eraser.checkpoints_training``)."""
    if not eraser.checkpoints_training:
        return 0
    return CHECKPOINT_FIXED + sum(3 * parameter.numel() * parameter.element_size()
                                  + CHECKPOINT_PER_PARAMETER
                                  for _, parameter in _editable(eraser, model))


def cached_work(units: Sequence[Any], runner: Any,
                prompts_of: PromptMemo | None = None) -> CachedWork:
    """What of ``units`` (``runner.WorkUnit``) the caches of ``runner`` (a ``Runner``,
    which loads each base model once) hold; prompts built once per request, and kept in
    ``prompts_of`` for the plan's counts (``workload.count_images``) when given."""
    work = CachedWork()
    prompts_of = {} if prompts_of is None else prompts_of
    # Each unit's images: image cache keys when the model drawing them is known (the base
    # model, a held edit), else what makes them (an erasure not made yet); and those of the
    # original model its scoring compares with.
    images_of: list[tuple[str, tuple[int, int], set[Hashable], set[Hashable]]] = []
    # The checkpoints' places of the erasures not made yet: files written there as we look
    # (by a run's helpers, which start before its main process looks) are theirs too.
    places: list[CheckpointPlace] = []
    for unit in units:
        spec, model = unit.spec, runner.model(unit.spec.model)
        prompts = prompts_of_unit(unit, prompts_of)
        fingerprint = fingerprint_drawing(unit, runner)
        erasure = erasure_of(unit)
        if erasure is not None:
            work.erasures.add(erasure)
            if fingerprint is not None:
                work.erasures_held.add(erasure)
            elif erasure not in work.edit_bytes:
                work.edit_bytes[erasure] = edit_size(unit.eraser, model)
                work.checkpoint_bytes[erasure] = checkpoint_size(unit.eraser, model)
                places.append(CheckpointPlace(runner.checkpoints_stem(unit, model)))
                if places[-1].files():
                    work.erasures_begun.add(erasure)
        generator = Generator(model, spec.generation, batch_size=1, progress=False)
        images = (image_identities(spec, prompts, makes_edits=True) if fingerprint is None
                  else set(generator.keys(prompts, fingerprint)))
        references = set(generator.keys(prompts_of_unit(unit, prompts_of, references=True),
                                        model.fingerprint))
        images_of.append((unit.run_id, generator.size, images, references))
    keys = {image for *_, images, references in images_of for image in images | references
            if isinstance(image, str)}
    held = runner.images.present_keys(list(keys))
    seen: set[Hashable] = set()
    for run_id, size, images, references in images_of:
        new = images - seen
        seen |= new
        new_references = references - seen  # drawn by its scoring, after its own images
        seen |= new_references
        work.to_draw[run_id] = len(new - held)
        work.references_to_draw[run_id] = len(new_references - held)
        work.size_of[run_id] = size
    work.images, work.images_held = len(seen), len(held)
    attacks = AttackCache(runner.attacks_dir).held_by_unit()
    for unit in units:  # those it would read: made as its task makes them here
        made_as = unit.task.attack_kind(unit.spec.generation, runner.device)
        if made_as is not None and (unit.run_id, made_as) in attacks:
            work.attacks_held[unit.run_id] = attacks[unit.run_id, made_as]
    if runner.checkpoints_dir.is_dir():
        for entry in os.scandir(runner.checkpoints_dir):
            if any(place.owns(entry.name) for place in places):
                continue
            with contextlib.suppress(FileNotFoundError):  # removed as we look
                if entry.is_file():
                    work.checkpoints_elsewhere[Path(entry.path)] = entry.stat().st_size
    return work


def look_in_caches(units: Sequence[Any], runner: Any,
                   prompts_of: PromptMemo | None = None) -> tuple[CachedWork, CacheSpace]:
    """What the caches of ``runner`` hold of ``units``' work (:func:`cached_work`), and
    what the images still to draw and the erasures still to make would take on the
    cache's disk (``erasebench.cache_space``): what a run looks at as it starts, in the
    process that loads the models (the main process locally, the first actor on Ray), and
    ``--dry-run --check-cache``."""
    work = cached_work(units, runner, prompts_of)
    return work, cache_space(runner.images.root, work.to_draw_by_size,
                             edit_bytes=list(work.edit_bytes.values()),
                             checkpoint_bytes=list(work.checkpoint_bytes.values()))
