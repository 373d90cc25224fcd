"""What an ``erasebench`` command spends around its work: its imports before it starts
and the interpreter's exit after it ends, measured in one run for the command as
installed (``erasebench.cli:console_main``, which freezes the process's objects out of
the garbage collector's last passes) and for plain ``erasebench.cli:main`` (Python's
own exit), each from fresh folders.

    python benchmarks/command_overhead.py              # 3 of each command each way
    python benchmarks/command_overhead.py --repeats 5

The commands: ``run --dry-run`` of the default run (the miniature world's 99 units,
nothing loaded) and ``run`` of sd x shapes_objects on one process (4 units, 300 images
drawn). For each: the median seconds in all, before its first line (imports, the plan)
and from its last line to the process's end (the exit), and installed against plain.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WAYS = {
    "installed": [sys.executable, "-m", "erasebench.cli"],
    "plain main": [sys.executable, "-c", "import sys; from erasebench.cli import main; "
                                         "sys.exit(main())"],
}
COMMANDS = {
    "run --dry-run (default run)": ["run", "--dry-run"],
    "run sd x shapes_objects, 1 process": ["run", "--erasers", "sd", "--tasks",
                                           "shapes_objects", "--workers", "1", "--no-report"],
}


def timed_command(argv: list[str], folder: Path) -> tuple[float, float, float]:
    """Seconds in all, to the first line printed, and from the last line to the end."""
    command = [*argv, "--results", str(folder / "results"), "--cache", str(folder / "cache")]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, cwd=folder)
    assert process.stdout is not None
    first = last = None
    for _ in process.stdout:
        last = time.perf_counter()
        first = first or last
    if process.wait() != 0 or first is None or last is None:
        raise SystemExit(f"{' '.join(command)} failed (exit {process.returncode})")
    end = time.perf_counter()
    return end - start, first - start, end - last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each command each way")
    args = parser.parse_args()
    print(f"{'command':<38} {'way':<10} {'all s':>7} {'start s':>8} {'exit s':>7} "
          f"{'vs plain':>9}")
    for name, words in COMMANDS.items():
        runs: dict[str, list[tuple[float, float, float]]] = {way: [] for way in WAYS}
        for _ in range(args.repeats):  # the ways alternate, so drift hits both alike
            for way, prefix in WAYS.items():
                with tempfile.TemporaryDirectory() as folder:
                    runs[way].append(timed_command([*prefix, *words], Path(folder)))
        rows = {way: [statistics.median(column) for column in zip(*times, strict=True)]
                for way, times in runs.items()}
        for way, (total, before, after) in rows.items():
            ratio = rows["plain main"][0] / total
            print(f"{name:<38} {way:<10} {total:7.2f} {before:8.2f} {after:7.2f} "
                  f"{ratio:8.2f}x")


if __name__ == "__main__":
    main()
