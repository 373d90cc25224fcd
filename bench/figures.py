"""Leaderboard figures: each task declares the figures its result rows make
(:meth:`erasebench.plugins.Task.figures`); ``erasebench report`` draws them as PNGs in
``results/figures/`` and links them from ``leaderboard.md``.

Which figures exist is a pure function of the results (so the leaderboard text stays
byte-for-byte reproducible); the PNGs are written without a timestamp or version stamp,
so the same matplotlib draws the same bytes.
"""

from __future__ import annotations

import io
import re
import textwrap
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from erasebench.errors import CorruptFileError, PluginImportError, UnknownNameError
from erasebench.io import atomic_write_bytes
from erasebench.registry import TASKS

SUBFOLDER = "figures"
GRID_GAP = 16  # a grid's thumbnails lie a sixteenth of their side apart


@dataclass(frozen=True)
class Figure:
    """One figure: its caption, file name (in ``results/figures/``) and how to draw it on
    a matplotlib ``Figure``."""

    title: str
    filename: str
    draw: Callable[[Any], None]
    note: str = ""  # said under the figure: what it leaves out and why


def slug(*parts: str) -> str:
    """A file-name-safe join of ``parts`` ("shapes_graph", "shapes" -> "shapes_graph-shapes")."""
    return "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", part).strip("_") for part in parts)


def figure_plan(frame: pd.DataFrame) -> dict[tuple[str, str], list[Figure]]:
    """(task, model) -> the figures that task makes of its rows (installed tasks only)."""
    plan: dict[tuple[str, str], list[Figure]] = {}
    if frame.empty:
        return plan
    for (task, model), rows in frame.groupby(["task", "model"], sort=True):
        try:
            cls = TASKS.get(str(task))
        except (UnknownNameError, PluginImportError):
            continue
        figures = cls.figures(rows, slug(str(task), str(model)))
        if figures:
            plan[(str(task), str(model))] = figures
    return plan


