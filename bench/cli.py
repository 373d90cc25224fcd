"""The ``erasebench`` command line: list, run, erase, prompts, generate, score, report,
timings, search-history, weights, export.

Heavy imports (torch, diffusers) happen inside the commands that need them, so that
``erasebench list`` and ``--help`` stay instant. A user error prints one line and exits
with code 2.
"""

from __future__ import annotations

import errno
import gc
import inspect
import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from erasebench.errors import (
    CorruptFileError,
    OutOfDeviceMemory,
    PluginImportError,
    UnitsLeftUndone,
    UnknownNameError,
    UserError,
    memory_account,
)
from erasebench.hardware import DEVICES, checked_device, resolved_device
from erasebench.registry import ERASERS, TASKS
from erasebench.stopping import Stopped, signals_stop
from erasebench.training_checkpoints import DEFAULT_EVERY

if TYPE_CHECKING:
    from erasebench.scorers.weights import WeightFile

app = typer.Typer(
    help="Benchmark concept erasure in text-to-image diffusion models.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)


def command(name: str | None = None) -> Any:
    """``app.command`` with help from the docstring, each paragraph on one line: typer's
    rich help keeps a docstring's line breaks, so a paragraph wrapped for the source read
    ragged at every terminal width ("scoring's time|against")."""
    def register(function: Any) -> Any:
        paragraphs = inspect.cleandoc(function.__doc__ or "").split("\n\n")
        text = "\n\n".join(" ".join(paragraph.split()) for paragraph in paragraphs)
        return app.command(name, help=text)(function)
    return register


# Lines are never broken at the console's width: in a log file (a Slurm job's, a Ray
# driver's) a unit's line, its progress with it, stays one line that a grep finds whole.
# No rich markup: what is printed holds paths, prompts and names, whose "[...]" rich would
# take for a style and drop ("runs[b]" read "runs"); colour is asked for with Text styles.
console = Console(soft_wrap=True, markup=False)
errors = Console(stderr=True, soft_wrap=True, markup=False)
# The width tables are printed at when the output is not a terminal: rich would fold them
# at 80 columns, breaking a path (`weights`) or a description (`list -v`) over lines that a
# script or a user copying it gets in pieces; a table is as wide as its content needs.
PIPED_TABLE_WIDTH = 10_000


def table_console() -> Console:
    """Where the commands print their tables: the console on a terminal, else one whose
    width folds no cell (:data:`PIPED_TABLE_WIDTH`)."""
    return console if console.is_terminal else Console(width=PIPED_TABLE_WIDTH, markup=False)

# The miniature world's model: draws real shapes on a CPU (`run` uses each task's own).
DEFAULT_MODEL = "shapes"
# Eraser presets used by default on these models (paper defaults on every other model).
MODEL_PRESETS = {"shapes": "shapes", "tiny": "tiny"}

_ARGV: list[str] = sys.argv[1:]  # this invocation's arguments: `run --workers` repeats them
# Failures of the storage rather than of the code: reported in one line, not a traceback.
STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}

ModelOption = Annotated[str, typer.Option(
    "--model", help="Base model: a hub id (e.g. CompVis/stable-diffusion-v1-4), a local "
    "diffusers folder, 'shapes' (the miniature world's model) or 'tiny' (the random test "
    "model).")]
RevisionOption = Annotated[str | None, typer.Option(help="Hub revision (branch, tag or commit).")]
CacheOption = Annotated[Path | None, typer.Option(
    "--cache", help="Cache folder for images and edits (default: $ERASEBENCH_CACHE or "
    "~/.cache/erasebench).")]
DeviceOption = Annotated[str, typer.Option(help=f"{DEVICES}.")]
BatchOption = Annotated[int | None, typer.Option("--batch-size", min=1, help="Images per batch "
    "(default: 64 for 32-px models such as the miniature world's; for larger models on a GPU, "
    "fitted to the memory a first batch of 2 takes, at most 64; 8 otherwise). Out of "
    "memory halves it and retries.")]
ConfigOption = Annotated[list[str] | None, typer.Option(
    "--config", help="Eraser config override KEY=VALUE (VALUE parsed as JSON if it can be); "
    "repeatable.")]
StepsOption = Annotated[int | None, typer.Option(
    min=1, help="Sampling steps (default: the task's).")]
GuidanceOption = Annotated[float | None, typer.Option(
    min=0.0, help="Classifier-free guidance scale (default: the task's).")]
SchedulerOption = Annotated[str | None, typer.Option(
    help="Sampler: ddim, lms, pndm or dpm (default: the task's).")]
SizeOption = Annotated[str | None, typer.Option(
    help="Image size in pixels, multiples of 8: one side for a square ('512') or "
    "HEIGHTxWIDTH ('512x768'); default: the model's native size.")]
ShowUnsafeOption = Annotated[bool, typer.Option(
    "--show-unsafe", help="Let images of unsafe prompts (I2P) into thumbnails and image "
    "grids; without it they are generated and cached but never shown.")]
CompileOption = Annotated[bool, typer.Option(
    "--compile/--no-compile", help="Sample with the UNet under torch.compile: on an H100 "
    "1.35x the images/s of eager (with channels_last weights), after a one-time compile "
    "of about a minute per model and batch size; only full batches run compiled (a unit's "
    "last, smaller batch runs eager); images may differ in the last bits, so cached ones "
    "are reused. Needs torch >= 2.5 "
    "(and a C compiler for inductor on a CPU).")]
