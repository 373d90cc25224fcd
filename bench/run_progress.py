"""How far a run is, and about how long is left, by the images its units ask for and the
erasures they still have to make.

A full reproduction runs for hours (``README.md``, "How long a full reproduction takes"),
and its units differ fivefold in size (an artist unit asks for 1,000 images, an
Imagenette split 5,000), so counting units says little about the time left. The
estimate here weighs each unit by the images it asks for (``erasebench.workload``) and
counts every unit recorded in the results folder since the run began: those of helper
processes, Ray actors and other runs on the same folder included. Their records say where
their time went (``erasebench.results.UnitTimings``).

- Images: a unit's images cost what drawing, reading and scoring them took per image in
  the finished units of its task (all tasks' for a task not seen yet): drawing by the
  images drawn (a concept-graph image of the miniature world took half as long again as
  an object image), reading by the images of units that drew none, both over their
  seconds less any spent waiting for images other processes drew (the schedule prices
  helping itself), scoring (COCO's FID and I2P's NudeNet score differently) by the
  images asked for. The images a unit to do will draw are those no unit before it asks
  for (``Workload.new_per_unit``), or, where the run's main process looked in the image
  cache (``erasebench.cached_work``: the local backend, ``--dry-run --check-cache``),
  those the cache does not hold either; the rest are read. Its scoring draws the original
  model's images it compares with (``Task.reference_prompts``) that neither it nor a unit
  before it draws, at the drawing pace, after its own images and shared alike.
- Attacks on the model (the robustness task's, ``UnitTimings.attacking``): by the images
  asked for too, over the units that made all theirs (all tasks' for a task none of whose
  units did). One that read some from the attack cache (``erasebench.attack_cache``:
  stopped half-way and resumed, or scored again) took less than a unit making all its own
  will; only its other scoring counts. Where the main process looked in the caches, the
  attacks the attack cache holds for a unit to do are taken off its price, at the seconds
  making them took (at most down to none: a unit scored again reads all its attacks).
- Erasures: making one can take longer than drawing a unit's images (an AGE erasure of
  SD 42 minutes on an H100, an Imagenette unit's 5,000 images 50), and only the first
  unit that needs it makes it; each erasure still to make counts at what its eraser's
  took so far, any eraser's for one not yet seen, which the estimate then names. Erasures
  the edit cache holds count as made where the main process looked.

A resumed run (stopped and started again, a Slurm job requeued) also takes the pace of
the units recorded before it (``RunProgress.learn_pace``), and so says the time left as
it starts rather than after its first unit, which on SD can take an hour.

Both are spread over the run's processes as they take the units, longest first
(``RunProgress.take_longest_first``, ``RunProgress._schedule``). Records without timings
(written before they were kept) leave only the wall time since the run began, over the
images done. Still rough: which unit draws an image two units to do ask for depends on
which process gets there first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from statistics import fmean
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from erasebench.hardware import made_on
from erasebench.results import RunRecord, UnitTimings
from erasebench.workload import Workload, count_images, erasure_of

if TYPE_CHECKING:  # the cache check loads the generator, which a progress line needs not
    from erasebench.cached_work import CachedWork


# The task (and the erasures) that stand for a pace assumed rather than timed
# (RunProgress.assume_pace): no unit's task, so every task's images are priced at it.
ASSUMED = "(assumed)"


def format_duration(seconds: float) -> str:
    """``42 s``, ``7 min``, ``3 h 05 min``: coarse enough to read at a glance."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _rate(seconds: Mapping[str, float], count: Mapping[str, int], task: str) -> float | None:
    """Seconds per item of ``task``, else of all tasks together; None with no items yet."""
    if count.get(task):
        return seconds[task] / count[task]
    total = sum(count.values())
    return sum(seconds.values()) / total if total else None


def _no_price(erasure: tuple[Hashable, ...]) -> float:
    return 0.0


def _add(totals: dict[str, Any], task: str, amount: float) -> None:
    totals[task] = totals.get(task, 0) + amount


