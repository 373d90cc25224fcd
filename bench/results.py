"""Result records and the tidy table.

One JSON record per work unit, ``results/runs/<run_id>.json``, written atomically and
carrying its own checksum: a unit is either completely recorded or not at all, so a
killed run resumes by redoing exactly the units without a valid record, and two runs
writing the same folder write identical files. :func:`load_results` flattens the
records into one long pandas table.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from erasebench.code_version import code_version
from erasebench.errors import CorruptFileError, UserError
from erasebench.io import atomic_write_bytes, atomic_write_json, canonical_json, utc_timestamp
from erasebench.specs import RunSpec

# 2: provenance.timings (records of version 1, without them, are read as they are)
# 3: timings.scoring_drawn (an erasebench of version 2 would call such records malformed)
# 4: timings.images_awaited
# 5: samples_digest (an erasebench of version 4 would call such records malformed, and redo)
# 6: timings.batch (an erasebench of version 5 refuses such records: upgrade to read them)
# 7: timings.attacking (an erasebench of version 6 refuses such records, as above)
# 8: timings.attacks_read (an erasebench of version 7 refuses such records, as above)
# 9: timings.attacked_drawn (an erasebench of version 8 refuses such records, as above)
SCHEMA_VERSION = 9
COLUMNS = [
    "eraser", "config_hash", "request", "task", "task_version", "metric", "split", "seed",
    "value", "higher_is_better", "headline", "model", "run_id",
    # What else makes a run measure something else: the task's options, and how its
    # images were drawn (the run's GenerationSpec; height and width empty for the model's
    # native size, guidance the run's, which a prompt's own overrides).
    "task_options_hash", "scheduler", "steps", "guidance", "height", "width", "precision",
]
_PACKAGES = ("erasebench", "torch", "diffusers", "transformers", "open_clip_torch",
             "nudenet", "lpips", "torchmetrics")


class MetricRow(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: str
    value: float
    higher_is_better: bool | None  # None: descriptive, neither direction is better
    split: str = ""
    headline: bool = True  # False: detail (e.g. per class), shown apart from the main table
    seed: int | None = None


class UnitTimings(BaseModel):
    """Where a unit's wall time went, in seconds, on the process that ran it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    erasure: float  # making the edit, or reading it from the edit cache
    erasure_trained: bool  # made here (False: another unit or run had made it)
    # How long making the edit took wherever it was made (None: an edit saved before
    # erasebench kept it), and on what device.
    training: float | None = None
    training_device: str = ""
    images: float  # the unit's images: drawn, read from the image cache or awaited
    # The task's scoring, including any reference images it draws and any attack it makes
    scoring: float
    images_drawn: int  # of the unit's images, those this process drew (the rest were cached)
    # Images the scoring drew (the original model's reference images when not cached, the
    # robustness task's attacked images). None: a record written before 2026-11-30, whose
    # images_drawn counts these as well.
    scoring_drawn: int | None = None
    # Of ``images``, the seconds spent waiting for images other processes were drawing (the
    # processes helping this unit, Runner.help, or running a unit that asks for the same
    # images). None: a record written before 2026-12-02, whose ``images`` holds them.
    images_awaited: float | None = None
    # Images per batch the generator ended the unit's own drawing at: the batch given or
    # fitted to the device's memory, halved where it ran out (erasebench.memory), or the
    # images drawn where fewer; on a GPU images/s follows it. None: it drew none, or a
    # record written before 2026-12-07.
    batch: int | None = None
    # Of ``scoring``, the seconds the task spent attacking the edited model (the robustness
    # task's recovery attack: an optimisation, no scorer's pace; erasebench.probe), 0 for
    # a task that attacks nothing. None: a record written before 2026-12-07 (schema 7).
    attacking: float | None = None
    # Of the task's attacks, those read from the attack cache, made before by a run
    # stopped half-way through the unit or by another (erasebench.attack_cache): their
    # seconds are not in ``attacking``. None: none, or a record written before 2026-12-07.
    attacks_read: int | None = None
    # Of ``scoring_drawn``, the images drawn with an attacked conditioning (the robustness
    # task's: every unit draws its own, unlike the original model's reference images, which
    # the first unit to score against them draws). None: none, or a record written before
    # 2026-12-07 (schema 8), whose ``scoring_drawn`` holds them alone.
    attacked_drawn: int | None = None

    def images_less_waiting(self) -> float:
        """``images`` less :attr:`images_awaited`: the seconds this process took to draw or
        read the unit's images, its own pace, which waiting for others' would slow."""
        return self.images - (self.images_awaited or 0.0)

    def own_images_drawn(self, images: int) -> int:
        """Of the unit's ``images``, those it drew; a record written before the images its
        scoring drew were counted apart counts them too, and is taken at most as its own."""
        if self.scoring_drawn is None:
            return min(self.images_drawn, images)
        return self.images_drawn


