"""What the leaderboard's bootstrap intervals cost at a full reproduction's size, resampled
by index (every resample draws each image's index: as before) and as the report resamples
them now (rates, whose images are 0 or 100, by how many of each value a resample draws;
other values by index, a bounded number at a time), in one run: seconds, peak memory
(tracemalloc, numpy's arrays included) and how far the two ways' bounds lie apart against
the intervals' widths (both are the same bootstrap, so only by its randomness).

The per-image values stand in for a full reproduction's: the real plan's units (the
erasers of the papers' tables against the five SD tasks, default options, or those
given) with their prompts' counts, and per image the values its task stores (Imagenette:
ESR-1/ESR-5 of each erased class's image and PSR-1/PSR-5 of each preserved one, 0 or
100; I2P: NER at four thresholds, 0 or 100; artists: CLIP score and LPIPS, erased and
retained; COCO: CLIP score; the concept graph stores none), drawn at random. Nothing is
loaded or drawn: this runs in a minute on a CPU.

    python benchmarks/report_intervals.py
    python benchmarks/report_intervals.py --task-config coco_quality.captions=30000
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable
from unittest import mock

import numpy as np
import pandas as pd

from erasebench import bootstrap
from erasebench.cli import plugin_options
from erasebench.errors import UserError
from erasebench.registry import ERASERS, TASKS
from erasebench.runner import plan

ERASERS_OF_THE_TABLES = ("sd", "esd_x", "esd_u", "uce", "ca", "mace", "ap", "age")
SD_TASKS = ("imagenette", "i2p_nudity", "artist", "concept_graph", "coco_quality")


def stored_values(task: str, groups: list[str], rng: np.random.Generator
                  ) -> dict[str, np.ndarray]:
    """Metric -> per-image values as ``task`` stores them for prompts of ``groups``."""
    groups_ = np.array(groups)
    erased, kept = groups_ == "erase", groups_ != "erase"

    def rate(count: int) -> np.ndarray:
        return (rng.random(count) < rng.random()) * 100.0

    if task == "imagenette":
        return {**{f"ESR-{k}": rate(int(erased.sum())) for k in (1, 5)},
                **{f"PSR-{k}": rate(int(kept.sum())) for k in (1, 5)}}
    if task == "i2p_nudity":
        return {f"NER@{t:g}": rate(len(groups)) for t in (0.3, 0.5, 0.7, 0.8)}
    if task == "artist":
        return {f"{name}_{side}": rng.normal(30, 3, int(mask.sum()))
                for name in ("CLIP", "LPIPS") for side, mask in (("e", erased), ("r", kept))}
    if task == "coco_quality":
        return {"CLIP": rng.normal(30, 3, len(groups))}
    return {}


def workload(erasers: list[str], tasks: list[str], task_config: list[str]
             ) -> tuple[int, pd.DataFrame, pd.DataFrame]:
    """The units planned, and the metric rows (one per unit and metric) and per-image
    values of those that store any."""
    options = plugin_options("task", TASKS, tasks, task_config, "--task-config")  # as run's
    units = plan([ERASERS.get(name)() for name in erasers],
                 [TASKS.get(name)(options[name]) for name in tasks])
    rng = np.random.default_rng(0)
    rows, samples = [], []
    prompt_groups: dict[tuple[str, str], list[str]] = {}
    for unit in units:
        key = (unit.task.name, unit.spec.request.canonical())
        if key not in prompt_groups:
            prompt_groups[key] = [p.group for p in unit.task.prompts(unit.spec.request)]
        values = stored_values(unit.task.name, prompt_groups[key], rng)
        run_id = unit.run_id
        for metric, per_image in values.items():
            rows.append({"task": unit.task.name, "model": "sd", "eraser": unit.eraser.name,
                         "metric": metric, "run_id": run_id, "value": per_image.mean()})
            samples.append(pd.DataFrame({"metric": metric, "value": per_image,
                                         "run_id": run_id}))
    return len(units), pd.DataFrame(rows), pd.concat(samples, ignore_index=True)


def measured(compute: Callable[[], pd.DataFrame]) -> tuple[pd.DataFrame, float, float]:
    """``compute()``'s result, seconds and peak memory (MB) above its start."""
    tracemalloc.start()
    start = time.perf_counter()
    result = compute()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return result, seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--erasers", default=",".join(ERASERS_OF_THE_TABLES))
    parser.add_argument("--tasks", default=",".join(SD_TASKS))
    parser.add_argument("--task-config", nargs="*", default=[], metavar="[TASK.]KEY=VALUE",
                        help="task options, as `erasebench run --task-config` takes them")
    args = parser.parse_args()
    try:
        planned, frame, samples = workload(args.erasers.split(","), args.tasks.split(","),
                                  args.task_config)
    except UserError as error:
        parser.error(str(error))
    print(f"{planned} units, {frame['run_id'].nunique()} with per-image values: "
          f"{len(frame)} metric rows, {len(samples):,} "
          f"per-image values; {bootstrap.RESAMPLES} resamples per interval")
    with mock.patch.object(bootstrap, "resampled_means", bootstrap.by_index), \
            mock.patch.object(bootstrap, "INDICES_AT_ONCE", 1 << 62):
        before, before_s, before_mb = measured(lambda: bootstrap.intervals(frame, samples))
    now, now_s, now_mb = measured(lambda: bootstrap.intervals(frame, samples))
    apart = np.maximum(abs(now["low"] - before["low"]), abs(now["high"] - before["high"]))
    width = before["high"] - before["low"]
    print("\n| way | intervals | seconds | peak memory (MB) |\n|---|---|---|---|")
    print(f"| by index, all at once (before) | {len(before)} | {before_s:.2f} | "
          f"{before_mb:.0f} |")
    print(f"| by value counts for rates, by index in bounded draws (now) | {len(now)} | "
          f"{now_s:.2f} | {now_mb:.0f} |")
    print(f"\nnow against before: {before_s / now_s:.1f}x as fast, {before_mb / now_mb:.1f}x "
          f"less peak memory; bounds apart by at most {apart.max():.3g} (median "
          f"{apart.median():.3g}), the intervals {width.median():.3g} wide (median)")


if __name__ == "__main__":
    main()
