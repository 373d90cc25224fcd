"""What a run gains when its processes left without a unit to start help draw the images
of the units still running (``Runner.help``): the same units on the same local
processes, once with the idle processes idle and once helping, each from empty results
and caches, timed in one run; the two runs' rows must be equal.

    python benchmarks/helping.py        # uce's 3 units of the miniature world, 2 processes
    python benchmarks/helping.py --erasers sd,uce --processes 2 --device cuda

The default is the case helping is for: fewer units left than processes to run them (3
units on 2 processes: the third unit runs alone unless the first process to finish helps
it). Each process is as an ``erasebench run --workers`` process would be (one torch
thread on a CPU, one GPU of its own on ``cuda``, every process taking the units in the
plan's order, shared through the results folder's locks).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import tempfile
import time
from pathlib import Path
from typing import Any

from erasebench.results import load_results

DEFAULT_SPLITS = [["circle"], ["square"], ["star"]]
STABLE = ["eraser", "request", "task", "metric", "split", "seed", "value", "run_id"]


def units_of(erasers: str, tasks: str, task_options: dict[str, Any]) -> list[Any]:
    """The run's units, as ``erasebench run`` plans them (each task on its own model, each
    eraser with that model's preset)."""
    from erasebench.cli import MODEL_PRESETS, _make_eraser
    from erasebench.registry import TASKS
    from erasebench.runner import plan
    from erasebench.specs import ModelSpec

    units = []
    for task in (TASKS.get(name)(task_options) for name in tasks.split(",")):
        preset = MODEL_PRESETS.get(task.default_model)
        units += plan([_make_eraser(name, preset) for name in erasers.split(",")], [task],
                      ModelSpec(id=task.default_model))
    return units


def one_process(args: argparse.Namespace, folder: str, helping: bool, gpu: str | None,
                answers: Any) -> None:
    import os

    if gpu is not None:  # before CUDA starts: this process sees one GPU, as cuda
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    from erasebench import workers
    from erasebench.runner import Runner

    workers.use_cpu_threads(args.device)
    runner = Runner(Path(folder) / "results", Path(folder) / "cache", device=args.device,
                    progress=False, help_others=helping)
    units = units_of(args.erasers, args.tasks, json.loads(args.task_options))
    runner.model(units[0].spec.model)  # loaded before the clock starts, as in every run
    began = time.time()  # wall clock: compared across processes
    summary = runner.run(units)
    answers.put((len(summary.done), sum(summary.helped.values()), began, time.time()))


def timed_run(args: argparse.Namespace, folder: str,
              helping: bool) -> tuple[float, float, int, int]:
    """Seconds for the units on ``args.processes`` processes, from the start and from the
    first process's first unit (the start-up left out), units run and images drawn for
    other processes' units."""
    from erasebench import workers

    context = multiprocessing.get_context("spawn")
    answers = context.Queue()
    # The GPUs `erasebench run --device cuda` gives its processes: the first keeps the
    # first visible one, the others are given theirs as its helpers are.
    gpus = [None, *workers.helper_gpus(args.device, args.processes - 1)]
    processes = [context.Process(target=one_process, args=(args, folder, helping, gpu,
                                                           answers)) for gpu in gpus]
    started = time.time()
    for process in processes:
        process.start()
    for process in processes:
        process.join()
        if process.exitcode:
            raise SystemExit(f"a process failed (exit code {process.exitcode})")
    done, helped, began, ended = zip(*(answers.get() for _ in processes), strict=True)
    return max(ended) - started, max(ended) - min(began), sum(done), sum(helped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--erasers", default="uce")
    parser.add_argument("--tasks", default="shapes_objects")
    parser.add_argument("--task-options", default=json.dumps({"splits": DEFAULT_SPLITS}),
                        help="JSON object of options for every task")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    units = units_of(args.erasers, args.tasks, json.loads(args.task_options))
    print(f"{len(units)} units on {args.processes} processes ({args.device}); "
          f"{sum(len(unit.task.prompts(unit.spec.request)) for unit in units):,} images asked "
          "for\n\n| idle processes | seconds | of them the units' (start-up left out) | units "
          "run | images drawn for other processes' units |\n|---|---|---|---|---|")
    rows, seconds, units_seconds = {}, {}, {}
    for helping in (False, True):
        with tempfile.TemporaryDirectory() as folder:
            seconds[helping], units_seconds[helping], done, helped = timed_run(
                args, folder, helping)
            rows[helping] = load_results(Path(folder) / "results")[STABLE].sort_values(
                ["run_id", "metric", "split", "seed"]).reset_index(drop=True)
        print(f"| {'help' if helping else 'idle'} | {seconds[helping]:.1f} | "
              f"{units_seconds[helping]:.1f} | {done} | {helped:,} |")
    same = len(rows[True]) > 0 and rows[False].equals(rows[True])
    print(f"\nhelping: {seconds[False] / seconds[True]:.2f}x shorter "
          f"({units_seconds[False] / units_seconds[True]:.2f}x the units' time); rows "
          f"{'equal' if same else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
