"""Where each leaderboard row comes from: per (task, model, eraser), the eraser's config
hash, the base model and revision, the scorers (version and weight hash), how many
requests and images the numbers rest on, how long making one of its erasures took, the
code (git sha, and a digest of uncommitted changes where there were any) and the dates."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from erasebench.code_version import CodeVersion
from erasebench.results import ResultStore, RunRecord
from erasebench.variants import find_variants

COLUMNS = ["task", "model", "eraser", "config_hash", "revision", "scorers", "requests",
           "images", "erasure_seconds", "erasure_device", "git_sha", "first", "last"]
NO_CHANGE = hashlib.sha256().hexdigest()  # the digest of an edit that changes nothing (sd)


def records_provenance(records: list[RunRecord], labels: dict[str, str] | None = None
                       ) -> pd.DataFrame:
    """One row per (task, model, eraser, config hash) over the stored run records; with
    ``labels`` (:func:`erasebench.variants.find_variants`) configurations stay apart."""
    labels = labels or {}
    rows = [{
        "task": record.spec.task.name,
        "model": record.spec.model.id,
        "eraser": record.spec.eraser.name + labels.get(record.run_id, ""),
        "config_hash": record.spec.eraser.spec_hash(),
        "revision": record.spec.model.revision or "",
        "scorers": json.dumps(record.scorers, sort_keys=True),
        "request": record.spec.request.display(),
        "images": record.image_count,
        "edit": record.edit_digest,
        **_erasure_time(record),
        "git_sha": CodeVersion(record.provenance.git_sha,
                               record.provenance.code_changes).short(),
        "date": (record.provenance.created_at or "")[:10],
    } for record in records]
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    frame = pd.DataFrame(rows)
    keys = ["task", "model", "eraser", "config_hash", "revision", "scorers"]
    grouped = frame.groupby(keys, sort=True)
    table = grouped.agg(requests=("request", "nunique"), images=("images", "sum"),
                        git_sha=("git_sha", lambda s: ", ".join(sorted(set(s) - {""}))),
                        first=("date", "min"), last=("date", "max")).reset_index()
    # Each erasure once, however many of the group's units used it.
    erasures = frame.dropna(subset=["erasure_seconds"]).drop_duplicates(keys + ["edit"])
    timed = erasures.groupby(keys, sort=True).agg(
        erasure_seconds=("erasure_seconds", "median"),
        erasure_device=("erasure_device", lambda s: ", ".join(sorted(set(s) - {""}))))
    table = table.merge(timed.reset_index(), on=keys, how="left")
    table["erasure_device"] = table["erasure_device"].fillna("")
    return table[COLUMNS]


def _erasure_time(record: RunRecord) -> dict[str, float | str | None]:
    """How long making the record's erasure took and on what device; None where its
    record or edit did not keep it, or where the edit changes nothing."""
    timings = record.provenance.timings
    if timings is None or timings.training is None or record.edit_digest == NO_CHANGE:
        return {"erasure_seconds": None, "erasure_device": ""}
    return {"erasure_seconds": timings.training, "erasure_device": timings.training_device}


def format_seconds(seconds: float) -> str:
    """``0.15 s``, ``42 s``, ``7.4 min``, ``2.1 h``: two or three significant digits."""
    if seconds < 60:
        return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.2g} min" if seconds < 600 else f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.2g} h" if seconds < 36000 else f"{seconds / 3600:.0f} h"


def load_provenance(results_dir: str | Path) -> pd.DataFrame:
    records = ResultStore(results_dir).records()
    return records_provenance(records, find_variants(records).labels)


def provenance_table(rows: pd.DataFrame) -> str:
    """Markdown: one line per eraser (and config) of one (task, model) section."""
    lines = ["| eraser | config | revision | scorers | requests | images | erasure (median) "
             "| code | date |", "|---|---|---|---|---|---|---|---|---|"]
    for row in rows.itertuples(index=False):
        scorers = ", ".join(f"{name} {version}"
                            for name, version in json.loads(row.scorers).items()) or "–"
        dates = row.first if row.first == row.last else f"{row.first} – {row.last}"
        erasure = "–" if pd.isna(row.erasure_seconds) else \
            f"{format_seconds(row.erasure_seconds)} on {row.erasure_device}"
        lines.append(f"| {row.eraser} | `{row.config_hash[:12]}` | {row.revision or '–'} | "
                     f"{scorers} | {row.requests} | {row.images:,} | {erasure} | "
                     f"{row.git_sha or '–'} | {dates or '–'} |")
    return "\n".join(lines) + "\n"