class Provenance(BaseModel):
    """Where a number came from. Not part of any hash: reruns elsewhere give equal rows."""

    packages: dict[str, str] = Field(default_factory=dict)
    git_sha: str = ""
    # A digest of the source's uncommitted changes (erasebench.code_version); "" for none,
    # and left out of the stored record then, as in records written before it was kept.
    code_changes: str = ""
    python: str = ""
    # The device and its model, 'cuda (NVIDIA H100 80GB HBM3)' (erasebench.hardware);
    # just 'cuda' or 'cpu' in records written before 2026-12-02.
    device: str = ""
    created_at: str = ""
    timings: UnitTimings | None = None  # None in records written before they were kept


class RunRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    run_id: str
    spec: RunSpec
    task_version: str
    model_fingerprint: str
    edit_digest: str
    image_count: int
    scorers: dict[str, str] = Field(default_factory=dict)
    metrics: list[MetricRow]
    provenance: Provenance = Field(default_factory=Provenance)
    # sha256 of the unit's samples file (its per-image values), which a run checks before
    # it takes the unit for done; None where it has none, or its record predates schema 5.
    samples_digest: str | None = None
    checksum: str = ""

    def content_checksum(self) -> str:
        body = self.stored()
        del body["checksum"]
        return hashlib.sha256(canonical_json(body).encode()).hexdigest()

    def stored(self) -> dict[str, Any]:
        """The record as its JSON file holds it; one written before timings were kept
        has none, one written before the images its scoring drew were kept apart has no
        ``scoring_drawn``, one written before waiting for others' images was kept apart
        has no ``images_awaited``, one that drew no images (or written before the batch
        was kept) no ``batch``, one that read no attack from the attack cache no
        ``attacks_read``, one that drew no attacked images no ``attacked_drawn``, one
        from code without uncommitted changes (or written before they were kept) no
        ``code_changes``, one without samples (or written before their digest was kept)
        no ``samples_digest``, and each keeps its checksum."""
        body = self.model_dump(mode="json")
        if body["samples_digest"] is None:
            del body["samples_digest"]
        if not body["provenance"]["code_changes"]:
            del body["provenance"]["code_changes"]
        timings = body["provenance"]["timings"]
        if timings is None:
            del body["provenance"]["timings"]
        else:
            # in schema 3, 4, 6, 7, 8 and 9
            for added in ("scoring_drawn", "images_awaited", "batch", "attacking",
                          "attacks_read", "attacked_drawn"):
                if timings[added] is None:
                    del timings[added]
        return body


def provenance(device: str, timings: UnitTimings | None = None) -> Provenance:
    packages = {}
    for name in _PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    code = code_version()
    return Provenance(packages=packages, git_sha=code.sha, code_changes=code.changes,
                      python=platform.python_version(), device=device,
                      created_at=utc_timestamp(), timings=timings)


_REDO = "run its unit again (the run that made it redoes it)"


