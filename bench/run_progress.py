"""How far a run is, and about how long is left, by the images its units ask for.

A full reproduction runs for hours (``README.md``, "How long a full reproduction takes"),
and its units differ fivefold in size (an artist unit asks for 1,000 images, an
Imagenette split 5,000), so counting units says little about the time left. The
estimate here weighs each unit by the images it asks for (``erasebench.workload``),
and takes the rate of images per second since the run began, over every unit recorded in
the results folder since then: those of helper processes, Ray actors and other runs on the
same folder included. It is rough early on: an eraser's first unit also trains its
erasure, and units whose images another unit already drew finish faster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


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
    """The units to do (run id -> images each asks for) and which of them are recorded."""

    images_of: Mapping[str, int]
    clock: Callable[[], float] = time.monotonic
    started: float = field(init=False)
    finished: set[str] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def update(self, is_done: Callable[[str], bool]) -> None:
        """Marks finished every unit to do that ``is_done`` (the result store's) says is."""
        self.finished |= {run_id for run_id in self.images_of
                          if run_id not in self.finished and is_done(run_id)}

    @property
    def total_images(self) -> int:
        return sum(self.images_of.values())

    def line(self) -> str:
        """``3/40 units, 1,200/41,018 images, about 5 h 02 min left``."""
        total = self.total_images
        done = sum(self.images_of[run_id] for run_id in self.finished)
        text = f"{len(self.finished)}/{len(self.images_of)} units, {done:,}/{total:,} images"
        elapsed = self.clock() - self.started
        if 0 < done < total and elapsed > 0:
            text += f", about {format_duration(elapsed * (total - done) / done)} left"
        return text
