"""``erasebench run --dry-run``: the plan of a run, said without writing anything (or,
without ``--check-cache``, loading a model): each unit with its state and images, the
images and erasures in all, and the time the units to do would take at the pace of the
units recorded before (or, none of them yet, of the folder's units of the same tasks)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from erasebench.results import RunRecord
    from erasebench.workload import PromptMemo


def print_plan(console: Console, units: Any, todo: Any, records: Any, processes: int,
               held: Any, space: Any, prompts: PromptMemo, helping: bool,
               device: str | None,
               others: Callable[[], Sequence[RunRecord]] = tuple) -> None:
    """Each unit with its state and images, then the images in all (erasebench.workload),
    what of the units to do the caches hold when checked (``held`` and ``space``,
    erasebench.cached_work.look_in_caches), and the time the units to do would take at
    the recorded units' pace (``others`` reads the results folder's records, where none
    of them is: erasebench.run_progress.units_like)."""
    from erasebench.workload import count_images

    todo_ids = {unit.run_id for unit in todo}
    # The units done first: an image they asked for is one the units to do need not draw.
    workload = count_images([unit for unit in units if unit.run_id not in todo_ids] + list(todo),
                            prompts)
    for unit in units:
        state = "todo" if unit.run_id in todo_ids else "done"
        console.print(f"{unit.run_id}  {state:4}  {unit.describe()}  "
                      f"{workload.per_unit[unit.run_id]:,} images", markup=False)
    left = count_images(todo, prompts)
    # The original model's images the scoring compares with, where no unit draws them.
    scoring = (f" and {workload.references:,} of the original model's that their scoring "
               "compares with" if workload.references else "")
    console.print(f"{_counted(len(units), 'work unit')}, {len(todo)} to do: {workload.asked:,} "
                  f"images asked for{scoring}, {workload.distinct:,} distinct "
                  f"({left.distinct:,} for the units to do), an image that several units ask "
                  f"for being drawn once, and {_counted(workload.edits, 'erasure')} "
                  f"({left.edits:,} for the units to do); the caches may hold some already.",
                  markup=False)
    for (model, steps, height, width), count in left.by_setting.items():
        size = f"{height}x{width} px" if height or width else "native size"
        console.print(f"  to draw with {model}: {count:,} images, {steps} steps, {size}",
                      markup=False)
    if held is not None:
        console.print(f"  in the caches: {held.held_line()}", markup=False)
        if (elsewhere := held.elsewhere_line()) is not None:
            console.print(f"  training checkpoints: {elsewhere}", markup=False)
        space = dataclasses.replace(space, processes=processes)  # a checkpoint apiece
        console.print(f"  cache space: {space.line()}", markup=False)
    if todo:
        console.print(time_left_line(units, records, processes, workload, held, helping,
                                     device, others), markup=False)


def _counted(count: int, noun: str) -> str:
    """``1 erasure``, ``88 erasures``."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def time_left_line(units: Any, records: Any, processes: int, workload: Any, held: Any,
                   helping: bool, device: str | None,
                   others: Callable[[], Sequence[RunRecord]] = tuple) -> str:
    """What the progress line of a run started now would say first: the units to do at
    the seconds per image drawn, read and scored and per erasure of the units recorded,
    what the caches hold (``held``, erasebench.cached_work.CachedWork) counted when
    checked (erasebench.run_progress); ``records``: the units' records, by run id;
    ``device``: the run's (erasebench.hardware), whose records set the pace where some
    were made on it (None: all, as on Ray)."""
    from erasebench.hardware import made_on
    from erasebench.run_progress import RunProgress, format_duration

    progress = RunProgress.of_records(units, records.get, processes, workload, held, device)
    timed = [record for record in records.values() if record.provenance.timings is not None]
    paced_by = "recorded unit{s} with timings"
    if not timed:  # none of the plan's units timed yet: the folder's of its tasks set the pace
        timed = progress.learn_pace_of_like(units, others(), device)
        paced_by = "unit{s} of these tasks recorded with other settings"
    progress.helping = helping
    progress.take_longest_first()  # as the run takes them
    if not timed:
        return ("  time left: no recorded unit has timings yet, so no pace to estimate it "
                "from; a run's progress line estimates it from its first finished unit on")
    seconds = progress.seconds_left_by_timings()
    to_draw = (f"{progress.images_to_draw:,} images to draw"
               + (" (the rest in the image cache)" if held is not None else
                  " (those no recorded unit asked for; --check-cache looks in the image cache)"))
    if seconds is None:
        return (f"  time left: {to_draw}, and no recorded unit with timings drew images, so "
                "no pace to price them at; a run's progress line estimates it once one has")
    units_paced, elsewhere = progress.paced_by_earlier, progress.paced_elsewhere
    devices = ", ".join(sorted({record.provenance.device for record in timed
                                if not elsewhere or made_on(record.provenance.device, device)}))
    left_out = f" ({elsewhere} recorded on other devices left out)" if elsewhere else ""
    return (f"  time left: about {format_duration(seconds)} on {processes} "
            f"process{'es' if processes > 1 else ''}, {to_draw}, at the pace of the "
            f"{units_paced} {paced_by.format(s='s' if units_paced > 1 else '')}, made "
            f"on {devices}{left_out}{progress.untimed_note()}")