CheckpointOption = Annotated[float, typer.Option(
    min=0.0, help="Seconds between the checkpoints of an eraser's training (ESD, CA, AP, AGE, "
    "all_but_one), from which the same command run again after a stop resumes it (0: after "
    "every step); `run` keeps them in the edit cache, `erase` beside --out, until the edit "
    "is made. Stopped by SIGTERM or Ctrl-C, a training ends its step and saves one first.")]
RequestOption = Annotated[list[str] | None, typer.Option(
    "--request", help="Only this request of the task, as its tables name it (e.g. 'split 1', "
    "or the erased concepts); repeatable.")]
OneTaskConfigOption = Annotated[list[str] | None, typer.Option(
    "--task-config", help="Task option KEY=VALUE (VALUE parsed as JSON if it can be), as "
    "given to `run`; repeatable.")]
PrecisionOption = Annotated[str | None, typer.Option(
    help="auto (fp16 on GPU, fp32 on CPU), fp32, fp16 or bf16; fp16/bf16 cast the UNet's "
         "and VAE's weights for sampling (no autocast), the fp32 weights kept. The "
         "robustness task's attack runs under autocast in it (auto: bf16 on GPU).")]


def plugin_options(kind: str, registry: Any, names: list[str], pairs: list[str] | None,
                   flag: str) -> dict[str, dict[str, Any]]:
    """Each selected plugin's options from ``--task-config``/``--eraser-config`` entries:
    ``NAME.KEY`` for plugin NAME only (winning over ``KEY``), ``KEY`` for every selected
    plugin that has the option: ``sd`` has none of ESD's, and a run of both takes ``lr=``
    for ESD. A NAME not registered, or a KEY none of them has (a typo), is refused."""
    options = _parse_overrides(pairs, flag)
    chosen: dict[str, dict[str, Any]] = {name: {} for name in names}
    keys = {name: _option_keys(registry.get(name), kind) for name in chosen}
    for key, value in options.items():
        if "." in key:
            continue
        takers = [name for name, known in keys.items() if known is None or key in known]
        if not takers:
            theirs = "; ".join(f"{name}: {', '.join(sorted(known or [])) or '(none)'}"
                               for name, known in keys.items())
            raise UserError(f"{flag} {key}=...: no selected {kind} has the option {key!r} "
                            f"(their options: {theirs})")
        for name in takers:
            chosen[name][key] = value
    for key, value in options.items():
        scope, _, option = key.partition(".")
        if option and scope not in registry:
            raise UnknownNameError(kind, scope, registry.names())
        if option and scope in chosen:
            chosen[scope][option] = value
    return chosen


def _option_keys(plugin: Any, kind: str) -> set[str] | None:
    """The option names a task or eraser class takes; None where its schema takes any."""
    from erasebench.plugins import option_keys

    return option_keys(plugin.Options if kind == "task" else plugin.Config)


def _split_names(values: list[str] | None) -> list[str]:
    return [name.strip() for value in values or [] for name in value.split(",") if name.strip()]


def _chosen_names(values: list[str] | None, flag: str, kind: str, registry: Any,
                  default: list[str]) -> list[str]:
    """The names ``flag`` gives, or ``default`` where it is not given. Given, it must name
    one: ``--erasers "$ERASERS"`` with the variable unset would otherwise run the default
    selection, every eraser, hours of GPU time no one asked for."""
    if values is None:
        return default
    names = _split_names(values)
    if not names:
        raise UserError(f"{flag} {', '.join(map(repr, values))} names no {kind}; registered: "
                        f"{', '.join(registry.names())} (leave {flag} out for the default)")
    return names


def _parse_overrides(pairs: list[str] | None, flag: str = "--config") -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UserError(f"{flag} expects KEY=VALUE, got {pair!r}")
        try:
            overrides[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key.strip()] = raw
    return overrides


def _generation_overrides(steps: int | None, guidance: float | None, scheduler: str | None,
                          size: str | None, precision: str | None) -> dict[str, Any]:
    height, width = _image_size(size) if size is not None else (None, None)
    values = {"steps": steps, "guidance": guidance, "scheduler": scheduler,
              "height": height, "width": width, "precision": precision}
    return {key: value for key, value in values.items() if value is not None}


def _image_size(size: str) -> tuple[int, int]:
    """(height, width) of ``--size``: one side ('512') or HEIGHTxWIDTH ('512x768')."""
    sides = size.lower().replace(" ", "").split("x")
    if len(sides) > 2 or not all(side.isdigit() for side in sides):
        raise UserError(f"--size {size!r}: give one side in pixels ('512') or HEIGHTxWIDTH "
                        "('512x768')")
    return int(sides[0]), int(sides[-1])


def _model_spec(model: str, revision: str | None):  # -> ModelSpec
    from erasebench.specs import ModelSpec

    return ModelSpec(id=model, revision=revision)


def _cache_dir(cache: Path | None, *, writing: bool = True) -> Path:
    from erasebench.cache import default_cache_dir

    if cache is not None:
        return _checked_output(cache, "--cache", folder=True, writing=writing)
    return _checked_output(default_cache_dir(), "the cache folder ($ERASEBENCH_CACHE)",
                           folder=True, writing=writing)


def _checked_output(path: Path, option: str, *, folder: bool, writing: bool = True) -> Path:
    """``path``, unless what stands there or above it keeps a folder (``folder``) or a file
    from being made there, or (``writing``) the folder it goes in takes no new file: said
    before any work, as the first write would fail minutes in (``--results run.log``,
    ``--out`` naming an existing file, a cache folder on a read-only share)."""
    kind, other = ("a folder", "a file") if folder else ("a file", "a folder")
    if path.exists() and path.is_dir() != folder:
        raise UserError(f"{option} {str(path)!r} is {other}, not {kind}")
    above = next((place for place in path.parents if place.exists()), None)
    if above is not None and not above.is_dir():
        raise UserError(f"{option} {str(path)!r} cannot be made: {str(above)!r} is a file, "
                        "not a folder")
    place = path if path.is_dir() else above
    refusal = _write_refusal(place) if writing and place is not None else None
    if refusal:
        raise UserError(f"{option} {str(path)!r} cannot be written: {str(place)!r} takes no "
                        f"new file ({refusal})")
    return path


