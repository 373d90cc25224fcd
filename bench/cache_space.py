"""Whether the cache's disk has room for the images a run will draw and the erasures it
will make.

A full reproduction writes hundreds of thousands of PNGs (``erasebench run --dry-run``
counts them). How large one is depends on what it shows — a noisy image compresses far
worse than a flat one — so nothing here assumes a size: the cache's own PNGs of the same
height and width are measured (a sample of them, by their files' sizes; the image
dimensions from each PNG's header), and images of a size the cache holds none of yet are
left unpriced. An edit file holds the parameters its eraser changed, sized as those it
may change (``erasebench.cached_work.edit_size``): on SD v1.4 ESD-u's 3.3 GB, UCE's 77 MB, so
a full reproduction's dozen ESD-u erasures take 39 GB. While an erasure trains, its
checkpoint (``erasebench.training_checkpoints``: the trained weights and Adam's two
moments, ESD-u's 9.8 GB) lies beside the edit cache until the edit is saved, twice over
while it is rewritten (the new file is written before the old one goes): each process
of a run trains one erasure at a time, so the checkpoints take at most twice the largest
ones, one per process. ``--dry-run --check-cache`` prints what the images to draw, the
erasures to make and their checkpoints would take against the space free on the cache's
disk; a run warns when they would not fit
(:class:`CacheRoom`): at its start, or, with a fresh cache, whose images no PNG sizes
yet, after the first unit that drew some. A run that does fill the disk stops with a
clear error and loses nothing (every write is atomic), so this only spares finding out
hours in.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from rich.filesize import decimal

SAMPLE = 1000  # PNGs measured: enough for a mean within a few percent, read in a second


@dataclass
class CacheSpace:
    """Per image size (height, width): the images to draw, the mean bytes of the cache's
    PNGs of that size and how many were measured; about the bytes each erasure still to
    make takes in the edit cache (beside the image cache, in the same cache folder);
    and the bytes free on their disk."""

    to_draw: Mapping[tuple[int, int], int]
    mean_bytes: dict[tuple[int, int], float] = field(default_factory=dict)
    measured: dict[tuple[int, int], int] = field(default_factory=dict)
    free: int = 0
    edit_bytes: Sequence[int] = ()
    # about the bytes of each erasure's training checkpoint (0: its eraser keeps none), and
    # the processes training erasures at once
    checkpoint_bytes: Sequence[int] = ()
    processes: int = 1

    @property
    def images_needed(self) -> float:
        """Bytes the images to draw of a measured size would take."""
        return sum(count * self.mean_bytes[size] for size, count in self.to_draw.items()
                   if size in self.mean_bytes)

    @property
    def checkpoints_needed(self) -> int:
        """Bytes the erasures' checkpoints may take at once: the largest ones, one per
        process, each twice (the new file written before the old one goes)."""
        largest = sorted(self.checkpoint_bytes, reverse=True)[:self.processes]
        return 2 * sum(largest)

    @property
    def needed(self) -> float:
        """Bytes the images to draw of a measured size, the erasures to make and their
        trainings' checkpoints would take."""
        return self.images_needed + sum(self.edit_bytes) + self.checkpoints_needed

    @property
    def unpriced(self) -> int:
        """Images to draw of a size the cache holds none of."""
        return sum(count for size, count in self.to_draw.items()
                   if count and size not in self.mean_bytes)

    def line(self) -> str:
        """``5,000 images to draw, about 1.6 GB for 4,000 of them (512x512: 410.0 kB each,
        the mean of 1,000 cached; 256x256: none cached yet to size them by); 12 erasures
        to make, about 39.0 GB, and their trainings' checkpoints up to 19.6 GB while they
        are made; 120.0 GB free on its disk``."""
        after_images = f"{decimal(self.free)} free on its disk"  # erasures, then the room
        if self.edit_bytes:
            count = len(self.edit_bytes)
            checkpoints = self.checkpoints_needed
            their = "its training's checkpoint" if count == 1 else "their trainings' checkpoints"
            during = (f", and {their} up to {decimal(checkpoints)} while "
                      f"{'it is' if count == 1 else 'they are'} made" if checkpoints else "")
            after_images = (f"{count:,} erasure{'s' if count > 1 else ''} to make, about "
                            f"{decimal(sum(self.edit_bytes))}{during}; {after_images}")
        drawn = sum(self.to_draw.values())
        if not drawn:
            return f"no images to draw; {after_images}"
        parts = []
        for (height, width), count in sorted(self.to_draw.items()):
            if not count:
                continue
            if (height, width) in self.mean_bytes:
                parts.append(f"{height}x{width}: {decimal(round(self.mean_bytes[height, width]))}"
                             f" each, the mean of {self.measured[height, width]:,} cached")
            else:
                parts.append(f"{height}x{width}: none cached yet to size them by")
        text = f"{drawn:,} images to draw"
        priced = drawn - self.unpriced
        if priced:
            text += f", about {decimal(round(self.images_needed))}"
            if self.unpriced:
                text += f" for {priced:,} of them"
        return f"{text} ({'; '.join(parts)}); {after_images}"

    def short_of_room(self) -> bool:
        return self.needed > self.free


