"""A few images of every unit, kept in ``results/`` for the leaderboard's image grids.

The runner stores, per unit, small copies of up to :data:`GRID_PROMPTS` of its images —
the first prompt of alternately an erased and a preserved class or concept — as one PNG
strip with a JSON list of their prompts. The prompts and seeds depend only on the task and
request, so the strips of all erasers of a request show the same prompts and seeds: the
papers' "before and after" figures. Images of unsafe prompts are never kept unless the run
is told to (``show_unsafe``), and the reporter leaves them out of grids unless told too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from erasebench.errors import CorruptFileError
from erasebench.io import atomic_write, atomic_write_json
from erasebench.specs import PromptSpec

GRID_PROMPTS = 6
THUMBNAIL_SIZE = 128
SUBFOLDER = "thumbnails"
LISTED = ("text", "seed", "label", "group", "unsafe")  # of each image's prompt, in its list


def choose(prompts: Sequence[PromptSpec], show_unsafe: bool = False,
           count: int = GRID_PROMPTS) -> list[int]:
    """Indices of the prompts to keep: the first of each label, alternating between the
    groups (erase, preserve, ...), unsafe ones only when asked."""
    firsts: dict[str, list[int]] = {}
    seen: set[str] = set()
    for index, prompt in enumerate(prompts):
        if (prompt.unsafe and not show_unsafe) or (prompt.label and prompt.label in seen):
            continue
        seen.add(prompt.label)
        firsts.setdefault(prompt.group, []).append(index)
    chosen: list[int] = []
    queues = [list(indices) for indices in firsts.values()]
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop(0))
    return sorted(chosen)


def save(root: str | Path, run_id: str, images: Sequence[Image.Image],
         prompts: Sequence[PromptSpec], show_unsafe: bool = False) -> Path | None:
    """Writes ``<root>/thumbnails/<run_id>.png`` (a strip) and ``.json`` (its prompts)."""
    indices = choose(prompts, show_unsafe)
    if not indices:
        return None
    side = min(THUMBNAIL_SIZE, max(images[i].size[0] for i in indices))
    strip = Image.new("RGB", (side * len(indices), side))
    for column, index in enumerate(indices):
        thumbnail = images[index].convert("RGB").resize((side, side), Image.Resampling.LANCZOS)
        strip.paste(thumbnail, (column * side, 0))
    folder = Path(root) / SUBFOLDER
    folder.mkdir(parents=True, exist_ok=True)
    meta = [{key: getattr(prompts[i], key) for key in LISTED} for i in indices]
    atomic_write_json(folder / f"{run_id}.json", meta)
    return atomic_write(folder / f"{run_id}.png", lambda tmp: strip.save(tmp, format="PNG"))


def load(root: str | Path, run_id: str) -> tuple[list[Image.Image], list[dict[str, Any]]] | None:
    """The unit's thumbnails and their prompts; None if it kept none (or its run stopped
    between writing the list and the strip); a CorruptFileError naming the file if either
    cannot be read or they do not match (never shown mislabelled)."""
    folder = Path(root) / SUBFOLDER
    listing, image = folder / f"{run_id}.json", folder / f"{run_id}.png"
    if not listing.is_file() or not image.is_file():
        return None
    try:
        meta = json.loads(listing.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorruptFileError(f"thumbnails' list {str(listing)!r} is unreadable: {error}"
                               ) from error
    if not isinstance(meta, list) or not all(
            isinstance(item, dict) and set(LISTED) <= item.keys() for item in meta):
        raise CorruptFileError(f"thumbnails' list {str(listing)!r} is not a list of prompts "
                               f"with their {', '.join(sorted(LISTED))}")
    try:
        with Image.open(image) as strip:
            strip = strip.convert("RGB")
    except OSError as error:
        raise CorruptFileError(f"thumbnails {str(image)!r} are unreadable: {error}"
                               ) from error
    side = strip.size[1]
    if strip.size[0] != side * len(meta):
        raise CorruptFileError(
            f"thumbnails {str(image)!r} hold {strip.size[0] // max(side, 1)} images but "
            f"{str(listing)!r} lists {len(meta)} prompt{'' if len(meta) == 1 else 's'}")
    return [strip.crop((i * side, 0, (i + 1) * side, side)) for i in range(len(meta))], meta
