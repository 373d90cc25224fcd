"""What a process did for units other processes ran (``Runner.help``), kept beside the
results: ``results/helped/<run_id>.<unique>.json``, one file per unit a process helped.

Why: a unit's record holds the seconds of the process that ran it, so the images its
helpers drew at a run's end, and the seconds they took, were in no record, and
``erasebench timings`` read a run's drawing as less than it was. The unit's own record
does not change (its rows are the same whoever draws its images); these files only add
the helpers' work to the timings. Each helper writes its own file, atomically, so
helpers of one unit never write the same one; they hold no results, and deleting them
loses only that part of the timings.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from erasebench.errors import CorruptFileError
from erasebench.io import atomic_write_json, utc_timestamp

FOLDER = "helped"


class HelpRecord(BaseModel):
    """One process's work for one unit it did not run, in seconds on that process."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str  # the unit helped
    eraser: str
    task: str
    model: str
    device: str  # the helping process's, as a unit's record names its own (hardware.py)
    images_drawn: int  # the unit's own (records before 2026-12-06: its references too)
    drawing: float  # drawing them (its model loaded, its edit at hand)
    # The original model's images its scoring compares with (``Task.reference_prompts``),
    # which its process's scoring draws where no helper did, and the seconds they took:
    # ``erasebench timings`` counts them as the scoring's drawing, as it does the unit's.
    references_drawn: int = 0
    referencing: float = 0.0
    # Making the unit's erasure, where the helper claimed it first (0.0: it read or
    # waited for the one the unit's process made).
    erasure: float = 0.0
    erasure_made: bool = False
    created_at: str = Field(default_factory=utc_timestamp)

    @property
    def images(self) -> int:
        """Every image drawn for the unit: its own and its scoring's references."""
        return self.images_drawn + self.references_drawn

    @property
    def drawing_all(self) -> float:
        """The seconds drawing :attr:`images` took."""
        return self.drawing + self.referencing

    @property
    def seconds(self) -> float:
        """All the help's seconds: the erasure, where made, and the drawing."""
        return self.erasure + self.drawing_all


def write_help_record(results_dir: str | Path, record: HelpRecord) -> Path:
    """Writes ``record`` under ``results_dir/helped/`` in a file no other helper writes."""
    name = f"{record.run_id}.{uuid.uuid4().hex[:12]}.json"
    return atomic_write_json(Path(results_dir) / FOLDER / name, record.model_dump(mode="json"))


def help_records(results_dir: str | Path) -> list[HelpRecord]:
    """The folder's help records, in file order; a damaged one is a CorruptFileError
    naming it (they are written atomically, so only a hand-edited file can be)."""
    folder = Path(results_dir) / FOLDER
    records = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            records.append(HelpRecord.model_validate(json.loads(path.read_text())))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValidationError) as error:
            raise CorruptFileError(f"help record {str(path)!r} is unreadable: {error}"
                                   ) from error
    return records
