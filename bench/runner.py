"""Expands erasers x tasks x requests into work units and runs them, resumably.

A unit is one :class:`RunSpec`; its hash names its result file. Running a unit: load
(or reuse) the base model, get the edit (cached as safetensors, keyed on eraser spec,
request and base fingerprint), generate the task's images through the image cache,
score them, and write the record atomically, with how long each step took
(:class:`erasebench.results.UnitTimings`). A unit with a valid record is skipped, so
an interrupted run that is started again does only what is missing, and a unit being
run by another process (its lock is held) is left to that process, which this one, once
it has no unit left to start, helps draw its images (:meth:`Runner.help`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout

from erasebench import thumbnails
from erasebench.attack_cache import AttackCache
from erasebench.cache import ImageCache, claim_file, default_cache_dir
from erasebench.code_version import code_version
from erasebench.edits import EditedModel
from erasebench.errors import CorruptFileError, OutOfDeviceMemory, memory_account
from erasebench.faults import checkpoint
from erasebench.generate import Generator
from erasebench.hardware import describe_device, resolved_device
from erasebench.help_records import HelpRecord, write_help_record
from erasebench.memory import free_device_memory
from erasebench.models import DiffusionModel, load_model
from erasebench.plugins import Eraser, ScoringContext, Task
from erasebench.probe import ModelProbe
from erasebench.results import (
    MetricRow,
    ResultStore,
    RunRecord,
    UnitTimings,
    provenance,
)
from erasebench.specs import EraserSpec, ErasureRequest, GenerationSpec, ModelSpec, RunSpec
from erasebench.training_checkpoints import DEFAULT_EVERY, CheckpointPlace, checkpointing


@dataclass
class WorkUnit:
    spec: RunSpec
    eraser: Eraser
    task: Task

    @property
    def run_id(self) -> str:
        return self.spec.run_id()

    def describe(self) -> str:
        return f"{self.eraser.name} x {self.task.name} [{self.spec.request.display()}]"


def plan(erasers: Sequence[Eraser], tasks: Sequence[Task], model: ModelSpec | None = None,
         generation_overrides: dict[str, Any] | None = None) -> list[WorkUnit]:
    """Every (task, request, eraser) combination, tasks' own generation settings overridden.

    ``model=None`` runs each task on its own ``default_model`` (the miniature world's tasks
    on ``shapes``, the Stable Diffusion tasks on SD v1.4).
    """
    units = []
    for task in tasks:
        task_model = model or ModelSpec(id=task.default_model)
        generation = GenerationSpec.checked(
            {**task.generation().model_dump(), **(generation_overrides or {})})
        for request in task.requests():
            for eraser in erasers:
                spec = RunSpec(eraser=eraser.spec(), request=request, task=task.spec(),
                               model=task_model, generation=generation)
                units.append(WorkUnit(spec, eraser, task))
    return units


def timed_erase(eraser: Eraser, model: DiffusionModel, request: Any,
                place: CheckpointPlace | None = None) -> EditedModel:
    """``eraser.erase(model, request)``, the edit noting how long it took, on what device
    (:attr:`EditedModel.seconds`, kept in its file; the device as
    :func:`erasebench.hardware.describe_device` names it) and on what base model. With a
    ``place``, its training keeps checkpoints there and goes on from those a stopped
    process left (:mod:`erasebench.training_checkpoints`); the seconds are then those of
    every process that worked on it, up to the checkpoint each left."""
    started = time.perf_counter()
    with checkpointing(place) if place is not None else contextlib.nullcontext():
        edit = eraser.erase(model, request)
    edit.seconds = time.perf_counter() - started + (
        place.resumed_seconds if place is not None else 0.0)
    edit.device = describe_device(str(model.device))
    edit.base_model = model.spec
    return edit


def edit_key(eraser: EraserSpec, request: ErasureRequest, base_fingerprint: str) -> str:
    """What names an edit in the caches: the eraser's spec (name and config), the request
    and the base model's fingerprint."""
    return hashlib.sha256(f"{eraser.canonical()}|{request.canonical()}|"
                          f"{base_fingerprint}".encode()).hexdigest()[:32]


def _cached_edit(path: Path) -> EditedModel | None:
    """The edit saved at ``path``; None when there is none, or when it is damaged (then
    removed, to be made again)."""
    if not path.is_file():
        return None
    try:
        return EditedModel.load(path)
    except CorruptFileError:
        path.unlink(missing_ok=True)
        return None


# What a unit was doing as it ran out of device memory, and why nothing lighter was tried
_OUT_OF_MEMORY_NOTE = {
    "making its erasure": "each in-tree eraser's peak on SD v1.4 at its paper settings is "
    "in benchmarks/README.md (ESD-u's 19.5 GB the most)",
    "drawing its images": "the generator had halved its batch down to one image",
    "scoring its images": "its task's scorers and the generator had halved their batches "
    "down to one image (the robustness task's attack takes the noisy latents its `samples` "
    "option sets at once)",
}