def _write_refusal(folder: Path) -> str | None:
    """Why a file cannot be made in ``folder``, or None if one can: a file is made and
    removed, as permission bits say nothing of a read-only mount, and root passes them."""
    import os
    import tempfile

    try:
        handle, name = tempfile.mkstemp(dir=folder, prefix=".erasebench-write-check-")
    except OSError as error:
        return error.strerror or type(error).__name__
    os.close(handle)
    os.unlink(name)
    return None


def _existing_results(results: Path) -> Path:
    """``results`` if it is a folder: a mistyped one is an error, not an empty report."""
    if not results.is_dir():
        raise UserError(f"results folder {str(results)!r} does not exist; pass the folder "
                        "`erasebench run` wrote (--results)")
    return results


@command("list")
def list_plugins(
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Import each plugin and show its description.")] = False,
) -> None:
    """List the registered erasers and tasks (plugins included)."""
    for title, registry in (("erasers", ERASERS), ("tasks", TASKS)):
        table = Table(title=title, show_header=verbose)
        table.add_column("name")
        if verbose:
            table.add_column("description")
        for name in registry.names():
            if not verbose:
                table.add_row(name)
                continue
            try:
                doc = (registry.get(name).__doc__ or "").strip().splitlines()
            except PluginImportError as error:  # one broken plugin must not hide the others
                table.add_row(name, Text.assemble(("failed to import:", "red"), f" {error}"))
                continue
            table.add_row(name, doc[0] if doc else "")
        table_console().print(table)


@command()
def run(
    erasers: Annotated[list[str] | None, typer.Option(
        "--erasers", "-e", help="Eraser names, comma-separated (default: every registered "
        "eraser but the test doubles; an empty list is refused).")] = None,
    tasks: Annotated[list[str] | None, typer.Option(
        "--tasks", "-t", help="Task names, comma-separated (default: the tasks of the default "
        "run, the miniature world's; an empty list is refused).")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", help="Base model for every task (hub id, local diffusers folder, 'shapes' "
        "or 'tiny'); default: each task's own (the miniature world's tasks: 'shapes').")] = None,
    revision: RevisionOption = None,
    preset: Annotated[str | None, typer.Option(
        help="Eraser preset applied to every eraser that has it (default: the model's, "
        "'shapes' on the miniature world, 'tiny' on the test model).")] = None,
    task_config: Annotated[list[str] | None, typer.Option(
        "--task-config", help="Task option KEY=VALUE for every selected task that has the "
        "option (one none has is refused), or TASK.KEY=VALUE for one (VALUE parsed as JSON if "
        "it can be); repeatable.")] = None,
    eraser_config: Annotated[list[str] | None, typer.Option(
        "--eraser-config", help="Eraser setting ERASER.KEY=VALUE for one eraser, or "
        "KEY=VALUE for every selected one that has the setting (one none has is refused), "
        "over its preset (VALUE parsed as JSON if it can be); repeatable. A changed "
        "setting is a new configuration: its own units, and its own leaderboard row.")] = None,
    results: Annotated[Path, typer.Option(help="Results folder.")] = Path("results"),
    cache: CacheOption = None,
    device: DeviceOption = "auto",
    batch_size: BatchOption = None,
    steps: StepsOption = None,
    guidance: GuidanceOption = None,
    scheduler: SchedulerOption = None,
    size: SizeOption = None,
    precision: PrecisionOption = None,
    compile_unet: CompileOption = False,
    dry_run: Annotated[bool, typer.Option(
        help="Only list the work units, their state and the images each asks for, then the "
        "distinct images and the erasures in all, and the time the units to do would take at "
        "the pace of the units recorded in the results folder; no model is loaded, nothing "
        "written.")] = False,
    check_cache: Annotated[bool, typer.Option(
        "--check-cache", help="With --dry-run: also count the distinct images and the "
        "erasures of the units to do that the caches already hold, loading each base model "
        "for its fingerprint (which names its cache entries).")] = False,
    leaderboard: Annotated[Path | None, typer.Option(
        help="Leaderboard regenerated from the results folder after the run (default: "
        "leaderboard.md beside the results folder).")] = None,
    report_after: Annotated[bool, typer.Option(
        "--report/--no-report", help="Regenerate the leaderboard after the run.")] = True,
    workers: Annotated[int | None, typer.Option(
        min=1, help="Local processes sharing the work units (default: one per CPU core, at "
        "most 4, on a CPU; one per visible GPU on 'cuda', each on its own GPU; 1 on "
        "'cuda:N'; with --backend ray, Ray actors: one per GPU of the cluster, or per CPU of "
        "one without GPUs, whose GPUs also make --device auto 'cuda'). On a CPU every process "
        "runs torch with one thread, so the results do not depend on this number.")] = None,
    show_unsafe: ShowUnsafeOption = False,
    backend: Annotated[str, typer.Option(
        help="'local' (this machine's processes) or 'ray' (one Ray actor per --workers, on "
        # typer reads help as rich markup, where an unescaped [ray] is a style and vanishes;
        # the extra stands bare, without quotes or punctuation: at 80 columns the help
        # column is 16 characters wide, and a longer word is cut short ('erasebench[ray…')
        "the cluster at RAY_ADDRESS or a local one), with Ray installed: pip install "
        "erasebench\\[ray] (in quotes in zsh)")
    ] = "local",
    ray_address: Annotated[str | None, typer.Option(
        help="Ray cluster address (default: $RAY_ADDRESS; none: start a local cluster).")
    ] = None,
    help_others: Annotated[bool, typer.Option(
        "--help-others/--no-help-others", help="Once no unit is left to start, a process or "
        "Ray actor that ends its unit draws the images of the units still running, which "
        "their own processes then read and score (the rows are the same either way). "
        "--no-help-others leaves it idle: each unit's images drawn by its own process, as "
        "when timing units one by one, and the time left priced so.")] = True,
    checkpoint_every: CheckpointOption = DEFAULT_EVERY,
) -> None:
    """Run erasers x tasks; completed units are skipped, so an interrupted run resumes."""
    from erasebench.run_command import RunSettings, run_units
    from erasebench.runner import Runner, plan

    # A Ray cluster's GPUs, or those of the machine a dry run prices a run for, are not
    # this machine's.
    checked_device(device, here=backend == "local" and not dry_run)
    settings = RunSettings(
        backend=backend, ray_address=ray_address, workers=workers, device=device,
        dry_run=dry_run, check_cache=check_cache, report_after=report_after,
        leaderboard=leaderboard, argv=tuple(_ARGV))
    # A dry run writes nothing, so it may price a run from where it could not write.
    _checked_output(results, "--results", folder=True, writing=not dry_run)
    cache_dir = _cache_dir(cache, writing=not dry_run)
    if report_after and not dry_run:
        _checked_output(settings.leaderboard_path(results), "--leaderboard", folder=False)
    eraser_names = _chosen_names(erasers, "--erasers", "eraser", ERASERS,
                                 _default_names(ERASERS))
    task_names = _chosen_names(tasks, "--tasks", "task", TASKS, _default_names(TASKS))
    for name in eraser_names:
        ERASERS.get(name)  # unknown names fail before any work, listing the valid ones
    # A preset applies to the erasers that have it; one none of them has is a typo, which
    # would otherwise run every eraser at its paper defaults unsaid.
    presets = {name for eraser in eraser_names for name in ERASERS.get(eraser).presets}
    if preset is not None and preset not in presets:
        raise UnknownNameError("preset", preset, presets)
    if not task_names:
        raise UserError(f"no task selected; registered tasks: {', '.join(TASKS.names())}")
    task_options = plugin_options("task", TASKS, task_names, task_config, "--task-config")
    eraser_options = plugin_options("eraser", ERASERS, eraser_names, eraser_config,
                                    "--eraser-config")
    task_objects = [TASKS.get(name)(task_options[name]) for name in task_names]
    overrides = _generation_overrides(steps, guidance, scheduler, size, precision)
    units = []
    for model_spec, model_tasks in _tasks_by_model(task_objects, model, revision):
        model_preset = preset or MODEL_PRESETS.get(model_spec.id)
        eraser_objects = [
            _make_eraser(name, model_preset, eraser_options[name]) for name in eraser_names]
        units += plan(eraser_objects, model_tasks, model_spec, overrides)
    runner = Runner(results_dir=results, cache_dir=cache_dir, device=device,
                    batch_size=batch_size, progress=sys.stderr.isatty(),
                    show_unsafe=show_unsafe, compile=compile_unet, help_others=help_others,
                    checkpoint_every=checkpoint_every)
    run_units(units, runner, settings, console, errors)