@dataclass(eq=False)
class _Running:
    """A unit being run in :meth:`RunProgress._schedule`: its drawing begins at
    ``begins`` (after an erasure it waits for), takes ``drawing`` seconds of one process,
    shared by ``drawers`` processes (its own and helpers), then its own process's ``rest``
    (reading, scoring) ends it at ``ends``."""

    begins: float
    drawing: float
    rest: float
    drawers: int = 1
    ends: float | None = None

    def next_event(self, now: float) -> float:
        """When this unit next changes: its drawing begins or ends, or it ends."""
        if self.ends is not None:
            return self.ends
        if self.begins > now:
            return self.begins
        return now + self.drawing / self.drawers

    def advance(self, now: float, until: float) -> int:
        """Goes on from ``now`` to ``until`` (no later than :meth:`next_event`); returns
        the processes it frees: its helpers once its drawing is done, its own once it
        ends (at ``until``, exactly: it is the earliest of the units' next events)."""
        freed = 0
        if self.ends is None and self.begins <= until:
            self.drawing -= (until - max(now, self.begins)) * self.drawers
            if self.drawing <= DONE_WITHIN * self.drawers:  # done, but for rounding
                self.drawing, self.ends = 0.0, until + self.rest
                freed, self.drawers = self.drawers - 1, 1
        if self.ends is not None and self.ends <= until:
            freed += 1
        return freed


# Seconds of drawing left that _Running counts as none: float rounding of shared drawing.
DONE_WITHIN = 1e-6


# Marks the fields of RunProgress that hold the pace learnt from timings, which
# RunProgress.learn_pace_on sets back to their defaults before learning it again.
PACE = {"pace": True}


