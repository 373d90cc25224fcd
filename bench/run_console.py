"""What ``erasebench run`` says as it goes: a line per unit that ends, with how far the
whole run is (``erasebench.run_progress``); as it starts, what the caches hold of its
work; and a warning, once, when the images it still has to draw and the erasures it
still has to make may not fit on the cache's disk (``erasebench.cache_space``)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from erasebench.cache_space import CacheRoom, CacheSpace

if TYPE_CHECKING:
    from rich.console import Console

    from erasebench.cached_work import CachedWork
    from erasebench.errors import OutOfDeviceMemory
    from erasebench.help_records import HelpRecord
    from erasebench.results import RunRecord, UnitTimings
    from erasebench.run_progress import RunProgress


@dataclass
class RunConsole:
    """The lines of one process of a run. ``progress`` is None in a helper process (the
    main process tells how far the run is, its helpers' and Ray actors' units too);
    ``record_of`` reads a unit's record from the results folder."""

    out: Console
    errors: Console
    record_of: Callable[[str], RunRecord | None]
    images_root: Path
    progress: RunProgress | None
    processes: int = 1
    helper: int = 0
    # Units recorded before the run started: the start line counts them, and each found
    # done again is not told (a rerun of 99 recorded units said 99 lines of "0.0 s").
    recorded_before: frozenset[str] = frozenset()
    clock: Callable[[], float] = time.monotonic
    last: float = field(init=False)
    cached: CachedWork | None = field(default=None, init=False)
    room: CacheRoom = field(init=False)

    def __post_init__(self) -> None:
        self.last = self.clock()
        self.room = CacheRoom(self.images_root, self.processes)

    def unit_ended(self, unit: Any, status: str) -> None:
        """``runner.Runner.on_unit``: a line for a unit this process ran (``done``), or,
        when it runs alone, found recorded by another run since the start (``skipped``);
        units another process holds (``busy``) or finished are its to report."""
        now = self.clock()
        alone = self.processes == 1 and not self.helper
        prefix = f"helper {self.helper} " if self.helper else ""
        if status == "done":
            so_far = ""
            if self.progress is not None:
                self.progress.update(self.record_of)
                so_far = f"; {self.progress.line()}"
            timings = self._unit_timings(unit)
            seconds = now - self.last if timings is None else \
                timings.erasure + timings.images + timings.scoring
            self.out.print(f"  {prefix}[done] {unit.describe()}  ({unit.run_id}, "
                           f"{seconds:.1f} s{_drawing(timings)}{_attacks(timings)})"
                           f"{so_far}", markup=False)
            self._look_at_room_again()
        elif status == "skipped" and alone and unit.run_id not in self.recorded_before:
            self.out.print(f"  [skipped] {unit.describe()}  ({unit.run_id}): recorded by "
                           "another run since this one started", markup=False)
        self.last = now

    def _unit_timings(self, unit: Any) -> UnitTimings | None:
        """Where a finished unit's time went, as its record has it (making or reading its
        erasure, drawing, scoring), None without: its seconds are not the time since this
        process's last line, which on Ray, where the driver tells of every actor's units, is
        only how long after the one before it this unit ended (0.0 s for units ending
        together)."""
        if self.progress is not None:  # its update() has just read the record
            return self.progress.finished_timings.get(unit.run_id)
        record = self.record_of(unit.run_id)
        return record.provenance.timings if record is not None else None

    def unit_helped(self, unit: Any, work: HelpRecord) -> None:
        """``runner.Runner.on_help``: this process (or a Ray actor), with no unit left to
        start, drew images for ``unit``, which another process runs and will record: its
        own and the original model's its scoring compares with; ``work`` says how many and
        in how many seconds, and whether it made the unit's erasure first. Its seconds,
        not the time since this process's last line: on Ray the driver hears an actor's
        help only as the actor ends it, for all the units it helped at once."""
        if work.images or work.erasure_made:
            prefix = f"helper {self.helper} " if self.helper else ""
            self.out.print(f"  {prefix}[helped] {unit.describe()}  ({unit.run_id}, "
                           f"{work.seconds:.1f} s): {_help(work)}",
                           markup=False)
        self.last = self.clock()

    def unit_out_of_memory(self, unit: Any, error: OutOfDeviceMemory) -> None:
        """``runner.Runner.on_out_of_memory``: ``unit`` did not fit its device's memory
        (``error`` says where, doing what); the run leaves it undone and goes on, and how
        far it is no longer counts it among the units to do."""
        if self.progress is not None:
            self.progress.leave_undone(unit.run_id)
        prefix = f"helper {self.helper} " if self.helper else ""
        self.errors.print(f"  {prefix}[out of memory] {error.unit} {error.account}; left "
                          "undone, the run goes on with the others", markup=False,
                          highlight=False)
        self.last = self.clock()

    def unit_training(self, unit: Any, text: str) -> None:
        """``runner.Runner.on_training``: what ``unit``'s erasure's training did with its
        checkpoint (resumed from one, saved one to stop)."""
        prefix = f"helper {self.helper} " if self.helper else ""
        self.out.print(f"  {prefix}[training] {unit.describe()}  ({unit.run_id}): {text}",
                       markup=False)

    def unit_lost(self, unit: Any, why: str, next_try: int) -> None:
        """``erasebench.ray_backend.run_on_ray``'s ``on_lost``: the actor running ``unit``
        died (``why``: where and how); the unit goes to a new actor for try ``next_try``."""
        from erasebench.ray_backend import TRIES_PER_UNIT  # Ray's runs alone need it

        self.errors.print(f"  [lost] {unit.describe()}  ({unit.run_id}): its Ray actor died "
                          f"({why}); running it again on a new actor, try {next_try} of "
                          f"{TRIES_PER_UNIT}", markup=False, highlight=False)

    def _look_at_room_again(self) -> None:
        """Images of a size a fresh cache held none of are priced once it has some: the
        room for what the unfinished units still draw and make, while the watch goes on."""
        if self.progress is None or self.cached is None or not self.room.watching:
            return
        made = self.progress.made
        edits_left = [size for erasure, size in self.cached.edit_bytes.items()
                      if erasure not in made]
        checkpoints_left = [size for erasure, size in self.cached.checkpoint_bytes.items()
                            if erasure not in made]
        self._warn_of(self.room.look(self.cached.by_size(self.progress.draws_left()),
                                     edits_left, checkpoints_left))

    def start_from_caches(self, cached: CachedWork, space: CacheSpace,
                          device: str | None = None) -> None:
        """At the run's start, what the caches hold (``erasebench.cached_work``), counted
        in the time left and said, and ``space``, what the images to draw and the erasures
        to make would take (their checkpoints as this run's processes train them). On
        Ray, ``device`` is the one the actor that looked runs units on: the pace of the
        units recorded on it before (``RunProgress.learn_pace_on``) sets the time left."""
        if self.progress is None:
            return
        space = dataclasses.replace(space, processes=self.processes)
        self.cached = cached
        self.progress.count_cached(cached)
        if device is not None:
            self.progress.learn_pace_on(device)
        pace = self.progress.start_line()
        self.out.print(f"  in the caches: {cached.held_line()}; "
                       f"{self.progress.images_to_draw:,} images to draw"
                       + (f"; {pace}" if pace else ""), markup=False)
        if (elsewhere := cached.elsewhere_line()) is not None:
            self.out.print(f"  training checkpoints: {elsewhere}", markup=False)
        self._warn_of(self.room.note(space))

    def _warn_of(self, space: CacheSpace | None) -> None:
        if space is not None:
            self.errors.print(f"warning: the cache ({self.images_root.parent}) may run out "
                              f"of room: {space.line()}; a run that fills the disk stops, "
                              "and resumes once there is room")