def _default_names(registry: Any) -> list[str]:
    """The plugins whose class says they belong to a run without arguments."""
    return [name for name in registry.names()
            if getattr(registry.get(name), "in_default_run", False)]


def _tasks_by_model(tasks: list[Any], model: str | None, revision: str | None
                    ) -> list[tuple[Any, list[Any]]]:
    """(model spec, its tasks) in task order: --model for all, else each task's own."""
    groups: dict[Any, list[Any]] = {}
    for task in tasks:
        spec = _model_spec(model or task.default_model, revision if model else None)
        groups.setdefault(spec, []).append(task)
    return list(groups.items())


def _make_eraser(name: str, preset: str | None,
                 config: dict[str, Any] | None = None):  # -> Eraser
    """The eraser with ``preset`` if it defines one (a run mixes erasers with and without),
    ``config`` over it."""
    cls = ERASERS.get(name)
    return cls(config or None, preset=preset if preset in cls.presets else None)


@command()
def erase(
    eraser: Annotated[str, typer.Option(
        "--eraser", "-e", help="Eraser name (see `erasebench list`).")],
    concept: Annotated[list[str], typer.Option(help="Concept to erase; repeatable.")],
    out: Annotated[Path, typer.Option(help="Where to write the edit (.safetensors).")],
    anchor: Annotated[list[str] | None, typer.Option(
        help="Anchor/target concept; repeatable.")] = None,
    preserve: Annotated[list[str] | None, typer.Option(
        help="Concept to preserve; repeatable.")] = None,
    config: ConfigOption = None,
    preset: Annotated[str | None, typer.Option(help="Named config preset of the eraser.")] = None,
    model: ModelOption = DEFAULT_MODEL,
    revision: RevisionOption = None,
    device: DeviceOption = "auto",
    checkpoint_every: CheckpointOption = DEFAULT_EVERY,
) -> None:
    """Erase concepts from a model and save the edit (only the changed weights)."""
    from rich.filesize import decimal

    from erasebench.models import load_model
    from erasebench.runner import edit_key, timed_erase
    from erasebench.specs import ErasureRequest
    from erasebench.training_checkpoints import CheckpointPlace
    from erasebench.workers import use_cpu_threads

    if out.suffix != ".safetensors":
        raise UserError(f"--out {str(out)!r}: edits are written as safetensors only; name the "
                        "file *.safetensors")
    _checked_output(out, "--out", folder=False)
    cls = ERASERS.get(eraser)
    if preset is None and MODEL_PRESETS.get(model) in cls.presets:
        preset = MODEL_PRESETS[model]  # e.g. the miniature world's scaled-down settings
    plugin = cls(_parse_overrides(config), preset=preset)
    request = ErasureRequest(concepts=tuple(concept), anchors=tuple(anchor or ()),
                             preserve=tuple(preserve or ()))
    target_device = resolved_device(checked_device(device))
    # One CPU thread, as in `run`: the same edit whatever the core count or command.
    use_cpu_threads(target_device)
    base = load_model(_model_spec(model, revision), device=target_device)
    # Named by what makes the edit, not by --out alone: another erasure written to the same
    # file never resumes this one's training.
    key = edit_key(plugin.spec(), request, base.fingerprint)[:16]
    place = CheckpointPlace(out.parent / f".{out.stem}-{key}.training", every=checkpoint_every,
                            say=lambda text: console.print(text, markup=False))
    edit = timed_erase(plugin, base, request, place)
    edit.save(out)
    place.remove()
    console.print(f"wrote {out}: {len(edit.weights)} changed tensors, "
                  f"{sum(t.numel() for t in edit.weights.values()):,} values, made in "
                  f"{edit.seconds:.1f} s on {edit.device}")
    stray = _other_erasures_checkpoints(out)
    if stray:
        console.print(f"note: {len(stray)} file{'s' if len(stray) > 1 else ''} beside {out} "
                      f"({decimal(sum(path.stat().st_size for path in stray))}: "
                      f"{', '.join(path.name for path in stray)}) hold the checkpoints of "
                      "another erasure's training to this --out, stopped with other settings, "
                      "concepts or model; remove them unless that erase is to resume",
                      markup=False)