class ResultStore:
    """The ``runs/`` folder of a results directory, and ``samples/``: per image values
    behind a unit's metrics (for bootstrap intervals), one parquet file per unit, written
    before its record so that a finished unit always has them."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.runs = self.root / "runs"
        self.sample_dir = self.root / "samples"

    def write_samples(self, run_id: str, samples: dict[str, Sequence[float]]) -> str | None:
        """Stores ``metric -> per-image values`` of one unit; returns the file's sha256
        digest, for its record to keep (None: there were none, and nothing is written)."""
        rows = [(metric, float(v)) for metric, values in samples.items() for v in values]
        if not rows:
            return None
        frame = pd.DataFrame(rows, columns=["metric", "value"])
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        atomic_write_bytes(self.samples_path(run_id), buffer.getvalue())
        return hashlib.sha256(buffer.getvalue()).hexdigest()

    def samples_path(self, run_id: str) -> Path:
        return self.sample_dir / f"{run_id}.parquet"

    def read_samples(self, run_id: str, digest: str | None) -> pd.DataFrame | None:
        """A unit's per-image values (metric, value), None where it stored none; raises
        CorruptFileError where the file is missing though its record's ``digest`` names one,
        fails that digest, or cannot be read (a record without a digest: the last two)."""
        data = self._sample_bytes(run_id, digest)
        return None if data is None else self._parsed_samples(run_id, data)

    def _sample_bytes(self, run_id: str, digest: str | None) -> bytes | None:
        """The samples file's bytes, checked against ``digest`` (:meth:`read_samples`)."""
        path = self.samples_path(run_id)
        if not path.is_file():
            if digest is None:
                return None
            raise CorruptFileError(f"samples file {str(path)!r} is missing; {_REDO}")
        data = path.read_bytes()
        if digest is not None and hashlib.sha256(data).hexdigest() != digest:
            raise CorruptFileError(f"samples file {str(path)!r} fails its record's digest; "
                                   f"{_REDO}")
        return data

    def _parsed_samples(self, run_id: str, data: bytes) -> pd.DataFrame:
        try:
            return pd.read_parquet(io.BytesIO(data))
        except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
            raise CorruptFileError(f"samples file {str(self.samples_path(run_id))!r} is "
                                   f"unreadable ({error}); {_REDO}") from None

    def samples(self, run_ids: Iterable[str], digests: Mapping[str, str | None] | None = None
                ) -> pd.DataFrame:
        """Per-image values (run_id, metric, value) of the given units, where stored, each
        file checked against its record's digest where ``digests`` (run id -> the record's
        ``samples_digest``) gives one; CorruptFileError names a damaged file
        (:meth:`read_samples`)."""
        frames = []
        for run_id in sorted(set(run_ids)):
            frame = self.read_samples(run_id, (digests or {}).get(run_id))
            if frame is not None:
                frames.append(frame.assign(run_id=run_id))
        if not frames:
            return pd.DataFrame(columns=["metric", "value", "run_id"])
        return pd.concat(frames, ignore_index=True)

    def path(self, run_id: str) -> Path:
        return self.runs / f"{run_id}.json"

    def write(self, record: RunRecord) -> Path:
        record.checksum = record.content_checksum()
        return atomic_write_json(self.path(record.run_id), record.stored())

    def read(self, path: Path) -> RunRecord:
        """A verified record; raises CorruptFileError or UserError (newer schema)."""
        try:
            raw: dict[str, Any] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
            raise CorruptFileError(f"result file {str(path)!r} is unreadable: {error}") from error
        _refuse_newer(path, raw)
        try:
            record = RunRecord.model_validate(raw)
        except ValidationError as error:
            raise CorruptFileError(f"result file {str(path)!r} is malformed: {error}") from error
        if record.checksum != record.content_checksum():
            raise CorruptFileError(f"result file {str(path)!r} fails its checksum")
        return record

    def check_schema(self) -> None:
        """Raises UserError if any record was written by a newer erasebench: a run must not
        add to a folder it cannot read back. Unreadable files are left to :meth:`is_done`."""
        for path in sorted(self.runs.glob("*.json")) if self.runs.is_dir() else []:
            try:
                raw = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(raw, dict):
                _refuse_newer(path, raw)

    def is_done(self, run_id: str) -> bool:
        """True only for a complete, valid record with its samples whole: anything else is
        redone."""
        return self.record(run_id) is not None

    def record(self, run_id: str) -> RunRecord | None:
        """The unit's record if it and its samples file are complete and valid, else None."""
        path = self.path(run_id)
        if not path.is_file():
            return None
        try:
            record = self.read(path)
            data = self._sample_bytes(run_id, record.samples_digest)
            # Bytes that match their digest are those written, which parsed: only a file
            # without one (a record before schema 5) is parsed to be sure. This runs for
            # every unit to do after each unit ends (the progress line).
            if data is not None and record.samples_digest is None:
                self._parsed_samples(run_id, data)
        except CorruptFileError:
            return None
        return record

    def records(self) -> list[RunRecord]:
        if not self.runs.is_dir():
            return []
        return [self.read(path) for path in sorted(self.runs.glob("*.json"))]


def _refuse_newer(path: Path, raw: dict[str, Any]) -> None:
    version = raw.get("schema_version")
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise UserError(
            f"result file {str(path)!r} has schema version {version}, newer than this "
            f"erasebench ({SCHEMA_VERSION}); upgrade erasebench to read it"
        )


def records_to_frame(records: list[RunRecord]) -> pd.DataFrame:
    """The tidy long table: one row per (run, metric, split, seed), with the settings that
    tell runs of one eraser config apart (:data:`COLUMNS`)."""
    rows = []
    for record in records:
        spec = record.spec
        for row in record.metrics:
            rows.append({
                "eraser": spec.eraser.name,
                "config_hash": spec.eraser.spec_hash(),
                "request": spec.request.display(),
                "task": spec.task.name,
                "task_version": record.task_version,
                "metric": row.metric,
                "split": row.split,
                "seed": row.seed,
                "value": row.value,
                "higher_is_better": row.higher_is_better,
                "headline": row.headline,
                "model": spec.model.id,
                "run_id": record.run_id,
                "task_options_hash": spec.task.spec_hash(),
                **spec.generation.model_dump(),
            })
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for column in ("seed", "steps", "height", "width"):
        frame[column] = frame[column].astype("Int64")
    return frame.sort_values(COLUMNS[:9], kind="stable", ignore_index=True)


def load_results(root: str | Path = "results") -> pd.DataFrame:
    """All stored results under ``root`` as one tidy pandas DataFrame."""
    return records_to_frame(ResultStore(root).records())