def _drawing(timings: UnitTimings | None) -> str:
    """``: drew 5,000 images at 4.3 images/s, batch 64`` for a unit that drew its images
    here (its pace, without the seconds it waited for other processes' images), nothing
    for one that read them all from the image cache: on a GPU the pace, and the batch out
    of memory may have halved, are what a run's hours follow."""
    if timings is None or not timings.images_drawn or timings.images_less_waiting() <= 0:
        return ""
    rate = timings.images_drawn / timings.images_less_waiting()
    batch = f", batch {timings.batch}" if timings.batch is not None else ""
    return f": drew {timings.images_drawn:,} images at {rate:.3g} images/s{batch}"


def _help(work: HelpRecord) -> str:
    """``made its erasure in 41.2 s, drew 1,200 images for it at 19.6 images/s``: what a
    helper did for a unit (``runner.Runner.help``)."""
    said = [f"made its erasure in {work.erasure:.1f} s"] if work.erasure_made else []
    if work.images:
        pace = (f" at {work.images / work.drawing_all:.3g} images/s"
                if work.drawing_all > 0 else "")
        said.append(f"drew {work.images:,} images for it{pace}")
    return ", ".join(said)


def _attacks(timings: UnitTimings | None) -> str:
    """``; 166.4 s attacking the model`` for a unit whose task attacked the edited model
    (the robustness task's recovery attack), nothing otherwise: most of such a unit's
    time, which no scorer took; ``(3 attacks read from the attack cache)`` after it where
    a run stopped before had made some."""
    if timings is None or not timings.attacking:
        return ""
    read = timings.attacks_read or 0
    kept = "" if not read else (
        f" ({read:,} attack{'s' if read > 1 else ''} read from the attack cache)")
    return f"; {timings.attacking:.1f} s attacking the model{kept}"