def _other_erasures_checkpoints(out: Path) -> list[Path]:
    """Checkpoint files `erase` left beside ``out`` for erasures other than the one just
    written (its own are removed): a stopped `erase` run again with other settings never
    resumes them, and they take space (9.8 GB for ESD-u's on SD) until removed; also the
    temp files of checkpoints being written when a process was killed."""
    import glob

    stem = glob.escape(out.stem)
    return sorted([*out.parent.glob(f".{stem}-*.training.loop-*.safetensors"),
                   *out.parent.glob(f"..{stem}-*.training.loop-*.safetensors.*.tmp")])


@command()
def generate(
    out: Annotated[Path, typer.Option(help="Folder for the PNGs and manifest.csv.")],
    prompt: Annotated[list[str] | None, typer.Option(help="A prompt; repeatable.")] = None,
    prompts: Annotated[Path | None, typer.Option(
        help="CSV with a 'prompt' column and optional 'seed'/'evaluation_seed', 'guidance' "
        "and 'negative'/'negative_prompt' columns.")] = None,
    seeds: Annotated[str, typer.Option(help="Seeds for --prompt, e.g. '0-3' or '1,5,9'.")] = "0",
    negative: Annotated[str, typer.Option(
        help="Negative prompt for --prompt's images (what guidance steers away from; a "
        "--prompts file has a column for it).")] = "",
    edit: Annotated[Path | None, typer.Option(help="Apply this edit (from `erase`).")] = None,
    model: ModelOption = DEFAULT_MODEL,
    revision: RevisionOption = None,
    cache: CacheOption = None,
    device: DeviceOption = "auto",
    batch_size: BatchOption = None,
    steps: Annotated[int, typer.Option(min=1, help="Sampling steps.")] = 50,
    guidance: Annotated[float, typer.Option(min=0.0, help="Guidance scale.")] = 7.5,
    scheduler: Annotated[str, typer.Option(help="ddim, lms, pndm or dpm.")] = "ddim",
    size: SizeOption = None,
    precision: Annotated[str, typer.Option(
        help="auto (fp16 on GPU, fp32 on CPU), fp32, fp16 or bf16; the manifest records the "
        "one drawn in, which `score` compares with its --reference folder's.")] = "auto",
    compile_unet: CompileOption = False,
) -> None:
    """Generate images for prompts and seeds (through the image cache)."""
    from erasebench.commands import generate_images

    checked_device(device)
    _checked_output(out, "--out", folder=True)
    generate_images(
        out=out, texts=prompt or [], prompt_file=prompts, seeds=seeds, negative=negative,
        edit_path=edit,
        model=_model_spec(model, revision), cache_dir=_cache_dir(cache), device=device,
        batch_size=batch_size, compile_unet=compile_unet,
        overrides=_generation_overrides(steps, guidance, scheduler, size, precision),
        console=console,
    )