@dataclass
class RunProgress:
    """The units to do (run id -> images each asks for) and which of them are recorded.

    ``task_of`` names each unit's task, ``erasure_of`` the erasure it needs
    (``erasebench.workload.erasure_of``: its eraser's name first; None for none), ``made``
    the erasures units recorded before the run made, ``processes`` how many processes
    share the run, and ``draws_of`` how many of its images each unit draws (the rest it
    reads from the image cache; all for a unit not named), ``references_of`` how many of
    the original model's its scoring draws (none for a unit not named).
    """

    images_of: Mapping[str, int]
    task_of: Mapping[str, str] = field(default_factory=dict)
    erasure_of: Mapping[str, tuple[Hashable, ...] | None] = field(default_factory=dict)
    made: set[tuple[Hashable, ...]] = field(default_factory=set)
    processes: int = 1
    draws_of: dict[str, int] = field(default_factory=dict)
    references_of: dict[str, int] = field(default_factory=dict)
    # run id -> the seconds of the attacks on its edited model the attack cache holds for
    # it (none for a unit not named), which it reads rather than makes
    attacks_held: dict[str, float] = field(default_factory=dict)
    helping: bool = True  # processes left without a unit help draw (Runner.help)
    clock: Callable[[], float] = time.monotonic
    started: float = field(init=False)
    finished: set[str] = field(default_factory=set, init=False)
    # Units the run left undone (out of device memory): not done, and no longer to do.
    undone: set[str] = field(default_factory=set, init=False)
    training: dict[tuple[Hashable, ...], float] = field(default_factory=dict, init=False,
                                                        metadata=PACE)
    # Per task, over the finished units whose records have timings: images asked for,
    # drawn, and read by units that drew none, and the seconds each took; "other" is
    # scoring and reading an erasure another unit made, and scoring_drawn the images the
    # scoring drew but for attacked ones (:meth:`_other_rate`).
    asked: dict[str, int] = field(default_factory=dict, init=False, metadata=PACE)
    other_seconds: dict[str, float] = field(default_factory=dict, init=False, metadata=PACE)
    scoring_drawn: dict[str, int] = field(default_factory=dict, init=False, metadata=PACE)
    # Per task, the seconds the scoring spent attacking the model and the images asked of
    # the units whose attacks were all made, none read from the attack cache.
    attacking_seconds: dict[str, float] = field(default_factory=dict, init=False,
                                                metadata=PACE)
    attacked: dict[str, int] = field(default_factory=dict, init=False, metadata=PACE)
    drawn: dict[str, int] = field(default_factory=dict, init=False, metadata=PACE)
    drawing_seconds: dict[str, float] = field(default_factory=dict, init=False, metadata=PACE)
    read: dict[str, int] = field(default_factory=dict, init=False, metadata=PACE)
    reading_seconds: dict[str, float] = field(default_factory=dict, init=False, metadata=PACE)
    # The records learnt from (learn_pace), and those of other devices left out.
    paced_by_earlier: int = field(default=0, init=False, metadata=PACE)
    paced_elsewhere: int = field(default=0, init=False, metadata=PACE)
    paced_on: str | None = field(default=None, init=False)  # the device they were made on
    # Whether they are units of the plan's tasks with other settings (learn_pace_of_like).
    paced_by_like: bool = field(default=False, init=False)
    # What learn_pace and update read, kept to take the pace again (learn_pace_on): per
    # unit recorded before the run, (unit, images, timings, device); per finished unit of
    # the run, its timings.
    earlier: list[tuple[Any, int, UnitTimings, str]] = field(default_factory=list, init=False)
    finished_timings: dict[str, UnitTimings] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()
        self.made = set(self.made)
        self.draws_of = dict(self.draws_of)
        self.references_of = dict(self.references_of)
        self.attacks_held = dict(self.attacks_held)

    @classmethod
    def of_units(cls, todo: Sequence[Any], done: Sequence[Any], processes: int,
                 workload: Workload | None = None) -> RunProgress:
        """For the units to do (``runner.WorkUnit``), the erasures of those ``done`` before
        the run counted as made, and their images as drawn; ``workload``: the done and
        then the todo units already counted (``erasebench.workload.count_images``)."""
        workload = count_images([*done, *todo]) if workload is None else workload
        return cls({unit.run_id: workload.per_unit[unit.run_id] for unit in todo},
                   {unit.run_id: unit.spec.task.name for unit in todo},
                   {unit.run_id: erasure_of(unit) for unit in todo},
                   made={erasure for unit in done if (erasure := erasure_of(unit)) is not None},
                   processes=processes,
                   draws_of={unit.run_id: workload.new_per_unit[unit.run_id] for unit in todo},
                   references_of={unit.run_id: workload.references_per_unit[unit.run_id]
                                  for unit in todo})

    @classmethod
    def of_records(cls, units: Sequence[Any], record_of: Callable[[str], RunRecord | None],
                   processes: int, workload: Workload | None = None,
                   cached: CachedWork | None = None, device: str | None = None
                   ) -> RunProgress:
        """Where a run of ``units`` would start from, as the run itself sets out: those
        recorded (``record_of``) done, their pace learnt (:meth:`learn_pace`, on
        ``device`` where some were made on it), and what the caches hold (``cached``,
        ``erasebench.cached_work``) counted; ``workload`` as :meth:`of_units` takes it."""
        records = {unit.run_id: record_of(unit.run_id) for unit in units}
        done = [unit for unit in units if records[unit.run_id] is not None]
        todo = [unit for unit in units if records[unit.run_id] is None]
        progress = cls.of_units(todo, done, processes, workload)
        if cached is not None:
            progress.count_cached(cached)
        progress.learn_pace(done, records.__getitem__, device)
        return progress

    def count_cached(self, cached: CachedWork) -> None:
        """The erasures, images and attacks the caches hold (``erasebench.cached_work``) as
        made."""
        self.made |= cached.erasures_held
        self.draws_of.update(cached.to_draw)
        self.references_of.update(cached.references_to_draw)
        self.attacks_held.update({run_id: held.seconds
                                  for run_id, held in cached.attacks_held.items()})

    def update(self, record_of: Callable[[str], RunRecord | None]) -> None:
        """Marks finished every unit to do that the results folder has recorded
        (``record_of``: :meth:`ResultStore.record`), noting the erasures they made."""
        for run_id in self.images_of.keys() - self.finished:
            record = record_of(run_id)
            if record is not None:
                self.finished.add(run_id)
                timings = record.provenance.timings
                if timings is not None:
                    self.finished_timings[run_id] = timings
                self._note_finished(run_id, timings)

    def leave_undone(self, run_id: str) -> None:
        """``run_id`` ran out of device memory, and the run goes on without it
        (``runner.Runner.run``): its images and erasure no longer count among those left,
        lest the line say time is left once every other unit is done."""
        self.undone.add(run_id)

    def _open(self) -> list[str]:
        """The units neither finished nor left undone, in the run's order."""
        return [run_id for run_id in self.images_of
                if run_id not in self.finished and run_id not in self.undone]

    def _note_finished(self, run_id: str, timings: UnitTimings | None) -> None:
        if timings is not None:
            self._note_timings(run_id, timings)
        erasure = self.erasure_of.get(run_id)
        if erasure is None:
            return
        self.made.add(erasure)
        if timings is not None and timings.erasure_trained:
            self.training[erasure] = timings.erasure

    def learn_pace(self, done: Sequence[Any], record_of: Callable[[str], RunRecord | None],
                   device: str | None = None) -> int:
        """Takes the pace of the units recorded before the run (``done``,
        ``runner.WorkUnit``; their records read by ``record_of``) as that of its own
        finished units: a resumed run (a Slurm job requeued, a run stopped and started
        again) knows the time left from its start, not after its first unit, which can
        take an hour. Their erasures are priced at what making them took wherever it was
        made. With ``device`` (the run's, as ``erasebench.hardware.describe_device`` names
        it), where some records were made on it only those are taken: a job requeued onto
        an A100 would otherwise be priced at the H100's pace (:attr:`paced_elsewhere`
        counts those left out). Returns how many records were taken."""
        self.earlier = [(unit, record.image_count, timings, record.provenance.device)
                        for unit in done if (record := record_of(unit.run_id)) is not None
                        and (timings := record.provenance.timings) is not None]
        return self._take_earlier(device)

    def learn_pace_of_like(self, units: Sequence[Any], others: Sequence[RunRecord],
                           device: str | None = None) -> list[RunRecord]:
        """Where none of the plan's ``units`` was recorded with timings: the pace of the
        results folder's records (``others``) of units like them (:func:`units_like`), as
        :meth:`learn_pace` takes it; a new eraser's or a changed setting's run is priced
        from its start, and its units taken longest first. Returns the records taken."""
        like = units_like(units, others)
        records = {unit.run_id: record for unit, record in like}
        if not self.learn_pace([unit for unit, _ in like], records.get, device):
            return []
        self.paced_by_like = True
        return list(records.values())

    def _take_earlier(self, device: str | None) -> int:
        timed = self.earlier
        if device is not None and any(made_on(recorded, device) for *_, recorded in timed):
            here = [entry for entry in timed if made_on(entry[3], device)]
            self.paced_elsewhere, timed = len(timed) - len(here), here
            self.paced_on = device
        for unit, image_count, timings, _ in timed:
            self.paced_by_earlier += 1
            self._note(unit.spec.task.name, image_count, timings)
            erasure = erasure_of(unit)
            # Made here: the unit's seconds for it, its file's writing too; else what
            # making it took where it was made, as its file keeps it.
            made = timings.erasure if timings.erasure_trained else timings.training
            if erasure is not None and made is not None:
                self.training.setdefault(erasure, made)
        return self.paced_by_earlier

    def learn_pace_on(self, device: str) -> None:
        """Takes the pace again, of the units recorded before the run (those
        :meth:`learn_pace` took) on ``device`` only, where some were made on it: a Ray
        run's driver learns the device its actors run on from the first of them, once it
        has started, when some of the run's units may have finished; what they took is
        noted again. No record is read again."""
        if self.paced_on == device:
            return
        for spec in fields(self):
            if spec.metadata.get("pace"):
                fresh = spec.default if spec.default_factory is MISSING else spec.default_factory()
                setattr(self, spec.name, fresh)
        self._take_earlier(device)
        for run_id, timings in self.finished_timings.items():
            self._note_finished(run_id, timings)

    def start_line(self) -> str:
        """At a resumed run's start: ``about 3 h 05 min left at the pace of the 85 units
        recorded before`` (with :meth:`untimed_note`); "" before any unit was recorded
        with timings, or when none of them drew images and some are to draw."""
        seconds = self.seconds_left_by_timings() if self.paced_by_earlier else None
        if not seconds:
            return ""
        units, elsewhere = self.paced_by_earlier, self.paced_elsewhere
        where = (f" on {self.paced_on} ({elsewhere} recorded on other devices left out)"
                 if elsewhere else "")
        like = " of these tasks" if self.paced_by_like else ""
        settings = " with other settings" if self.paced_by_like else ""
        return (f"about {format_duration(seconds)} left at the pace of the {units} "
                f"unit{'s' if units > 1 else ''}{like} recorded before{settings}{where}"
                f"{self.untimed_note()}")

    def assume_pace(self, seconds_per_image: float,
                    erasure_seconds: Mapping[str, float]) -> None:
        """Prices the units at a pace measured elsewhere, as if units had run at it: each
        image drawn in ``seconds_per_image`` (reading and scoring at no cost), each
        erasure of an eraser named in ``erasure_seconds`` in its seconds (others at their
        mean). ``benchmarks/reproduction_hours.py`` prices a full reproduction so."""
        _add(self.drawn, ASSUMED, 1)
        _add(self.drawing_seconds, ASSUMED, seconds_per_image)
        for name, seconds in erasure_seconds.items():
            self.training[(name, ASSUMED)] = seconds

    def _note_timings(self, run_id: str, timings: UnitTimings) -> None:
        self._note(self.task_of.get(run_id, ""), self.images_of[run_id], timings)

    def _note(self, task: str, images: int, timings: UnitTimings) -> None:
        _add(self.asked, task, images)
        drawn = timings.own_images_drawn(images)
        if drawn:
            _add(self.drawn, task, drawn)
            _add(self.drawing_seconds, task, timings.images_less_waiting())
        else:
            _add(self.read, task, images)
            _add(self.reading_seconds, task, timings.images_less_waiting())
        attacking = timings.attacking or 0.0  # None: a record with the attacks in scoring
        _add(self.other_seconds, task, timings.scoring - attacking
             + (0.0 if timings.erasure_trained else timings.erasure))
        # The images drawn with an attacked conditioning stay in the scoring's pace: every
        # unit of the task draws its own, in proportion to the images it asks for.
        _add(self.scoring_drawn, task,
             (timings.scoring_drawn or 0) - (timings.attacked_drawn or 0))
        if not timings.attacks_read:
            _add(self.attacking_seconds, task, attacking)
            _add(self.attacked, task, images)

    def _other_rate(self, task: str) -> float:
        """Seconds per image asked of ``task``'s scoring and reading erasures (of all tasks
        together for one not timed yet), its attacks on the model apart
        (:meth:`_attack_rate`), less the images the scoring drew, but for those drawn
        with an attacked conditioning, which every unit draws, priced at their task's
        drawing pace (the same model and settings draw them). Those are mostly the original
        model's reference images, drawn once by the first unit of a task that scores
        against them (and priced there, ``references_of``): counted in the scoring pace,
        its other units were priced as drawing them too (artist's 1,000 at 4 images/s:
        250 s a unit on top of ~10 s of scoring). `erasebench timings` leaves them out of
        the scoring's share alike, as it does the robustness task's attacked images."""
        itself = {name: max(0.0, seconds - self.scoring_drawn.get(name, 0)
                            * (_rate(self.drawing_seconds, self.drawn, name) or 0.0))
                  for name, seconds in self.other_seconds.items()}
        return _rate(itself, self.asked, task) or 0.0

    def _attack_rate(self, task: str) -> float:
        """Seconds per image asked of ``task``'s attacks on the model, over the units that
        made all theirs (module docstring)."""
        return _rate(self.attacking_seconds, self.attacked, task) or 0.0

    @property
    def total_images(self) -> int:
        return sum(self.images_of.values())

    def draws_left(self) -> dict[str, int]:
        """The unfinished units' images still to draw, by run id: their own and those their
        scoring compares with."""
        return {run_id: self.draws_of.get(run_id, self.images_of[run_id])
                + self.references_of.get(run_id, 0) for run_id in self._open()}

    @property
    def images_to_draw(self) -> int:
        """Of the unfinished units' images, those still to draw."""
        return sum(self.draws_left().values())

    def images_left_seconds(self) -> float | None:
        """Seconds, on one process, for the images the unfinished units ask for: those to
        draw, read and score, each at its task's seconds per image so far (all tasks' for
        a task not yet timed); None when some are to draw and no unit has drawn any yet."""
        seconds = self._unit_seconds()
        return None if seconds is None else sum(seconds.values())

    def _unit_seconds(self) -> dict[str, float] | None:
        """Each unfinished unit's images priced as :meth:`images_left_seconds` says, in the
        units' order; None as there."""
        parts = self._unit_parts()
        return None if parts is None else {run_id: drawing + rest
                                           for run_id, (drawing, rest) in parts.items()}

    def _unit_parts(self) -> dict[str, tuple[float, float]] | None:
        """Each unfinished unit's seconds for the images it draws, its own and the original
        model's its scoring compares with, which idle processes may share (``Runner.help``),
        and for the rest, reading and scoring, which its own process does; in the units'
        order, None as :meth:`images_left_seconds` says."""
        left = self._open()
        rates = {task: (_rate(self.drawing_seconds, self.drawn, task),
                        _rate(self.reading_seconds, self.read, task) or 0.0,
                        self._other_rate(task), self._attack_rate(task))
                 for task in {self.task_of.get(run_id, "") for run_id in left}}
        parts = {}
        for run_id in left:
            images = self.images_of[run_id]
            draws = self.draws_of.get(run_id, images)
            references = self.references_of.get(run_id, 0)
            drawing, reading, other, attacking = rates[self.task_of.get(run_id, "")]
            if (draws or references) and drawing is None:
                return None
            # The attacks the attack cache holds for it are read, not made.
            attacks = max(0.0, images * attacking - self.attacks_held.get(run_id, 0.0))
            parts[run_id] = ((draws + references) * (drawing or 0.0),
                             (images - draws) * reading + images * other + attacks)
        return parts

    def _erasures_left(self) -> set[tuple[Hashable, ...]]:
        left = {self.erasure_of.get(run_id) for run_id in self._open()} - self.made
        return {erasure for erasure in left if erasure is not None}

    def _training_price(self) -> Callable[[tuple[Hashable, ...]], float]:
        """Seconds to make an erasure: what its eraser's took so far, any eraser's for one
        not yet timed, 0 before any was."""
        by_eraser: dict[Hashable, list[float]] = {}
        for erasure, seconds in self.training.items():
            by_eraser.setdefault(erasure[0], []).append(seconds)
        if not by_eraser:
            return _no_price
        anyone = fmean(self.training.values())
        return lambda erasure: fmean(by_eraser.get(erasure[0], [anyone]))

    def training_left(self) -> float:
        """Seconds, on one process, to make the erasures the unfinished units still need."""
        price = self._training_price()
        return sum(price(erasure) for erasure in self._erasures_left())

    def take_longest_first(self) -> list[str]:
        """Puts the unfinished units in the order the run hands them out, the longest first,
        and returns it: on many processes a long unit started late is the run's tail
        (longest first makes a full reproduction on 16 to 64 GPUs 1.08-1.24x shorter than
        the plan's order, ``benchmarks/reproduction_hours.py``). A unit's length is its
        images at the pace so far, and the making of its erasure where it is the longest
        of the units needing one (which, first, makes it; the others read it); with no
        pace yet, the images it draws (the erasures' length is not known before one was
        made). Units as long keep the plan's order."""
        left = self._open()
        seconds = self._unit_seconds()
        price = self._training_price()
        if seconds is None:
            draws = self.draws_left()
            seconds = {run_id: float(draws[run_id]) for run_id in left}
            price = _no_price
        length = dict(seconds)
        maker: dict[tuple[Hashable, ...], str] = {}  # the longest unit needing it makes it
        for run_id in left:
            erasure = self.erasure_of.get(run_id)
            if erasure is not None and erasure not in self.made and (
                    erasure not in maker or seconds[run_id] > seconds[maker[erasure]]):
                maker[erasure] = run_id
        for erasure, run_id in maker.items():
            length[run_id] += price(erasure)
        order = sorted(left, key=lambda run_id: -length[run_id])
        ended = [run_id for run_id in self.images_of if run_id not in left]
        self.images_of = {run_id: self.images_of[run_id] for run_id in [*order, *ended]}
        return order

    def _schedule(self, parts: Mapping[str, tuple[float, float]]) -> float:
        """Seconds until the last of the units ends (``parts``: each unit's drawing and
        rest, :meth:`_unit_parts`), taken in order by the run's processes, each the next
        as it ends one (the local processes' locks, the Ray driver's hand-out): the first
        unit needing an erasure not made makes it, and a unit needing one another process
        is making waits for it (``Runner.edit``). Once no unit is left to start, with
        ``helping``, a process that ends its unit joins the first unit still drawing (one
        whose drawing has begun before one waiting for its erasure) and shares its drawing
        until that is done (``Runner.help``). Unlike the total over the processes, this
        holds a long unit's erasure and its rest: without helping a full reproduction's 128
        units on 64 GPUs take 1.4x their total over 64 (``benchmarks/README.md``)."""
        price = self._training_price()
        waiting = list(parts)[::-1]  # popped from the end: the first unit first
        made_at: dict[tuple[Hashable, ...], float] = {}
        running: list[_Running] = []
        now = last = 0.0
        free = max(1, self.processes)
        while True:
            while free and waiting:
                run_id = waiting.pop()
                drawing, rest = parts[run_id]
                begins = now
                erasure = self.erasure_of.get(run_id)
                if erasure is not None and erasure not in self.made:
                    made_at.setdefault(erasure, now + price(erasure))
                    begins = max(now, made_at[erasure])
                running.append(_Running(begins, drawing, rest))
                free -= 1
            drawing_left = [unit for unit in running if unit.ends is None and unit.drawing]
            if free and not waiting and self.helping and drawing_left:
                begun = [unit for unit in drawing_left if unit.begins <= now]
                (begun or drawing_left)[0].drawers += free
                free = 0
            if not running:
                return last
            until = min(unit.next_event(now) for unit in running)
            for unit in running:
                free += unit.advance(now, until)
            ended = [unit for unit in running if unit.ends is not None and unit.ends <= until]
            if ended:
                last = until
            now, running = until, [unit for unit in running if unit not in ended]

    def untimed_erasers(self) -> list[str]:
        """The erasers with erasures still to make and none timed yet, whose erasures the
        time left prices at the other erasers' pace: an AGE erasure of SD takes 42
        minutes on an H100, a UCE one a second."""
        timed = {erasure[0] for erasure in self.training}
        return sorted({str(erasure[0]) for erasure in self._erasures_left()} - timed)

    def untimed_note(self) -> str:
        """`` (erasures of age, mace priced at other erasers' pace)``, `` (erasures of
        age not counted: none timed yet)`` before any erasure is, or nothing."""
        names = ", ".join(self.untimed_erasers())
        if not names:
            return ""
        if not self.training:
            return f" (erasures of {names} not counted: none timed yet)"
        return f" (erasures of {names} priced at other erasers' pace)"

    def line(self) -> str:
        """``3/40 units, 1,200/41,018 images, about 5 h 02 min left``, with
        :meth:`untimed_note`; ``, 1 left undone`` after the images where units ran out of
        memory (:meth:`leave_undone`)."""
        total = self.total_images
        done = sum(self.images_of[run_id] for run_id in self.finished)
        text = f"{len(self.finished)}/{len(self.images_of)} units, {done:,}/{total:,} images"
        undone = self.undone - self.finished
        if undone:
            text += f", {len(undone)} left undone"
        left = self.seconds_left(sum(self.images_of[run_id] for run_id in self._open()), done)
        if left is not None:
            text += f", about {format_duration(left)} left{self.untimed_note()}"
        return text

    def seconds_left_by_timings(self) -> float | None:
        """The unfinished units' images and erasures at the recorded timings' pace, the
        units spread over the processes in order (:meth:`_schedule`); 0 before any record
        with timings, None while images are to draw and no recorded unit drew any."""
        parts = self._unit_parts()
        return None if parts is None else self._schedule(parts)

    def seconds_left(self, images_left: int, images_done: int) -> float | None:
        """None before the first unit is recorded and after the last."""
        if not images_done or not images_left:
            return None
        if self.asked:
            return self.seconds_left_by_timings()
        elapsed = self.clock() - self.started
        return elapsed * images_left / images_done if elapsed > 0 else None


def units_like(units: Any, others: Sequence[RunRecord]) -> list[tuple[Any, RunRecord]]:
    """Of ``others``, the records with timings of units of the plan's tasks, models and
    generation settings but other eraser settings or task options (a new eraser, an
    eraser's setting changed), each with the unit :meth:`RunProgress.learn_pace` takes
    (its run id and spec, and whether its eraser makes edits): their seconds per image
    are those of the plan's images, their erasures' those of the same eraser."""
    from erasebench.registry import ERASERS

    def kind(spec: Any) -> tuple[str, str, str]:
        return spec.task.name, spec.model.canonical(), spec.generation.canonical()

    wanted = {kind(unit.spec) for unit in units}
    planned = {unit.run_id for unit in units}
    like = []
    for record in others:
        spec = record.spec
        if (record.run_id in planned or record.provenance.timings is None
                or kind(spec) not in wanted):
            continue
        makes_edits = spec.eraser.name not in ERASERS or ERASERS.get(spec.eraser.name).makes_edits
        eraser = SimpleNamespace(makes_edits=makes_edits)
        like.append((SimpleNamespace(run_id=record.run_id, spec=spec, eraser=eraser), record))
    return like
