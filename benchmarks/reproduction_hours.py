"""How long a full reproduction of the papers' tables takes on 1 to N GPUs, at rates measured
on a GPU: the real plan's units (every eraser asked for against the five SD tasks, default
options), their images counted as the image cache draws them (``erasebench.workload``:
the original model's images once for every task that prompts alike, each erasure once
for the units that share it), and priced as a run's progress line prices them
(``erasebench.run_progress``): the units taken in order by the GPUs' processes, each the
next as it ends one, a unit that needs an erasure another is making waiting for it. The
order is the plan's (task by task), or longest first as a run takes them: a fresh run by
the images each unit draws, a resumed one (its pace known) by images and erasures. Once
no unit is left to start, the GPUs that end theirs help draw the images of those still
running, as a run's processes do (``Runner.help``), or, for comparison, sit idle.

    python benchmarks/reproduction_hours.py                          # the H100's rates
    python benchmarks/reproduction_hours.py --images-per-second 2.21 # with --compile
    python benchmarks/reproduction_hours.py --gpus 8,64 --erasure-minutes age=30

The defaults are the H100's of ``benchmarks/README.md``: 1.63 images/s at 100 steps
(3.21 at 50, the generator's default, eager), and each eraser's minutes per erasure at its
default steps. Scoring is not counted (each scorer 1-2% of the drawing). Nothing is
loaded or drawn: this runs in seconds on a CPU.
"""

from __future__ import annotations

import argparse

from erasebench.registry import ERASERS, TASKS
from erasebench.run_progress import RunProgress
from erasebench.runner import plan
from erasebench.workload import count_images

ERASERS_OF_THE_TABLES = ("sd", "esd_x", "esd_u", "uce", "ca", "mace", "ap", "age")
SD_TASKS = ("imagenette", "i2p_nudity", "artist", "concept_graph", "coco_quality")
# Minutes per erasure of SD v1.4 at each eraser's default steps, measured on an H100
# (benchmarks/README.md, 2026-11-27): UCE's is 0.15 s.
H100_ERASURE_MINUTES = {"esd_x": 7.4, "esd_u": 11.4, "uce": 0.0025, "ca": 0.7, "mace": 0.2,
                        "ap": 36.8, "age": 42.1}


def minutes(pairs: list[str]) -> dict[str, float]:
    table = dict(H100_ERASURE_MINUTES)
    for pair in pairs:
        name, _, value = pair.partition("=")
        table[name] = float(value)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--erasers", default=",".join(ERASERS_OF_THE_TABLES))
    parser.add_argument("--tasks", default=",".join(SD_TASKS))
    parser.add_argument("--images-per-second", type=float, default=1.63,
                        help="per GPU, at the tasks' steps (100 for the SD tasks)")
    parser.add_argument("--erasure-minutes", nargs="*", default=[], metavar="ERASER=MIN")
    parser.add_argument("--gpus", default="1,8,16,32,64,128")
    args = parser.parse_args()
    erasers = [ERASERS.get(name)() for name in args.erasers.split(",")]
    tasks = [TASKS.get(name)({}) for name in args.tasks.split(",")]
    units = plan(erasers, tasks)
    workload = count_images(units)
    erasure_seconds = {name: 60 * value for name, value in minutes(args.erasure_minutes).items()}
    print(f"{len(units)} units, {workload.distinct:,} images to draw, {workload.edits} "
          f"erasures; {args.images_per_second} images/s per GPU; erasures (minutes): "
          + ", ".join(f"{name} {seconds / 60:g}" for name, seconds in erasure_seconds.items()
                      if name in args.erasers.split(",")))
    print("\n| GPUs | hours, the plan's order, idle GPUs idle | longest first, idle GPUs "
          "idle | longest first, idle GPUs helping (a fresh run) | the same, pace known (a "
          "resumed run) | an even share of the total | helping's gain | fresh run's / even "
          "share |\n|---|---|---|---|---|---|---|---|")

    def seconds_on(gpus: int, order: str, helping: bool) -> float:
        progress = RunProgress.of_units(units, [], processes=gpus, workload=workload)
        progress.helping = helping
        if order == "fresh":  # before any pace: by the images each unit draws
            progress.take_longest_first()
        progress.assume_pace(1 / args.images_per_second, erasure_seconds)
        if order == "paced":  # a resumed run's: images and erasures at the pace
            progress.take_longest_first()
        seconds = progress.seconds_left_by_timings()
        assert seconds is not None  # a pace is assumed for every image
        return seconds

    total = seconds_on(1, "plan", helping=False)
    for gpus in map(int, args.gpus.split(",")):
        plan_order, idle = (seconds_on(gpus, order, helping=False)
                            for order in ("plan", "fresh"))
        fresh, paced = (seconds_on(gpus, order, helping=True) for order in ("fresh", "paced"))
        even = total / gpus
        print(f"| {gpus} | " + " | ".join(f"{seconds / 3600:#.3g}" for seconds in
                                          (plan_order, idle, fresh, paced, even))
              + f" | {idle / fresh:.2f} | {fresh / even:.2f} |")


if __name__ == "__main__":
    main()