@contextlib.contextmanager
def out_of_memory_named(unit: WorkUnit, doing: str, device: str) -> Iterator[None]:
    """Within the block, the device running out of memory is raised as
    :class:`OutOfDeviceMemory`, naming ``unit``, what it was ``doing`` (a key of
    ``_OUT_OF_MEMORY_NOTE``) and torch's account of the memory, in place of torch's traceback."""
    try:
        yield
    except torch.OutOfMemoryError as error:
        raise OutOfDeviceMemory(
            f"{unit.describe()} ({unit.run_id})",
            f"on {describe_device(device)} {doing}: {memory_account(error)}",
            _OUT_OF_MEMORY_NOTE[doing]) from error


@dataclass
class RunSummary:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)  # locked by another process
    # run id -> why it ran out of device memory (OutOfDeviceMemory), left undone
    out_of_memory: dict[str, OutOfDeviceMemory] = field(default_factory=dict)
    # run id -> images drawn here for a unit another process ran (Runner.help)
    helped: dict[str, int] = field(default_factory=dict)


@dataclass
class Runner:
    results_dir: Path = Path("results")
    cache_dir: Path = field(default_factory=default_cache_dir)
    device: str = "auto"
    batch_size: int | None = None  # None: the generator's default for the model
    progress: bool = True
    on_unit: Callable[[WorkUnit, str], None] | None = None  # (unit, "done"/"skipped"/...)
    # Keep thumbnails of unsafe prompts' images in results/ too (never by default).
    show_unsafe: bool = False
    compile: bool = False  # sample with torch.compile's UNet (erasebench.generate)
    # With no unit left to start, draw images of those other processes run (Runner.help).
    help_others: bool = True
    # (unit, what this process did for it: the images it drew, their seconds)
    on_help: Callable[[WorkUnit, HelpRecord], None] | None = None
    # (unit, why) for a unit that ran out of device memory, which the run leaves undone
    on_out_of_memory: Callable[[WorkUnit, OutOfDeviceMemory], None] | None = None
    # Seconds between an eraser's training checkpoints (erasebench.training_checkpoints).
    checkpoint_every: float = DEFAULT_EVERY
    # (unit, what its erasure's training did: resumed from a checkpoint, saved one to stop)
    on_training: Callable[[WorkUnit, str], None] | None = None
    _models: dict[ModelSpec, DiffusionModel] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.results_dir, self.cache_dir = Path(self.results_dir), Path(self.cache_dir)
        self.store = ResultStore(self.results_dir)
        code_version()  # the code this process started with names its records
        self.images = ImageCache(self.cache_dir)
        self.device = resolved_device(self.device)

    def run(self, units: Sequence[WorkUnit]) -> RunSummary:
        """Runs each unit in turn (:meth:`run_unit`); then, with ``help_others``, helps
        those another process was running (:meth:`help`)."""
        summary = RunSummary()
        for unit in units:
            short = None
            try:
                status = self.run_unit(unit)
            except OutOfDeviceMemory as error:
                # One unit too big for the device (ESD-u's training on a 16 GB card) need
                # not stop the others, hours of them in a reproduction. Its words are
                # kept, not the error, whose traceback holds what the unit's frames held.
                short = error.alone()
            if short is not None:
                free_device_memory()
                summary.out_of_memory[unit.run_id] = short
                if self.on_out_of_memory is not None:
                    self.on_out_of_memory(unit, short)
                continue
            getattr(summary, status).append(unit.run_id)
            if self.on_unit is not None:
                self.on_unit(unit, status)
        if self.help_others and summary.busy:
            busy = set(summary.busy)
            helped = self.help([unit for unit in units if unit.run_id in busy])
            summary.helped = {run_id: work.images for run_id, work in helped.items()}
        return summary

    def help(self, units: Sequence[WorkUnit]) -> dict[str, HelpRecord]:
        """Draws into the image cache the images of ``units`` (run by other processes, in
        the order they were handed out) that no process has drawn or is drawing, one unit
        after another until none is left to draw; returns what was done for each, by run
        id: the images drawn and the seconds they took (a help record).

        Why: units are handed out whole, so once none is left to start, the processes that
        end theirs first would sit idle while the longest ones run; an AGE unit of
        Imagenette (a 42-minute erasure, then 5,000 images) held a full reproduction on 64
        GPUs or more, and one eraser's units on 16 (``benchmarks/reproduction_hours.py``).
        Helpers split a unit's images, and the original model's images its scoring compares
        with (``Task.reference_prompts``), with its process through the cache's claims, as
        processes asking for the same images always have, and an image never depends on who
        draws it, so the rows are the same. The unit's process still scores them and writes
        its record. A unit whose erasure is being made waits for it (``Runner.edit``), so
        units already drawing are helped first. What this process drew (and an erasure it
        made) goes in a help record (``erasebench.help_records``) for the timings."""
        helped: dict[str, HelpRecord] = {}
        left = list(units)
        while left:
            ready = [unit for unit in left if self._edit_ready(unit)]
            unit = (ready or left)[0]
            left.remove(unit)
            if self.store.is_done(unit.run_id):
                continue
            # Help is help: out of memory, the unit's own process draws what is left (what
            # this one drew is in the cache), or says that it cannot.
            with contextlib.suppress(torch.OutOfMemoryError):
                helped[unit.run_id] = self._help_draw(unit)
            if unit.run_id not in helped:
                free_device_memory()
                continue
            if self.on_help is not None:
                self.on_help(unit, helped[unit.run_id])
        return helped

    def _help_draw(self, unit: WorkUnit) -> HelpRecord:
        """:meth:`help`'s work on one unit: the images drawn for it (and its erasure, where
        made here) and their seconds, kept as a help record for the timings where there
        were any."""
        model = self.model(unit.spec.model)
        began = time.perf_counter()
        edit, made = self.edit(unit, model)
        erased_at = time.perf_counter()
        generator = self._generator(unit, model)
        with edit.applied(model):
            drawn = generator.draw_unclaimed(unit.task.prompts(unit.spec.request))
        drawn_at = time.perf_counter()
        # Then the original model's images its scoring compares with, which its own process
        # would otherwise draw alone once its own are drawn.
        references = generator.draw_unclaimed(unit.task.reference_prompts(unit.spec.request))
        record = HelpRecord(
            run_id=unit.run_id, eraser=unit.spec.eraser.name, task=unit.spec.task.name,
            model=unit.spec.model.id, device=describe_device(self.device),
            images_drawn=drawn, drawing=drawn_at - erased_at, references_drawn=references,
            referencing=time.perf_counter() - drawn_at,
            erasure=erased_at - began if made else 0.0, erasure_made=made)
        if drawn or references or made:  # the helper's work, for erasebench timings
            write_help_record(self.results_dir, record)
        return record

    def _edit_ready(self, unit: WorkUnit) -> bool:
        """Whether ``unit``'s images can be drawn now: its eraser makes no edit, or the
        edit cache holds its edit."""
        if not unit.eraser.makes_edits:
            return True
        return self.edit_path(unit, self.model(unit.spec.model)).is_file()

    def run_unit(self, unit: WorkUnit, lock_wait: float = 0.0) -> str:
        """Runs ``unit`` unless it is recorded: ``done`` or ``skipped``; ``busy`` when
        another process holds its lock, waited for up to ``lock_wait`` seconds (a unit run
        again after its Ray actor died: a lost node's lock on a network file system can
        outlive it by the server's lease)."""
        if self.store.is_done(unit.run_id):
            return "skipped"
        # Load the base model first: a model that cannot be loaded is a clear error before
        # anything (even a lock file) is written.
        self.model(unit.spec.model)
        lock_path = self.results_dir / ".locks" / f"{unit.run_id}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with FileLock(str(lock_path), timeout=lock_wait):
                if self.store.is_done(unit.run_id):  # finished while we waited
                    return "skipped"
                record = self._execute(unit)
                checkpoint("score.done")
                self.store.write(record)
        except Timeout:
            return "busy"
        return "done"

    # -- the steps of one unit -------------------------------------------------------------
    def model(self, spec: ModelSpec) -> DiffusionModel:
        if spec not in self._models:
            self._models[spec] = load_model(spec, device=self.device)
        return self._models[spec]

    def edit_path(self, unit: WorkUnit, model: DiffusionModel) -> Path:
        """Where the edit cache keeps the unit's edit of ``model``: named by the eraser's
        spec, the request and the base model's fingerprint."""
        key = edit_key(unit.spec.eraser, unit.spec.request, model.fingerprint)
        return self.cache_dir / "edits" / f"{unit.eraser.name}-{key}.safetensors"

    @property
    def checkpoints_dir(self) -> Path:
        """The edit cache's folder of training checkpoints (:meth:`checkpoints_stem`)."""
        return self.cache_dir / "edits" / "training"

    @property
    def attacks_dir(self) -> Path:
        """Where what the units' attacks on their models learnt is kept
        (:mod:`erasebench.attack_cache`)."""
        return self.cache_dir / "attacks"

    def checkpoints_stem(self, unit: WorkUnit, model: DiffusionModel) -> Path:
        """Where the training of the unit's edit of ``model`` keeps its checkpoints (files
        named from it: :class:`erasebench.training_checkpoints.CheckpointPlace`)."""
        return self.checkpoints_dir / self.edit_path(unit, model).stem

    def edit(self, unit: WorkUnit, model: DiffusionModel) -> tuple[EditedModel, bool]:
        """The eraser's edit, from the cache when an identical one was made before, and
        whether it was made here (timed: :attr:`EditedModel.seconds`).

        Processes that need the same erasure at once (units of one request, on --workers
        or Ray actors) make it once: the first claims it (:func:`erasebench.cache.
        claim_file`), the others wait and read it, which has them go on sooner than making
        it again would (an AGE erasure of SD takes 42 minutes on an H100). An eraser that
        makes no edit (``sd``) hands back its empty one at once, neither kept nor counted as
        made (``erasebench timings`` counted one erasure per unit of it). Its training
        keeps checkpoints in ``edits/training/`` until the edit is saved, and one stopped
        half-way goes on from its last (:mod:`erasebench.training_checkpoints`)."""
        if not unit.eraser.makes_edits:
            return timed_erase(unit.eraser, model, unit.spec.request), False
        path = self.edit_path(unit, model)
        cached = _cached_edit(path)
        if cached is not None:
            return cached, False
        claim = claim_file(path.with_suffix(".claim"), wait=True)
        try:
            cached = _cached_edit(path)  # made while this process waited
            if cached is not None:
                return cached, False
            on_training = self.on_training
            place = CheckpointPlace(
                self.checkpoints_stem(unit, model), every=self.checkpoint_every,
                say=None if on_training is None else functools.partial(on_training, unit))
            edit = timed_erase(unit.eraser, model, unit.spec.request, place)
            checkpoint("erase.done")
            edit.save(path)
            place.remove()
            return edit, True
        finally:
            if claim is not None:
                claim.release()

    def _generator(self, unit: WorkUnit, model: DiffusionModel) -> Generator:
        return Generator(model, unit.spec.generation, self.images, self.batch_size,
                         self.progress, compile=self.compile)

    def _execute(self, unit: WorkUnit) -> RunRecord:
        model = self.model(unit.spec.model)
        began = time.perf_counter()
        with out_of_memory_named(unit, "making its erasure", self.device):
            edit, trained = self.edit(unit, model)
        erased_at = time.perf_counter()
        generator = self._generator(unit, model)
        prompts = unit.task.prompts(unit.spec.request)
        with edit.applied(model), out_of_memory_named(unit, "drawing its images", self.device):
            images = generator.images(prompts)
        drawn_at, drawn, awaited = time.perf_counter(), generator.drawn, generator.awaited
        batch = min(generator.batch_size, drawn) if drawn else None  # the batch it drew at
        thumbnails.save(self.results_dir, unit.run_id, images, prompts, self.show_unsafe)
        # After the edit is removed, the same generator draws the base model's images.
        probe = ModelProbe(model, edit, generator, kept=AttackCache(self.attacks_dir),
                           unit=unit.run_id)
        context = ScoringContext(device=self.device, reference_images=generator.images,
                                 encode_text=model.encode_text, probe=probe)
        with out_of_memory_named(unit, "scoring its images", self.device):
            values = unit.task.score(images, prompts, unit.spec.request, context)
        timings = UnitTimings(erasure=erased_at - began, erasure_trained=trained,
                              training=edit.seconds, training_device=edit.device,
                              images=drawn_at - erased_at, scoring=time.perf_counter() - drawn_at,
                              images_drawn=drawn, scoring_drawn=generator.drawn - drawn,
                              images_awaited=awaited, batch=batch, attacking=probe.attacking,
                              attacks_read=probe.attacks_read or None,
                              attacked_drawn=probe.attacked_drawn or None)
        metrics, samples = [], {}
        for value in values:
            info = unit.task.metrics.get(value.metric)
            if info is None:
                raise RuntimeError(f"task {unit.task.name!r} returned undeclared metric "
                                   f"{value.metric!r}; declared: {sorted(unit.task.metrics)}")
            if value.samples:
                samples[value.metric] = value.samples
            metrics.append(MetricRow(metric=value.metric, value=value.value, split=value.split,
                                     seed=value.seed, higher_is_better=info.higher_is_better,
                                     headline=info.headline))
        samples_digest = self.store.write_samples(unit.run_id, samples)
        return RunRecord(
            run_id=unit.run_id, spec=unit.spec, task_version=unit.task.version,
            model_fingerprint=model.fingerprint, edit_digest=edit.digest,
            image_count=len(images), scorers=unit.task.scorer_versions(), metrics=metrics,
            provenance=provenance(describe_device(self.device), timings),
            samples_digest=samples_digest,
        )