@command("prompts")
def task_prompts(
    task: Annotated[str, typer.Option("--task", "-t", help="Task name (see `erasebench list`).")],
    out: Annotated[Path, typer.Option(help="CSV to write: prompt, seed, guidance, label.")],
    request: RequestOption = None,
    task_config: OneTaskConfigOption = None,
) -> None:
    """Write the prompts and seeds of a task's images to a CSV, for `generate --prompts`."""
    from erasebench.commands import chosen_requests, generate_command, task_prompt_table
    from erasebench.io import atomic_write

    _checked_output(out, "--out", folder=False)
    chosen = _task(task, task_config)
    requests = chosen_requests(chosen, request or [])
    table = task_prompt_table(chosen, requests)
    # The original model's images the task's scoring compares with: drawn from the same
    # file where they are among its prompts, else from a file of their own.
    base = task_prompt_table(chosen, requests, references=True)
    base_file = out
    held = set(zip(table.prompt, table.seed, strict=True))
    if not set(zip(base.prompt, base.seed, strict=True)) <= held:
        base_file = out.with_name(f"{out.stem}.reference{out.suffix}")
        _checked_output(base_file, "--out's reference file", folder=False)
        atomic_write(base_file, lambda tmp: base.to_csv(tmp, index=False))
    atomic_write(out, lambda tmp: table.to_csv(tmp, index=False))
    names = ", ".join(repr(r.display()) for r in requests)
    options = "".join(f" --task-config {shlex.quote(pair)}" for pair in task_config or [])
    wrote = (f"wrote the {len(table):,} prompts and seeds of task {task!r} (requests {names}) "
             f"to {out}")
    if base_file != out:
        wrote += f", and the {len(base):,} its scoring compares with to {base_file}"
    lines = [f"{wrote}. To draw them as the task does:", f"  {generate_command(chosen, out)}"]
    score = f"erasebench score --task {task}{options} --images IMAGES"
    if not base.empty:
        which = (f"of {base_file.name}'s prompts" if base_file != out else
                 "of the same prompts" if len(base) == len(table) else
                 f"of {len(base):,} of them (this draws all {len(table):,})")
        lines += [f"and the original model's images {which}, which its scoring compares "
                  "with, without an edit:",
                  f"  {generate_command(chosen, base_file, edited=False, folder='BASE')}"]
        score += " --reference BASE"
    console.print("\n".join([*lines, "and score them:", f"  {score}",
                             "(images drawn elsewhere need a manifest.csv with file, prompt "
                             "and seed columns)"]), markup=False)


@command()
def score(
    task: Annotated[str, typer.Option("--task", "-t", help="Task name (see `erasebench list`).")],
    images: Annotated[Path, typer.Option(
        help="A folder written by `erasebench generate`, or any folder with a manifest.csv "
        "naming each image's file, prompt and seed.")],
    reference: Annotated[Path | None, typer.Option(
        help="Folder of the original model's images, for tasks that compare against it "
        "(`erasebench prompts` prints the command that draws them).")] = None,
    request: RequestOption = None,
    task_config: OneTaskConfigOption = None,
    device: DeviceOption = "auto",
    out: Annotated[Path | None, typer.Option(
        help="Also write the scores to this CSV, one row per value (task, request, metric, "
        "split, value, low and high of its 95% interval, images scored, images folder), at "
        "full precision.")] = None,
) -> None:
    """Score a folder of generated images with a task's scorer, for the requests it answers.

    A folder answers the requests whose prompts and seeds it holds; where several do (the
    splits of a classification task prompt alike), a folder `generate --edit` wrote answers
    those that erase what its edit erased, one of the original model's images, or whose
    manifest does not say, all of them.

    A value that averages over images (ESR, PSR, NER, CLIP score…) comes with its 95%
    bootstrap interval over them, as the leaderboard's."""
    import pandas as pd

    from erasebench.bootstrap import samples_interval
    from erasebench.commands import score_folder
    from erasebench.io import atomic_write

    if out is not None:
        _checked_output(out, "--out", folder=False)  # before the scorer's minutes
    table = Table("request", "metric", "split", "value", "95% interval", "images")
    rows = []
    for name, value in score_folder(_task(task, task_config), images, reference,
                                    resolved_device(checked_device(device)), request or [],
                                    warn=lambda text: errors.print(f"warning: {text}")):
        low, high = (samples_interval(value.samples, task, name, value.metric, value.split)
                     if value.samples else (None, None))
        table.add_row(name, value.metric, value.split, f"{value.value:.6g}",
                      "" if low is None else f"{low:.4g} to {high:.4g}",
                      f"{len(value.samples):,}" if value.samples else "")
        rows.append({"task": task, "request": name, "metric": value.metric,
                     "split": value.split, "value": value.value, "low": low, "high": high,
                     "images_scored": len(value.samples) or None, "images": str(images)})
    table_console().print(table)
    if out is not None:
        frame = pd.DataFrame(rows).astype({"images_scored": "Int64"})
        atomic_write(out, lambda tmp: frame.to_csv(tmp, index=False))
        console.print(f"wrote {len(rows)} scores to {out}")


def _task(name: str, pairs: list[str] | None):  # -> Task
    """Task ``name`` with its ``--task-config`` options."""
    return TASKS.get(name)(plugin_options("task", TASKS, [name], pairs, "--task-config")[name])


@command()
def report(
    results: Annotated[Path, typer.Option(help="Results folder to read.")] = Path("results"),
    out: Annotated[Path, typer.Option(help="Leaderboard file to write.")] = Path("leaderboard.md"),
    show_unsafe: ShowUnsafeOption = False,
) -> None:
    """Regenerate leaderboard.md (and results/metrics.parquet) from stored results only."""
    from erasebench.report import report_said

    _existing_results(results)  # a mistyped folder must not overwrite a leaderboard with nothing
    _checked_output(out, "--out", folder=False)
    console.print(report_said(results, out, show_unsafe))