def png_sizes(root: Path, sample: int = SAMPLE) -> dict[tuple[int, int], list[int]]:
    """File sizes of up to ``sample`` PNGs under ``root`` (the image cache's folders, whose
    names, hashes, spread any model and setting over all of them), by (height, width)."""
    sizes: dict[tuple[int, int], list[int]] = {}
    folders = sorted(entry.path for entry in os.scandir(root) if entry.is_dir()) \
        if root.is_dir() else []
    pngs = (entry for folder in folders for entry in os.scandir(folder)
            if entry.name.endswith(".png"))
    for entry in itertools.islice(pngs, sample):
        try:
            with Image.open(entry.path) as image:  # reads the header only
                width, height = image.size
            sizes.setdefault((height, width), []).append(entry.stat().st_size)
        except (OSError, ValueError):  # written as we look, or damaged: not a measure
            continue
    return sizes


def free_bytes(path: Path) -> int:
    """Bytes free on the disk ``path`` is (or would be) on."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def cache_space(images_root: Path, to_draw: Mapping[tuple[int, int], int],
                sample: int = SAMPLE, edit_bytes: Sequence[int] = (),
                checkpoint_bytes: Sequence[int] = (), processes: int = 1) -> CacheSpace:
    """What ``to_draw`` (images per (height, width)) would take in the image cache at
    ``images_root``, at the mean size of its PNGs of each size, and the erasures still to
    make (``edit_bytes``, about each edit's; ``checkpoint_bytes``, about each one's
    training checkpoint, made by ``processes`` at a time) beside it."""
    measured = png_sizes(images_root, sample)
    return CacheSpace(to_draw,
                      {size: sum(files) / len(files) for size, files in measured.items()},
                      {size: len(files) for size, files in measured.items()},
                      free_bytes(images_root), edit_bytes, checkpoint_bytes, processes)


@dataclass
class CacheRoom:
    """A run's watch on the image cache's disk: one warning at most, when the images still
    to draw may not fit. It looks as the run starts and, while some images to draw are of
    a size the cache held none of, again after each unit: a run on a fresh cache, the one
    most likely to fill a disk (a full reproduction draws hundreds of thousands of PNGs),
    is sized after its first unit instead of never."""

    root: Path
    processes: int = 1  # the run's, each training an erasure at a time
    watching: bool = True

    def note(self, space: CacheSpace) -> CacheSpace | None:
        """``space`` when it says the images to draw may not fit (the watch then ends, as
        it does once every image to draw is priced), else None."""
        if not self.watching:
            return None
        if space.short_of_room() or not space.unpriced:
            self.watching = False
        return space if space.short_of_room() else None

    def look(self, to_draw: Mapping[tuple[int, int], int], edit_bytes: Sequence[int] = (),
             checkpoint_bytes: Sequence[int] = ()) -> CacheSpace | None:
        """:meth:`note` of the space ``to_draw`` (images per (height, width)) and the
        erasures still to make (their edits' and checkpoints' bytes) would take, measured
        now; None without a look once the watch has ended, or where this process does not
        see the cache (a Ray driver on another file system than its actors)."""
        if not self.watching or not self.root.is_dir():
            return None
        return self.note(cache_space(self.root, to_draw, edit_bytes=edit_bytes,
                                     checkpoint_bytes=checkpoint_bytes,
                                     processes=self.processes))
