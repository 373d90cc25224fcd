"""How far a run is, and about how long is left, by the images its units ask for and the
erasures they still have to make.

A full reproduction runs for hours (``README.md``, "How long a full reproduction takes"),
and its units differ fivefold in size (an artist unit asks for 1,000 images, an
Imagenette split 5,000), so counting units says little about the time left. The
estimate here weighs each unit by the images it asks for (``erasebench.workload``) and
counts every unit recorded in the results folder since the run began: those of helper
processes, Ray actors and other runs on the same folder included. Their records say where
their time went (``erasebench.results.UnitTimings``).

- Images: the seconds the finished units' images and scoring took per image asked for,
  task by task (a concept-graph image of the miniature world took half as long again as
  an object image; COCO's FID and I2P's NudeNet score differently), all tasks' rate for
  a task not yet seen.
- Erasures: making one can take longer than drawing a unit's images (an AGE erasure of
  SD 42 minutes on an H100, an Imagenette unit's 5,000 images 50), and only the first
  unit that needs it makes it; each erasure still to make counts at what its eraser's
  took so far, any eraser's for one not yet seen.

Both are shared among the run's processes. Records without timings (written before they
were kept) leave only the wall time since the run began, over the images done. Still
rough: units whose images another unit already drew finish faster. Erasures already in
the edit cache (made for another results folder) count as made when the run's main
process can look (``erasebench.cached_work.held_erasures``: on the local backend, and in
``--dry-run --check-cache``), else as still to make.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

from erasebench.results import RunRecord
from erasebench.workload import count_images, erasure_of


def format_duration(seconds: float) -> str:
    """``42 s``, ``7 min``, ``3 h 05 min``: coarse enough to read at a glance."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


@dataclass
class RunProgress:
    """The units to do (run id -> images each asks for) and which of them are recorded.

    ``task_of`` names each unit's task, ``erasure_of`` the erasure it needs
    (``erasebench.workload.erasure_of``: its eraser's name first; None for none), ``made``
    the erasures units recorded before the run made, and ``processes`` how many processes
    share the run.
    """

    images_of: Mapping[str, int]
    task_of: Mapping[str, str] = field(default_factory=dict)
    erasure_of: Mapping[str, tuple[Hashable, ...] | None] = field(default_factory=dict)
    made: set[tuple[Hashable, ...]] = field(default_factory=set)
    processes: int = 1
    clock: Callable[[], float] = time.monotonic
    started: float = field(init=False)
    finished: set[str] = field(default_factory=set, init=False)
    training: dict[tuple[Hashable, ...], float] = field(default_factory=dict, init=False)
    # Per task, over the finished units whose records have timings: images asked for, and
    # seconds spent on them other than making an erasure (drawing, reading, scoring).
    timed_images: dict[str, int] = field(default_factory=dict, init=False)
    timed_seconds: dict[str, float] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()
        self.made = set(self.made)

    @classmethod
    def of_units(cls, todo: Sequence[Any], done: Sequence[Any], processes: int,
                 images_of: Mapping[str, int] | None = None) -> RunProgress:
        """For the units to do (``runner.WorkUnit``), the erasures of those ``done`` before
        the run counted as made; ``images_of``: the units' images when already counted
        (``erasebench.workload.count_images``)."""
        per_unit = count_images(todo).per_unit if images_of is None else images_of
        return cls({unit.run_id: per_unit[unit.run_id] for unit in todo},
                   {unit.run_id: unit.spec.task.name for unit in todo},
                   {unit.run_id: erasure_of(unit) for unit in todo},
                   made={erasure for unit in done if (erasure := erasure_of(unit)) is not None},
                   processes=processes)

    @classmethod
    def of_records(cls, units: Sequence[Any], record_of: Callable[[str], RunRecord | None],
                   processes: int, images_of: Mapping[str, int] | None = None,
                   held: Iterable[tuple[Hashable, ...]] = ()) -> RunProgress:
        """Where a run of ``units`` would start from: those recorded (``record_of``)
        finished, with their timings, and the erasures the edit cache holds (``held``,
        ``erasebench.cached_work.held_erasures``) made."""
        progress = cls.of_units(units, [], processes, images_of)
        progress.made |= set(held)
        progress.update(record_of)
        return progress

    def update(self, record_of: Callable[[str], RunRecord | None]) -> None:
        """Marks finished every unit to do that the results folder has recorded
        (``record_of``: :meth:`ResultStore.record`), noting the erasures they made."""
        for run_id in self.images_of.keys() - self.finished:
            record = record_of(run_id)
            if record is None:
                continue
            self.finished.add(run_id)
            timings = record.provenance.timings
            if timings is not None:
                task = self.task_of.get(run_id, "")
                self.timed_images[task] = self.timed_images.get(task, 0) + self.images_of[run_id]
                self.timed_seconds[task] = self.timed_seconds.get(task, 0.0) + (
                    timings.images + timings.scoring
                    + (0.0 if timings.erasure_trained else timings.erasure))
            erasure = self.erasure_of.get(run_id)
            if erasure is None:
                continue
            self.made.add(erasure)
            if timings is not None and timings.erasure_trained:
                self.training[erasure] = timings.erasure

    @property
    def total_images(self) -> int:
        return sum(self.images_of.values())

    def images_left_seconds(self) -> float:
        """Seconds, on one process, for the images the unfinished units ask for, each at
        its task's seconds per image so far (all tasks' for a task not yet timed)."""
        overall = sum(self.timed_seconds.values()) / max(1, sum(self.timed_images.values()))
        rate = {task: self.timed_seconds[task] / count
                for task, count in self.timed_images.items() if count}
        return sum(images * rate.get(self.task_of.get(run_id, ""), overall)
                   for run_id, images in self.images_of.items() if run_id not in self.finished)

    def training_left(self) -> float:
        """Seconds, on one process, to make the erasures the unfinished units still need."""
        by_eraser: dict[Hashable, list[float]] = {}
        for erasure, seconds in self.training.items():
            by_eraser.setdefault(erasure[0], []).append(seconds)
        if not by_eraser:
            return 0.0
        anyone = fmean(self.training.values())
        left = {self.erasure_of.get(run_id)
                for run_id in self.images_of.keys() - self.finished} - self.made
        return sum(fmean(by_eraser.get(erasure[0], [anyone]))
                   for erasure in left if erasure is not None)

    def line(self) -> str:
        """``3/40 units, 1,200/41,018 images, about 5 h 02 min left``."""
        total = self.total_images
        done = sum(self.images_of[run_id] for run_id in self.finished)
        text = f"{len(self.finished)}/{len(self.images_of)} units, {done:,}/{total:,} images"
        left = self.seconds_left(total - done, done)
        if left is not None:
            text += f", about {format_duration(left)} left"
        return text

    def seconds_left_by_timings(self) -> float:
        """The unfinished units' images and erasures at the recorded timings' pace, shared
        among the processes; 0 before any record with timings."""
        return (self.images_left_seconds() + self.training_left()) / self.processes

    def seconds_left(self, images_left: int, images_done: int) -> float | None:
        """None before the first unit is recorded and after the last."""
        if not images_done or not images_left:
            return None
        if self.timed_images:
            return self.seconds_left_by_timings()
        elapsed = self.clock() - self.started
        return elapsed * images_left / images_done if elapsed > 0 else None