@command()
def timings(
    results: Annotated[Path, typer.Option(help="Results folder to read.")] = Path("results"),
) -> None:
    """Where a results folder's time went, per eraser, task, model and device.

    The units, erasures made and their time, images drawn and images/s, scoring's time
    against drawing the images it scored (erasebench aims at 10% at most), and the units'
    seconds. An eraser's configurations (settings, task options, images drawn otherwise
    than the task draws) are rows of their own, named as in the leaderboard."""
    from erasebench.help_records import help_records
    from erasebench.results import ResultStore
    from erasebench.timings import timings_frame, timings_table
    from erasebench.variants import find_variants

    records = ResultStore(_existing_results(results)).records()
    frame = timings_frame(records, help_records(results), find_variants(records).labels)
    timed = int(frame["unit"].sum())
    if not timed:
        raise UserError(f"no record in {str(results)!r} has timings: they are kept since "
                        "erasebench wrote schema version 2; run units again to have them")
    table_console().print(timings_table(frame))
    if timed < len(records):
        console.print(f"{len(records) - timed} of {len(records)} records have no timings "
                      "(written before they were kept) and are left out.")


@command("search-history")
def search_history(
    edit: Annotated[Path, typer.Argument(help="An edit by ap or age (from `erase`).")],
    strip: Annotated[Path | None, typer.Option(
        help="Also write a PNG strip: the erased concept and the concepts drawn most, by the "
        "original model (top) and the edited one (bottom).")] = None,
    columns: Annotated[int, typer.Option(min=1, help="Searched concepts in the strip.")] = 5,
    model: ModelOption = DEFAULT_MODEL,
    revision: RevisionOption = None,
    device: DeviceOption = "auto",
) -> None:
    """Show what an eraser's concept search (AP, AGE) found over training."""
    from erasebench.edits import EditedModel
    from erasebench.search_history import history_tables, search_notes

    if strip is not None:
        _checked_output(strip, "--strip", folder=False)
    loaded = EditedModel.load(edit)
    search_notes(loaded)  # a clear error before anything is loaded
    for table in history_tables(loaded):
        table_console().print(table)
    if strip is not None:
        from erasebench.io import atomic_write
        from erasebench.models import load_model
        from erasebench.search_history import search_strip
        from erasebench.specs import GenerationSpec
        from erasebench.tasks.shapes.scoring import SHAPES_GENERATION

        base = load_model(_model_spec(model, revision),
                          device=resolved_device(checked_device(device)))
        settings = SHAPES_GENERATION if model == "shapes" else GenerationSpec()
        image = search_strip(loaded, base, settings, columns)
        atomic_write(strip, lambda tmp: image.save(tmp, format="PNG"))
        console.print(f"wrote {strip}")


@command()
def weights(
    tasks: Annotated[list[str] | None, typer.Option(
        "--tasks", "-t", help="Task names, comma-separated (default: every registered task).")
    ] = None,
    task_config: Annotated[list[str] | None, typer.Option(
        "--task-config", help="Task option KEY=VALUE for the listed tasks that have it (e.g. "
        "graph=netfive, clip_weights=PATH), or TASK.KEY=VALUE for one; repeatable.")] = None,
    download: Annotated[bool, typer.Option(
        help="Download the missing files, the base models' into the Hugging Face cache "
        "(needs network).")] = False,
    model: Annotated[str | None, typer.Option(
        help="The base model a run would be given (`run --model`: a hub id is looked for "
        "in the Hugging Face cache, a diffusers folder checked for the files a run reads); "
        "default: each task's own.")] = None,
) -> None:
    """List the weight files each task's scorers read and whether they are there.

    Each file's path and source are shown; the command exits 1 if any is missing. Below
    the table: whether the Hugging Face cache holds the files a run loads of each hub
    model the tasks draw with, or a diffusers folder given as --model those a run reads
    (exit 1 if either lacks any). With --download, every missing file is tried, and each
    that could not be fetched is named with the reason."""
    names = _chosen_names(tasks, "--tasks", "task", TASKS, TASKS.names())
    options = plugin_options("task", TASKS, names, task_config, "--task-config")
    # On a terminal too narrow for them, paths fold rather than lose their middle.
    table = Table("task", "scorer", "present")
    table.add_column("path", overflow="fold")
    table.add_column("source", overflow="fold")
    missing = 0
    # Each download's outcome, where it landed or why not: tasks share files (CLIP), and
    # each is tried once.
    fetched: dict[Path, Path | str] = {}
    for name in names:
        cls = TASKS.get(name)
        task = cls(options[name])
        for file in task.weight_files():
            path = file.path
            if download and not file.present():
                if file.path not in fetched:
                    fetched[file.path] = _downloaded(file)
                landed = fetched[file.path]
                # Where the hub's cache put it: the snapshot of a commit unknown before.
                path = landed if isinstance(landed, Path) else path
            present = path.is_file()
            missing += not present
            table.add_row(name, file.scorer, "yes" if present else Text("no", style="red"),
                          str(path), file.source)
    table_console().print(table)
    for path, landed in fetched.items():
        if isinstance(landed, str):
            console.print(f"not downloaded: {path} ({landed})")
    model_lacks = _print_base_models(names, model, download)
    if missing:
        fetch = "" if download else ("`erasebench weights --download` fetches them where "
                                     "there is network, or ")
        console.print(f"{missing} file(s) missing: {fetch}put them at the paths shown "
                      "(TORCH_HOME and HF_HOME move the caches), from the sources shown.")
    if missing or model_lacks:
        raise typer.Exit(1)


