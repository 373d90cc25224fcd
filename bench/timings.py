"""Where a results folder's time went, per eraser, task, model and device, from the
records' timings (``erasebench.results.UnitTimings``): ``erasebench timings``. Like the
leaderboard, it keeps an eraser's configurations apart (:mod:`erasebench.variants`): units
drawn at ``--steps 10`` or in bf16 beside the task's own have images/s of their own.

Seconds are those of the process that ran each unit, summed: with several processes (or
Ray actors) they add up to more than the wall time. Making an erasure is counted once,
on the unit that made it; drawing counts the seconds of units that drew images over the
images they drew (a unit whose images were all in the image cache drew none and is left
out of the rate; records written before 2026-11-30 count the images their scoring drew
as drawn too, which the table says, and are taken at most as the unit's own images);
scoring is set against what drawing the images it scored took, which is what issue 8's
"scoring keeps pace with generation" (at most 10%) asks of it. A task's scoring may draw
images too (the concept graph's and the style task's original-model reference images
when they are not cached, the robustness task's attacked images): the records count
them (``scoring_drawn``, since schema 3) but not the seconds they took, so the share
leaves out their drawing priced at the row's images/s (the same model architecture and
settings draw them), lest a task that drew references read as a slow scorer. The
robustness task's scoring is mostly its attacks (an optimisation per class and radius),
far more than its drawing: since 2026-12-07 the records keep their seconds
(``UnitTimings.attacking``), which the table shows in a column of their own (where any row
has them) and leaves out of the share; older records' attacks are in it. A unit other
processes helped draw (``Runner.help``), or drew images with another unit asking for the
same ones, counts the images its own process drew over its seconds less those spent
waiting for the others' (``UnitTimings.images_awaited``, since schema 4), so its images/s
is its process's pace; the unit's total keeps the waiting. The helpers' drawing (and an
erasure a helper made) is in their help records (``erasebench.help_records``, since
2026-12-02), which add it to the unit's eraser and task: its images drawn, its seconds and
images/s, and the total; the original model's images a helper drew for the unit's scoring
to compare with go with the images the scoring drew (since 2026-12-06; before, with the
images drawn). The batch column gives the images per batch the rows' units ended their
drawing at (``UnitTimings.batch``, since schema 6), their least and most: on a GPU
images/s follows the batch, which the generator fits to the memory free and halves where
it runs out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from rich import box
from rich.table import Table

from erasebench.help_records import HelpRecord
from erasebench.provenance import format_seconds
from erasebench.results import RunRecord

KEYS = ["eraser", "task", "model", "device"]


def timings_frame(records: list[RunRecord], helped: Sequence[HelpRecord] = (),
                  labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per record that has timings (``unit`` 1), then one per help record
    (``unit`` 0: a process's work for a unit it did not run). With ``labels`` (run id ->
    :attr:`erasebench.variants.Variants.labels`), each eraser name has its unit's
    configuration label, as in the leaderboard."""
    labels = labels or {}
    rows = [{
        "eraser": record.spec.eraser.name + labels.get(record.run_id, ""),
        "task": record.spec.task.name,
        "model": record.spec.model.id, "device": record.provenance.device, "unit": 1,
        "made": timings.erasure_trained,
        "erasure": timings.erasure if timings.erasure_trained else 0.0,
        "images_drawn": timings.own_images_drawn(record.image_count),
        "scoring_drawn": timings.scoring_drawn or 0,
        "drawn_apart": timings.scoring_drawn is not None,
        "drawing": timings.images_less_waiting() if timings.images_drawn else 0.0,
        "images_scored": record.image_count, "scoring": timings.scoring,
        "attacking": timings.attacking or 0.0,
        "total": timings.erasure + timings.images + timings.scoring, "batch": timings.batch,
    } for record in records if (timings := record.provenance.timings) is not None]
    # A helper's reference images count as the scoring's drawing, as those a unit's own
    # scoring draws: their seconds go to the scoring, which the share takes out again at
    # the row's images/s, and the drawing's pace is the unit's own images'.
    rows += [{
        "eraser": work.eraser + labels.get(work.run_id, ""), "task": work.task,
        "model": work.model, "device": work.device,
        "unit": 0, "made": work.erasure_made, "erasure": work.erasure,
        "images_drawn": work.images_drawn, "scoring_drawn": work.references_drawn,
        "drawn_apart": True, "drawing": work.drawing, "images_scored": 0,
        "scoring": work.referencing, "attacking": 0.0,
        "total": work.seconds, "batch": None,
    } for work in helped]
    frame = pd.DataFrame(rows, columns=[*KEYS, "unit", "made", "erasure", "images_drawn",
                                        "scoring_drawn", "drawn_apart", "drawing",
                                        "images_scored", "scoring", "attacking", "total",
                                        "batch"])
    frame["batch"] = frame["batch"].astype("Int64")
    return frame


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (eraser, task, model, device): units, erasures made and their seconds, images
    drawn and their seconds, images/s, the least and most batch the units ended their
    drawing at (``smallest_batch``, ``largest_batch``), images the scoring drew, the
    seconds the scoring spent attacking the model (``attacking``), the scoring's seconds
    less their drawing (at the images/s) and its attacks as a share of the time drawing
    the scored images took, and all the units' seconds."""
    table = frame.groupby(KEYS, sort=True).agg(
        units=("unit", "sum"), erasures=("made", "sum"), erasure=("erasure", "sum"),
        images_drawn=("images_drawn", "sum"), drawing=("drawing", "sum"),
        scoring_drawn=("scoring_drawn", "sum"), images_scored=("images_scored", "sum"),
        scoring=("scoring", "sum"), attacking=("attacking", "sum"), total=("total", "sum"),
        smallest_batch=("batch", "min"), largest_batch=("batch", "max")).reset_index()
    table["images_per_second"] = (table["images_drawn"] / table["drawing"]).where(
        table["drawing"] > 0)
    drawing_scored = table["images_scored"] / table["images_per_second"]
    scoring_itself = (table["scoring"] - table["attacking"]
                      - table["scoring_drawn"] / table["images_per_second"]).clip(lower=0)
    table["scoring_share"] = scoring_itself / drawing_scored
    return table


