"""The attack cache: what an attack on an edited model learnt, kept in ``<cache>/attacks/``.

A robustness unit makes one recovery attack per erased class and radius: on SD, minutes of
a GPU each, most of the unit's time (``erasebench.tasks.robustness``). A run stopped in
the middle of a unit's attacks (a Slurm time limit, Ctrl-C, a lost node) used to make all
of them again on its next start. Now each attack's result is kept here as it ends, keyed
by everything it depends on (the edited model's fingerprint, and what the task names: the
prompts, its images, the radius, the attack's settings), so the next start makes only the
attacks not done yet, and a unit scored again (a new scorer version) makes none. What is
read from here is what was made, so a resumed unit records the numbers of one never
stopped.

The files are small (a conditioning perturbation: 236 kB on SD), safetensors with the key's
fields in their metadata; an entry that cannot be read, or whose fields are not the key's,
is made again, as a damaged image is. Beside the key, an entry names the work unit it was
made for, what it was made as (the attack, its version and precision: ``Task.attack_kind``)
and the seconds making it took, which are no part of the key: a run's time left and
``--dry-run --check-cache`` count by them what a unit to do will read rather than make
(:meth:`AttackCache.held_by_unit`), without its edit or images at hand.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from erasebench.io import atomic_write, canonical_json, read_safetensors

if TYPE_CHECKING:  # torch is imported where used
    import torch

FORMAT = "erasebench.attack/1"


@dataclass(frozen=True)
class HeldAttacks:
    """The attacks the cache holds that were made for one work unit, and the seconds
    making them took."""

    count: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class AttackCache:
    folder: Path

    def path(self, fields: dict[str, Any]) -> Path:
        key = hashlib.sha256(canonical_json(fields).encode()).hexdigest()
        return self.folder / f"{key[:40]}.safetensors"

    def get(self, fields: dict[str, Any]) -> dict[str, torch.Tensor] | None:
        """The tensors kept for the attack ``fields`` name; None where there are none or
        they cannot be read."""
        path = self.path(fields)
        if not path.is_file():
            return None
        try:
            tensors, metadata = read_safetensors(path)
        except Exception:  # safetensors raises several types for a damaged file
            return None
        if (metadata.get("format") != FORMAT
                or metadata.get("fields") != canonical_json(fields)):
            return None
        return tensors

    def put(self, fields: dict[str, Any], tensors: dict[str, torch.Tensor],
            unit: str = "", seconds: float | None = None, made_as: str = "") -> bool:
        """Keeps ``tensors`` for the attack ``fields`` name (atomic), noting the work unit
        it was made for (its run id), what it was ``made_as`` and the ``seconds`` making it
        took where given; a write that fails (a full disk, a read-only cache) keeps nothing
        and loses only the reuse: False."""
        from safetensors.torch import save_file

        cpu = {name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}
        metadata = {"format": FORMAT, "fields": canonical_json(fields), "unit": unit,
                    "made_as": made_as}
        if seconds is not None:
            metadata["seconds"] = repr(float(seconds))
        try:
            atomic_write(self.path(fields), lambda tmp: save_file(cpu, str(tmp), metadata))
        except OSError:
            return False
        return True

    def held_by_unit(self) -> dict[tuple[str, str], HeldAttacks]:
        """(run id, made as) -> the attacks held that were made for that unit, as that
        (``Task.attack_kind``: entries written before they said so, or before units were
        named, or unreadable, left out): read from the files' headers only, a few hundred
        bytes each. An attack another unit made that this one would read too (the same
        edit, prompts and settings) counts for the unit that made it."""
        from safetensors import safe_open

        counts: dict[tuple[str, str], int] = {}
        seconds: dict[tuple[str, str], float] = {}
        with contextlib.suppress(FileNotFoundError), os.scandir(self.folder) as entries:
            for entry in entries:
                if not entry.name.endswith(".safetensors"):
                    continue
                try:
                    with safe_open(entry.path, framework="pt") as opened:
                        metadata = opened.metadata() or {}
                    made_in = float(metadata.get("seconds", "0"))
                except Exception:  # a damaged entry, one removed as we look: made again
                    continue
                held = (metadata.get("unit", ""), metadata.get("made_as", ""))
                if metadata.get("format") != FORMAT or not all(held):
                    continue
                counts[held] = counts.get(held, 0) + 1
                seconds[held] = seconds.get(held, 0.0) + made_in
        return {held: HeldAttacks(count, seconds[held]) for held, count in counts.items()}


def image_digest(images: Any) -> str:
    """sha256 over the pixels (mode, size, bytes) of ``images`` (PIL images): what an
    attack that learns from images keys them by."""
    digest = hashlib.sha256()
    for image in images:
        digest.update(json.dumps([image.mode, list(image.size)]).encode())
        digest.update(image.tobytes())
    return digest.hexdigest()