def _print_base_models(names: list[str], model: str | None, download: bool) -> int:
    """Whether the Hugging Face cache holds the files of each hub model the tasks
    ``names`` draw with (``model`` for all, where given): a run reads only the cache where
    there is no network. With ``download``, those it lacks are fetched first, and each
    that could not be is named with the reason. A diffusers folder is checked for the
    files a run reads of it. Returns how many files the models lack, in the cache or in
    their folders, a folder that is not there counted as one: a run without network would
    stop on them, as on a missing scorer file."""
    from erasebench.hub import download_line, download_model, missing_from_cache
    from erasebench.model_files import missing_from_folder
    from erasebench.models import BUILT_IN_MODEL_IDS, model_path

    users: dict[str, list[str]] = {}
    for name in names:
        model_id = model or TASKS.get(name).default_model
        if model_id not in BUILT_IN_MODEL_IDS:
            users.setdefault(model_id, []).append(name)
    model_lacks = 0
    for model_id, tasks in users.items():
        drawn_by = f"base model {model_id} (tasks {', '.join(tasks)}):"
        folder = model_path(model_id)
        if folder is not None and not folder.exists():
            model_lacks += 1
            console.print(f"{drawn_by} no such folder (a run stops on it)", markup=False)
            continue
        if folder is not None:
            lacking = missing_from_folder(folder)
            model_lacks += len(lacking)
            console.print(f"{drawn_by} a run reads files the folder lacks: {'; '.join(lacking)}"
                          if lacking else f"{drawn_by} a diffusers folder with every file a "
                          "run reads", markup=False)
            continue
        lacking, reads = missing_from_cache(model_id)
        if download and lacking:
            for name, why in download_model(model_id).items():
                console.print(f"not downloaded: {model_id} {name} ({why})", markup=False)
            lacking, reads = missing_from_cache(model_id)
        if not lacking:
            console.print(f"{drawn_by} in the Hugging Face cache", markup=False)
            continue
        model_lacks += len(lacking)
        console.print(f"{drawn_by} {len(lacking)} of its {reads} files not in "
                      "the Hugging Face cache; a run downloads them where there is network, "
                      f"and `{download_line(model_id, lacking)}` fetches "
                      "them ahead (or pass a diffusers folder as --model)", markup=False)
    return model_lacks


def _downloaded(file: WeightFile) -> Path | str:
    """Where ``file`` landed, or why it could not be downloaded."""
    from erasebench.scorers.weights import MissingWeightsError

    try:
        return file.ensure()
    except MissingWeightsError as error:
        return error.failure


@command()
def export(
    edit: Annotated[Path, typer.Option(help="An edit file written by `erase` or `run`.")],
    out: Annotated[Path, typer.Option(help="Folder for the diffusers pipeline.")],
    model: ModelOption = DEFAULT_MODEL,
    revision: RevisionOption = None,
) -> None:
    """Export base model + edit as a plain diffusers folder (StableDiffusionPipeline loads it)."""
    from erasebench.edits import EditedModel
    from erasebench.models import load_model

    _checked_output(out, "--out", folder=True)
    loaded = EditedModel.load(edit)
    loaded.export(load_model(_model_spec(model, revision)), out)
    console.print(f"wrote {out}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr and exit code 2."""
    global _ARGV
    _ARGV = list(sys.argv[1:] if argv is None else argv)
    try:
        with signals_stop():
            result = app(args=argv, standalone_mode=False)
    except Stopped as stop:
        from erasebench.workers import helper_number

        if not helper_number():  # a helper is stopped by its main process, which says so
            errors.print(f"stopped ({stop.name}): what was recorded is kept; the same "
                         "command resumes")
        return 128 + stop.signum
    except (UserError, CorruptFileError) as error:
        errors.print(f"error: {error}", markup=False, highlight=False)
        return 2
    except (OutOfDeviceMemory, UnitsLeftUndone) as error:
        errors.print(f"error: {error}", markup=False, highlight=False)
        return 1
    except (typer.Exit, click.exceptions.Exit) as done:
        return int(done.exit_code)
    except (typer.Abort, click.exceptions.Abort, KeyboardInterrupt):
        errors.print("aborted")
        return 1
    except OSError as error:
        if error.errno not in STORAGE_ERRORS:
            raise
        # Every write is atomic, so what was written before is whole and a rerun resumes.
        where = f" ({error.filename})" if error.filename else ""
        errors.print(f"error: the storage refused{where}: {error.strerror}. Nothing written "
                     "before is lost; free the space or fix the permissions and run the same "
                     "command again to resume.", markup=False, highlight=False)
        return 1
    except Exception as error:
        # Usage errors (bad option value, missing option). Newer typer vendors click, so
        # match the ClickException shape rather than one class.
        if hasattr(error, "show") and isinstance(getattr(error, "exit_code", None), int):
            error.show()
            return int(error.exit_code)  # type: ignore[attr-defined]
        # The device out of memory outside a run's units (erase, generate, score), which
        # a run leaves undone one by one; torch is imported by then, if at all.
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(error, torch.OutOfMemoryError):
            errors.print(f"error: the device ran out of memory: {memory_account(error)}. "
                         "What was written before is kept; run the same command again on a "
                         "device with more memory free (no other process on it).",
                         markup=False, highlight=False)
            return 1
        raise
    return result if isinstance(result, int) else 0


def console_main() -> int:
    """The ``erasebench`` command (and ``python -m erasebench.cli``, as helpers start):
    :func:`main`, then an exit that skips the interpreter's last garbage collections."""
    code = main()
    # At exit CPython's collector walks every object torch, diffusers and transformers
    # made on import: 1.2 of the 1.45 s a run's process took to end, on 2 cores. The
    # command is done (every write atomic and closed, atexit handlers still to run), so
    # the objects are frozen out of its reach; reference counting still frees them as
    # the modules are cleared.
    gc.freeze()
    return code


if __name__ == "__main__":  # python -m erasebench.cli
    sys.exit(console_main())
