"""The body of ``erasebench run`` once its work units are planned: which are done (each
record read once), where the units to do run (this machine's processes, or a Ray
cluster's actors) and how many at a time, the dry run's plan, the order the units are
taken in, the run with its lines, its closing line and the leaderboard."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from erasebench.errors import OutOfDeviceMemory, UnitsLeftUndone, UnknownNameError, UserError

if TYPE_CHECKING:
    from rich.console import Console

    from erasebench.run_console import RunConsole
    from erasebench.runner import Runner, RunSummary, WorkUnit
    from erasebench.workload import PromptMemo

BACKENDS = ["local", "ray"]


@dataclass(frozen=True)
class RunSettings:
    """The options of ``erasebench run`` that say how its units run, beyond those its
    :class:`~erasebench.runner.Runner` holds (``erasebench run --help`` documents each)."""

    backend: str = "local"
    ray_address: str | None = None
    workers: int | None = None
    device: str = "auto"  # as asked for; ``Runner.device`` is this machine's resolution
    dry_run: bool = False
    check_cache: bool = False
    report_after: bool = True
    leaderboard: Path | None = None
    # This invocation's arguments, which `--workers` helpers are started with.
    argv: tuple[str, ...] = ()

    def leaderboard_path(self, results_dir: str | os.PathLike[str]) -> Path:
        """Where the leaderboard is written after the run: ``leaderboard``, else
        ``leaderboard.md`` beside the results folder."""
        return self.leaderboard or Path(results_dir).parent / "leaderboard.md"


@dataclass(frozen=True)
class Placement:
    """Where the units to do run: on ``device`` (each actor's, on Ray), ``count``
    processes or actors at a time; on a Ray cluster whose GPUs the actors hold are of one
    kind, that kind as Ray names it (``gpu_kind``: "H100")."""

    device: str
    count: int
    gpu_kind: str | None = None


def run_units(units: list[WorkUnit], runner: Runner, settings: RunSettings,
              console: Console, errors: Console) -> None:
    """Runs the units not yet recorded in ``runner``'s results folder (or, with
    ``settings.dry_run``, says what a run would do), on ``console`` and ``errors``."""
    # Bad options are refused before the results folder is read.
    if settings.backend not in BACKENDS:
        raise UnknownNameError("backend", settings.backend, BACKENDS)
    if settings.check_cache and not settings.dry_run:
        raise UserError("--check-cache goes with --dry-run (a run looks in the caches itself)")
    runner.store.check_schema()
    # Each unit's record read once: for what is done, and for the pace of a resumed run.
    records = {unit.run_id: record for unit in units
               if (record := runner.store.record(unit.run_id)) is not None}
    done = [unit for unit in units if unit.run_id in records]
    todo = [unit for unit in units if unit.run_id not in records]
    # What the first unit would stop on, before a worker or Ray starts (and in a dry run):
    # a unit's prompts (a prompt file read and checked, kept for the run's count), then
    # its base model.
    prompts: PromptMemo = {}  # each request's prompts, built once for every count and check
    from erasebench.workload import prompts_of_unit

    for unit in todo:
        prompts_of_unit(unit, prompts)
    _check_base_models(todo, settings.backend)
    where = place_units(runner, todo, settings, errors)
    from erasebench.hardware import describe_device

    # The pace of units recorded on the run's kind of device sets the time left: this
    # machine's, or on Ray the cluster's kind of GPU where it has one, until the driver
    # learns its actors' device from the first (RunConsole.start_from_caches).
    if settings.backend != "ray":
        device_kind = describe_device(runner.device)
    elif where.gpu_kind is not None:
        from erasebench.ray_backend import recorded_device_of_kind

        device_kind = recorded_device_of_kind(
            (record.provenance.device for record in records.values()), where.gpu_kind)
    else:
        device_kind = None
    if settings.dry_run:
        held = space = None
        if settings.check_cache:
            from erasebench.cached_work import look_in_caches

            held, space = look_in_caches(todo, runner, prompts)
        from erasebench.dry_run import print_plan

        print_plan(console, units, todo, records, where.count, held, space, prompts,
                   runner.help_others, device_kind, others=runner.store.records)
        return
    from erasebench import workers as local
    from erasebench.run_progress import RunProgress
    from erasebench.workload import count_images

    local.use_cpu_threads(runner.device)
    helper = local.helper_number()
    if not helper:
        _preflight(todo)
    pace = RunProgress.of_units(todo, done, processes=where.count,
                                workload=count_images([*done, *todo], prompts))
    pace.helping = runner.help_others
    if not pace.learn_pace(done, records.get, device_kind):
        pace.learn_pace_of_like([*done, *todo], runner.store.records(), device_kind)
    # Every process (helpers too, from the same records) takes the units longest first.
    rank = {run_id: place for place, run_id in enumerate(pace.take_longest_first())}
    todo.sort(key=lambda unit: rank[unit.run_id])
    units = [*done, *todo]
    # The main process tells how far the whole run is (helpers' and actors' units too).
    progress = None if helper else pace
    if progress is not None:
        recorded = f", {len(done)} recorded before" if done else ""
        console.print(f"{len(units)} work unit{'s' if len(units) != 1 else ''} ({len(todo)} to "
                      f"do{recorded}, asking for {progress.total_images:,} images; {where.count} "
                      f"process{'es' if where.count > 1 else ''}); results in "
                      f"{runner.results_dir}/")
        _warn_of_uncommitted_changes(errors)
        _note_drawn_otherwise(todo, console)
    started = time.monotonic()
    from erasebench.run_console import RunConsole

    lines = RunConsole(console, errors, runner.store.record, runner.images.root, progress,
                       processes=where.count, helper=helper,
                       recorded_before=frozenset(unit.run_id for unit in done))
    runner.on_unit, runner.on_help = lines.unit_ended, lines.unit_helped
    runner.on_out_of_memory = lines.unit_out_of_memory
    runner.on_training = lines.unit_training
    if settings.backend == "ray":
        summary = _run_on_ray(todo, runner, settings, where, lines)
        console.print(f"done {len(summary.done)} on Ray, {len(units) - len(todo)} already "
                      f"done, busy (another run) {len(summary.busy)}"
                      f"{_out_of_memory(summary)}{_helped(summary)}; "
                      f"{time.monotonic() - started:.0f} s")
    else:
        summary = _run_here(units, todo, runner, settings, where, lines, prompts, errors)
        if helper:
            return
        by_others = (len(todo) - len(summary.done) - len(summary.busy)
                     - len(summary.out_of_memory))
        console.print(f"done {len(summary.done)} here, {max(0, by_others)} by helper or other "
                      f"processes, {len(units) - len(todo)} already done, busy (another run) "
                      f"{len(summary.busy)}{_out_of_memory(summary)}{_helped(summary)}; "
                      f"{time.monotonic() - started:.0f} s")
    if settings.report_after:
        from erasebench.report import report_said

        console.print(report_said(runner.results_dir,
                                  settings.leaderboard_path(runner.results_dir),
                                  runner.show_unsafe))
    if summary.out_of_memory:
        raise _left_undone(list(summary.out_of_memory.values()), len(todo),
                           settings.report_after)


def _left_undone(shortages: list[OutOfDeviceMemory], todo: int, reported: bool
                 ) -> UnitsLeftUndone:
    """The run's last word on the units it went on past, out of device memory: which, and
    what would let the same command do them."""
    first = shortages[0]
    named = ", ".join(short.unit for short in shortages[:3]) + (
        f" and {len(shortages) - 3} more" if len(shortages) > 3 else "")
    notes = "; ".join(dict.fromkeys(short.note for short in shortages))
    return UnitsLeftUndone(
        f"{len(shortages)} of the {todo} units to do ran out of memory and "
        f"{'are' if len(shortages) > 1 else 'is'} left undone: {named} (the first "
        f"{first.account}). The units recorded are kept"
        f"{', and the leaderboard written from them' if reported else ''}; the same command "
        "runs just what is left, on a device with more memory free (no other process on "
        f"it); {notes}")


def place_units(runner: Runner, todo: list[WorkUnit], settings: RunSettings,
                errors: Console) -> Placement:
    """Where the units to do run and how many at a time, and on a Ray cluster of one kind
    of GPU, that kind (:class:`Placement`); on a Ray cluster, warned of when the cluster
    has no room for every actor yet, or mixes kinds of GPU."""
    from erasebench import workers as local

    device, count = runner.device, settings.workers or local.auto_workers(runner.device)
    # A dry run joins a cluster that is there to count its actors, and starts none.
    on_cluster = settings.backend == "ray" and bool(
        not settings.dry_run or settings.ray_address or os.environ.get("RAY_ADDRESS"))
    if not on_cluster:
        return Placement(device, min(count, max(1, len(todo))))
    from erasebench.ray_backend import (
        actor_slots,
        cluster_defaults,
        connect,
        gpu_kinds,
        mixed_gpus_warning,
    )

    # The cluster's GPUs (or CPUs), not this machine's, set the default device and count.
    resources = connect(settings.ray_address, settings.workers, here=runner.device)
    device, count = cluster_defaults(settings.device, settings.workers, resources)
    count = min(count, max(1, len(todo)))
    if count > (slots := actor_slots(device, resources)):
        errors.print(f"warning: {count} Ray actors on {device}, but the cluster has room for "
                     f"{slots} now: the others, and the units they are handed, wait for nodes "
                     "to join (Ctrl-C and a smaller --workers if none will)")
    if mixed := mixed_gpus_warning(device, resources):
        errors.print(mixed)
    kinds = gpu_kinds(resources)
    return Placement(device, count, kinds[0] if device == "cuda" and len(kinds) == 1 else None)


def _run_on_ray(todo: list[WorkUnit], runner: Runner, settings: RunSettings,
                where: Placement, lines: RunConsole) -> RunSummary:
    """The units to do on ``where.count`` Ray actors (erasebench.ray_backend)."""
    from erasebench.ray_backend import run_on_ray

    actor_settings = {"results_dir": runner.results_dir, "cache_dir": runner.cache_dir,
                      "device": where.device, "batch_size": runner.batch_size,
                      "show_unsafe": runner.show_unsafe, "compile": runner.compile,
                      "checkpoint_every": runner.checkpoint_every}
    return run_on_ray(todo, actor_settings, where.count, lines.unit_ended,
                      lines.start_from_caches, lines.unit_lost, lines.unit_helped,
                      runner.help_others, lines.unit_out_of_memory, lines.unit_training)


def _run_here(units: list[WorkUnit], todo: list[WorkUnit], runner: Runner,
              settings: RunSettings, where: Placement, lines: RunConsole,
              prompts: PromptMemo, errors: Console) -> RunSummary:
    """The units on this process and ``where.count - 1`` helper processes sharing them
    through their locks (erasebench.workers); what a failed helper left is run here."""
    from erasebench import workers as local

    helpers = (local.start_helpers(list(settings.argv), where.count - 1, runner.device)
               if where.count > 1 else [])
    try:
        if not local.helper_number():  # the base models load here, not at the first unit
            from erasebench.cached_work import look_in_caches

            lines.start_from_caches(*look_in_caches(todo, runner, prompts))
        summary = runner.run(units)
        if helpers:
            failed = [code for code in local.wait_for(helpers) if code != 0]
            if failed:
                errors.print(f"{len(failed)} helper process(es) failed (exit codes "
                             f"{failed}); running what they left here")
            left = runner.run([unit for unit in units if unit.run_id in set(summary.busy)])
            summary.done += left.done
            summary.busy = left.busy
            summary.out_of_memory |= left.out_of_memory
    finally:
        local.stop(helpers)
    return summary


def _out_of_memory(summary: RunSummary) -> str:
    """``, out of memory 2`` for units left undone out of device memory, or ""."""
    short = len(summary.out_of_memory)
    return f", out of memory {short}" if short else ""


def _helped(summary: RunSummary) -> str:
    """``, 1,204 images drawn for 3 units run elsewhere`` (``Runner.help``), or ""."""
    drawn = sum(summary.helped.values())
    units = sum(1 for count in summary.helped.values() if count)
    return (f", {drawn:,} images drawn for {units} unit{'s' if units > 1 else ''} run "
            "elsewhere" if drawn else "")


def _warn_of_uncommitted_changes(errors: Console) -> None:
    """Rows from a patched eraser or task would otherwise pass for the commit's: they name
    the changes, and the leaderboard's code column shows them."""
    from erasebench.code_version import code_version

    code = code_version()
    if code.changes:
        errors.print(f"warning: erasebench's source has uncommitted changes: the records "
                     f"name them (code {code.short()}), as the leaderboard will; commit "
                     "them to give the rows a commit of their own", markup=False)