def timings_table(frame: pd.DataFrame) -> Table:
    """:func:`summarise` of ``frame`` (:func:`timings_frame`) for a terminal, with a row
    over all erasers and tasks; a model or device common to every row goes in the title
    instead of a column."""
    summary = summarise(frame)
    common = [key for key in ("model", "device") if summary[key].nunique() == 1]
    title = "Where the time went, in seconds on the processes that ran the units"
    if common:
        title += " (" + ", ".join(f"{key} {summary[key].iloc[0]}" for key in common) + ")"
    keys = [key for key in KEYS if key not in common]
    attacks = bool((summary["attacking"] > 0).any())
    caption = ("erasing: making the erasures; drawing: the images drawn; batch: the images "
               "per batch the units ended their drawing at, least-most (out of memory halves "
               "it); scoring drew: the images the scoring drew (reference images, attacked "
               "images); ")
    if attacks:
        caption += ("attacks: the scoring's attacks on the edited model (the robustness "
                    "task's recovery attack, an optimisation); ")
    caption += ("scoring share: scoring, less drawing those at the images/s"
                + (" and its attacks" if attacks else "") + ", against the time drawing the "
                "images it scored took; all: every unit's seconds")
    helps = int((frame["unit"] == 0).sum())
    if helps:
        caption += (f". Erasing, drawing and all include the work of {helps} help "
                    f"record{'s' if helps > 1 else ''}: processes that drew images of units "
                    "others ran, at a run's end")
    mixed = int((~frame["drawn_apart"].astype(bool)).sum())
    if mixed:
        caption += (f". {mixed} of the {int(frame['unit'].sum())} records were written "
                    "before erasebench kept the images a unit's scoring draws apart from its "
                    "own; theirs count both as drawn, taken here at most as the unit's own "
                    "images, so where their scoring drew images (reference images, the "
                    "robustness task's attacks) images/s may read high")
    # A caption of several lines reads as a paragraph left-aligned, ragged when centred.
    table = Table(title=title, caption=caption, caption_justify="left", box=box.SIMPLE_HEAD,
                  padding=(0, 1))
    for key in keys:
        table.add_column(key, no_wrap=True, min_width=int(summary[key].str.len().max()))
    for column in ("units", "erasures", "erasing", "images drawn", "drawing", "images/s",
                   "batch", "scoring drew", *(["attacks"] if attacks else []),
                   "scoring share", "all"):
        table.add_column(column, justify="right", no_wrap=True)
    _add_rows(table, summary, keys, attacks)
    if len(summary) > 1:
        table.add_section()
        _add_rows(table, summarise(frame.assign(eraser="all", task="")), keys, attacks)
    return table


def _add_rows(table: Table, summary: pd.DataFrame, keys: list[str], attacks: bool) -> None:
    for row in summary.itertuples(index=False):
        rate = "–" if pd.isna(row.images_per_second) else f"{row.images_per_second:.3g}"
        share = "–" if pd.isna(row.scoring_share) else f"{row.scoring_share:.1%}"
        attacked = [format_seconds(row.attacking) if row.attacking else "–"] if attacks else []
        table.add_row(*(str(getattr(row, key)) for key in keys), str(row.units),
                      str(row.erasures), format_seconds(row.erasure) if row.erasures else "–",
                      f"{row.images_drawn:,}",
                      format_seconds(row.drawing) if row.images_drawn else "–", rate,
                      _batches(row.smallest_batch, row.largest_batch),
                      f"{row.scoring_drawn:,}", *attacked, share, format_seconds(row.total))


def _batches(smallest: Any, largest: Any) -> str:
    """``64``, ``16-64``, or ``–`` where no unit kept one (none drew, or older records)."""
    if pd.isna(smallest):
        return "–"
    return str(smallest) if smallest == largest else f"{smallest}-{largest}"
