"""Where each leaderboard row comes from: per (task, model, eraser), the eraser's config
hash, the base model and revision, the scorers (version and weight hash), how many
requests and images the numbers rest on, the code (git sha) and the dates."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from erasebench.results import ResultStore, RunRecord
from erasebench.variants import find_variants

COLUMNS = ["task", "model", "eraser", "config_hash", "revision", "scorers", "requests",
           "images", "git_sha", "first", "last"]


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
        "git_sha": (record.provenance.git_sha or "")[:10],
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
    return table[COLUMNS]


def load_provenance(results_dir: str | Path) -> pd.DataFrame:
    records = ResultStore(results_dir).records()
    return records_provenance(records, find_variants(records).labels)


def provenance_table(rows: pd.DataFrame) -> str:
    """Markdown: one line per eraser (and config) of one (task, model) section."""
    lines = ["| eraser | config | revision | scorers | requests | images | code | date |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows.itertuples(index=False):
        scorers = ", ".join(f"{name} {version}"
                            for name, version in json.loads(row.scorers).items()) or "–"
        dates = row.first if row.first == row.last else f"{row.first} – {row.last}"
        lines.append(f"| {row.eraser} | `{row.config_hash[:12]}` | {row.revision or '–'} | "
                     f"{scorers} | {row.requests} | {row.images:,} | {row.git_sha or '–'} | "
                     f"{dates or '–'} |")
    return "\n".join(lines) + "\n"