def png_bytes(draw: Callable[[Any], None]) -> bytes:
    """Draws on a fresh figure (Agg, no pyplot state) and returns reproducible PNG bytes."""
    from matplotlib.figure import Figure as MplFigure

    figure = MplFigure(figsize=(6, 4.5), dpi=100, layout="constrained")
    draw(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def draw_figures(plan: dict[tuple[str, str], list[Figure]], folder: Path) -> list[Path]:
    """Writes every planned figure into ``folder`` (atomically); returns the paths."""
    written = []
    for figures in plan.values():
        for figure in figures:
            written.append(atomic_write_bytes(folder / figure.filename, png_bytes(figure.draw)))
    return written


# --- figures tasks share ------------------------------------------------------------------


def tradeoff_figure(rows: pd.DataFrame, stem: str, x: str = "ESR-1", y: str = "PSR-1",
                    title: str = "") -> Figure:
    """Erasure against preservation: one point per eraser (mean over requests), with
    ± std bars; up and right is better."""
    means = rows[rows["metric"].isin([x, y])].groupby(["eraser", "metric"])["value"]
    summary = means.agg(["mean", "std"]).fillna(0.0).unstack("metric")

    def draw(figure: Any) -> None:
        axes = figure.add_subplot()
        for eraser, row in summary.iterrows():
            axes.errorbar(row[("mean", x)], row[("mean", y)], xerr=row[("std", x)],
                          yerr=row[("std", y)], fmt="o", capsize=3)
            axes.annotate(str(eraser), (row[("mean", x)], row[("mean", y)]),
                          textcoords="offset points", xytext=(5, 5), fontsize=9)
        axes.set(xlabel=f"{x} (erasure, %)", ylabel=f"{y} (preservation, %)",
                 xlim=(-5, 105), ylim=(-5, 105), title=title or f"{x} vs {y}")
        axes.grid(alpha=0.3)

    return Figure(title or f"{x} against {y}, per eraser (mean ± std over requests)",
                  f"{stem}-tradeoff.png", draw)


def threshold_bars_figure(rows: pd.DataFrame, stem: str, prefix: str = "NER@",
                          title: str = "") -> Figure:
    """Grouped bars: for every threshold (metrics ``<prefix><τ>``) one bar per eraser, the
    mean over requests (AP's "NER vs threshold" figure)."""
    chosen = rows[rows["metric"].str.startswith(prefix)]
    means = chosen.groupby(["metric", "eraser"])["value"].mean().unstack("eraser")
    means = means.reindex(sorted(means.index, key=lambda m: float(m[len(prefix):])))

    def draw(figure: Any) -> None:
        axes = figure.add_subplot()
        erasers = list(means.columns)
        width = 0.8 / max(1, len(erasers))
        for index, eraser in enumerate(erasers):
            positions = [i + (index - (len(erasers) - 1) / 2) * width
                         for i in range(len(means.index))]
            axes.bar(positions, means[eraser].to_numpy(dtype=float), width, label=eraser)
        axes.set_xticks(range(len(means.index)),
                        [m[len(prefix):] for m in means.index])
        axes.set(xlabel="detection threshold τ", ylabel=f"{prefix.rstrip('@')} (%)",
                 title=title or f"{prefix}τ per eraser")
        axes.legend(fontsize=8)
        axes.grid(alpha=0.3, axis="y")

    return Figure(title or f"{prefix}τ per eraser", f"{stem}-thresholds.png", draw)


def heatmap_figure(matrices: dict[str, pd.DataFrame], stem: str, title: str,
                   limit: float = 100.0) -> Figure:
    """One heat map per eraser (rows: erased concept, columns: measured concept) on a
    shared diverging scale of ± ``limit``."""
    names = sorted(matrices)

    # Each panel as tall as its matrix needs at the width a panel has (a graph of 2 erased
    # concepts and 20 measured is a strip, not a square), plus its title and the column
    # names written down below it.
    most_rows = max(len(matrix.index) for matrix in matrices.values())
    most_columns = max(len(matrix.columns) for matrix in matrices.values())
    longest = max(len(str(c)) for matrix in matrices.values() for c in matrix.columns)
    panel_height = max(1.5, 3.0 * most_rows / most_columns + 0.5 + 0.07 * longest)

    def draw(figure: Any) -> None:
        columns = min(3, len(names))
        rows = -(-len(names) // columns)
        figure.set_size_inches(4 * columns, panel_height * rows)
        image = None
        for index, name in enumerate(names):
            matrix = matrices[name]
            axes = figure.add_subplot(rows, columns, index + 1)
            image = axes.imshow(matrix.to_numpy(dtype=float), cmap="RdBu", vmin=-limit,
                                vmax=limit)
            axes.set_title(name, fontsize=10)
            axes.set_xticks(range(len(matrix.columns)), matrix.columns, rotation=90,
                            fontsize=7)
            axes.set_yticks(range(len(matrix.index)), matrix.index, fontsize=7)
        if image is not None:
            figure.colorbar(image, ax=figure.axes, shrink=0.6, label="Δ (points)")

    return Figure(title, f"{stem}-heatmaps.png", draw)


# A grid's rows: by eraser name, its thumbnails and their prompts (erasebench.thumbnails).
Strips = dict[str, tuple[list[Any], list[dict[str, Any]]]]


def _grid_order(names: Iterable[str]) -> list[str]:
    """A grid's rows, top to bottom: the original model's, then the others by name."""
    return sorted(names, key=lambda name: (name != "sd", name))


def grid_figure(strips: Strips, stem: str, request: str, note: str = "") -> Figure:
    """Image grid: a row per eraser, a column per prompt and seed (the same in every row),
    from the units' thumbnails (:mod:`erasebench.thumbnails`), pasted into one image shown
    on one axes: an axes per thumbnail (54 in a grid of the miniature world) took most of
    a report's time, laying them out and drawing them."""
    names = _grid_order(strips)
    meta = strips[names[0]][1]
    titles = [f"{item['label'] or item['text'][:18]}\n"
              f"({'erased' if item['group'] == 'erase' else item['group']})" for item in meta]
    # a configuration's label wrapped to the row's height
    labels = [textwrap.fill(name, 18, break_long_words=False, break_on_hyphens=False)
              for name in names]

    def draw(figure: Any) -> None:
        from PIL import Image

        side = max(image.size[1] for name in names for image in strips[name][0])
        step = side + side // GRID_GAP
        mosaic = Image.new("RGB", (len(meta) * step - step + side,
                                   len(names) * step - step + side), "white")
        for row, name in enumerate(names):
            for column, image in enumerate(strips[name][0]):
                if image.size != (side, side):
                    image = image.resize((side, side), Image.Resampling.LANCZOS)
                mosaic.paste(image, (column * step, row * step))
        figure.set_size_inches(1.4 * len(meta) + 1.2, 1.4 * len(names) + 0.6)
        axes = figure.add_subplot()
        axes.imshow(mosaic)
        axes.xaxis.tick_top()
        axes.set_xticks([column * step + side / 2 for column in range(len(meta))], titles,
                        fontsize=7)
        axes.set_yticks([row * step + side / 2 for row in range(len(names))], labels,
                        fontsize=8)
        axes.tick_params(length=0)
        for spine in axes.spines.values():
            spine.set_visible(False)

    return Figure(f"Images of the same prompts and seeds, one row per eraser ({request})",
                  f"{stem}-grid.png", draw, note)


def grid_plan(frame: pd.DataFrame, root: Path, show_unsafe: bool = False,
              other_protocol: frozenset[str] = frozenset()
              ) -> dict[tuple[str, str], list[Figure]]:
    """(task, model) -> an image grid of its first request, from the thumbnails under
    ``root``. Units without thumbnails are left out; so are those whose thumbnails are
    damaged, or show other prompts and seeds than most rows (a configuration with other
    task options), each named in the grid's note. Units run under another protocol of
    their task (``other_protocol``, run ids: ``erasebench.variants.Variants``) are left
    out too: the same edits drew the same prompts' images for them (the robustness task's
    soft-token attack scores the images its default attack does), so their rows would
    repeat the default protocol's."""
    plan: dict[tuple[str, str], list[Figure]] = {}
    frame = frame[~frame["run_id"].isin(other_protocol)] if not frame.empty else frame
    if frame.empty:
        return plan
    for (task, model), rows in frame.groupby(["task", "model"], sort=True):
        request = sorted(rows["request"].astype(str).unique())[0]
        units = rows[rows["request"].astype(str) == request].drop_duplicates("run_id")
        strips, damaged = _unit_strips(units, root, show_unsafe)
        strips, other_prompts = _most_shown(strips)
        notes = []
        if other_prompts:
            notes.append(f"Left out, showing other prompts or seeds: {', '.join(other_prompts)}.")
        if damaged:
            notes.append(f"Left out, their thumbnails damaged: {', '.join(damaged)}.")
        note, stem = " ".join(notes), slug(str(task), str(model))
        if strips:
            plan[(str(task), str(model))] = [grid_figure(strips, stem, request, note)]
        elif damaged:  # the grid's place says why it is empty
            plan[(str(task), str(model))] = [unreadable_grid(stem, request, note)]
    return plan


def _unit_strips(units: pd.DataFrame, root: Path, show_unsafe: bool
                 ) -> tuple[Strips, list[str]]:
    """Each unit's thumbnails and their prompts (unsafe ones only with ``show_unsafe``)
    by eraser name, and "eraser (what is wrong)" of each whose thumbnails are damaged."""
    from erasebench.thumbnails import load

    strips: Strips = {}
    damaged = []
    for unit in units.itertuples():
        try:
            loaded = load(root, str(unit.run_id))
        except CorruptFileError as error:  # it names the file, the strip or its list
            damaged.append(f"{unit.eraser} ({error})")
            continue
        if loaded is None:
            continue
        keep = [i for i, item in enumerate(loaded[1]) if show_unsafe or not item["unsafe"]]
        if keep:
            strips[str(unit.eraser)] = ([loaded[0][i] for i in keep],
                                        [loaded[1][i] for i in keep])
    return strips, damaged


def _most_shown(strips: Strips) -> tuple[Strips, list[str]]:
    """The strips that show the prompts and seeds most of them show (on a tie, those the
    original model's row shows, else the first row's in the grid's order), and the names
    of the others: one configuration with other task options no longer hides the grid."""
    shown = {name: tuple((item["text"], item["seed"]) for item in meta)
             for name, (_, meta) in strips.items()}
    order = _grid_order(strips)
    if not order:
        return strips, []
    rows = Counter(shown.values())
    chosen = shown[max(order, key=lambda name: rows[shown[name]])]  # the first of the most
    return ({name: strip for name, strip in strips.items() if shown[name] == chosen},
            [name for name in order if shown[name] != chosen])


def unreadable_grid(stem: str, request: str, note: str) -> Figure:
    """What stands in an image grid's place where every unit's thumbnails are damaged."""
    def draw(figure: Any) -> None:
        figure.set_size_inches(6, 1)
        figure.text(0.5, 0.5, "No image grid: every unit's thumbnails are unreadable",
                    ha="center", va="center")

    return Figure(f"No image grid ({request})", f"{stem}-grid.png", draw, note)