def _note_drawn_otherwise(units: list[WorkUnit], console: Console) -> None:
    """Says where the run's settings (``--steps``, ``--precision``…) draw otherwise than a
    task draws its own, before the work: such rows are a configuration of their own
    (:mod:`erasebench.variants`), which no published number is compared with."""
    from erasebench.variants import changed_settings

    differences: dict[str, str] = {}
    for unit in {unit.task.name: unit for unit in units}.values():  # a task's units draw alike
        changed = changed_settings(unit.spec.generation.model_dump(mode="json"),
                                   unit.task.generation().model_dump(mode="json"))
        if changed:
            differences[unit.task.name] = ", ".join(changed)
    if differences:
        tasks = "; ".join(f"{task}: {text}" for task, text in differences.items())
        console.print(f"note: drawn otherwise than the tasks draw their own ({tasks}). The "
                      "leaderboard compares these rows with no published numbers, and beside "
                      "rows drawn as the task draws names them [generation: …], unranked "
                      "(else it says how under the task's table).",
                      markup=False)


def _preflight(units: list[WorkUnit]) -> None:
    """Before hours of generation: every scorer weight file is there (downloaded if it
    can be)."""
    seen = set()
    for task in {unit.task.name: unit.task for unit in units}.values():
        for file in task.weight_files():
            if file.path not in seen:
                seen.add(file.path)
                file.ensure()


def _check_base_models(units: list[WorkUnit], backend: str) -> None:
    """Each diffusers folder the units' base models are read from holds the files a run
    reads (``erasebench.models.model_folder``), and on this machine's processes the
    Hugging Face cache holds those of each hub model where only the cache can be read
    (``erasebench.models.check_hub_cache``); checked without loading anything. Ray's
    actors read their own nodes' caches, with their own network, so not there."""
    from erasebench.models import BUILT_IN_MODEL_IDS, check_hub_cache, model_folder

    for spec in dict.fromkeys(unit.spec.model for unit in units):
        if spec.id in BUILT_IN_MODEL_IDS:
            continue
        if model_folder(spec.id) is None and backend != "ray":
            check_hub_cache(spec.id, spec.revision)
