"""``erasebench search-history``: what AP's / AGE's concept search found during training,
as a table and, optionally, an image strip (the papers' "intermediate results of the
search" figure): the erased concept and the concepts the search drew most, drawn by the
original model (top row) and by the edited one (bottom row)."""

from __future__ import annotations

from typing import Any

from PIL import Image, ImageDraw
from rich.table import Table

from erasebench.edits import EditedModel
from erasebench.errors import UserError
from erasebench.models import DiffusionModel
from erasebench.specs import GenerationSpec, PromptSpec

TILE = 96  # pixels per image in the strip (the miniature world's 32-px images scaled up)
LABEL = 14


def search_notes(edit: EditedModel) -> dict[str, Any]:
    """The per-concept search summaries of an edit; a clear error if it has none."""
    notes = edit.notes.get("search")
    if not notes:
        raise UserError(f"this edit (by {edit.eraser!r}) has no search history: only erasers "
                        "that search for concepts (ap, age) record one")
    return notes


def by_count(summary: dict[str, Any]) -> list[tuple[str, int]]:
    """(concept, times drawn), most drawn first (ties alphabetical)."""
    return sorted(summary["drawn_counts"].items(), key=lambda item: (-item[1], item[0]))


def history_tables(edit: EditedModel) -> list[Table]:
    """One table per erased concept: snapshot step, drawn concept(s), likeliest ones."""
    tables = []
    for concept, summary in search_notes(edit).items():
        table = Table("step", "drawn", "likeliest (probability)",
                      title=f"{edit.eraser}: search while erasing {concept!r}",
                      caption="drawn most: " + ", ".join(
                          f"{word} ({count})" for word, count in by_count(summary)[:8]))
        for entry in summary["history"]:
            top = ", ".join(f"{word} ({p:.2f})" for word, p in entry.get("top", []))
            table.add_row(str(entry["step"]), ", ".join(entry["drawn"]), top or "—")
        tables.append(table)
    return tables


def most_drawn(summary: dict[str, Any], count: int) -> list[str]:
    """The ``count`` concepts the search drew most often (PGD's "word + δ" dropped)."""
    words = [word for word, _ in by_count(summary) if "+ δ" not in word]
    return words[:count]


def search_strip(edit: EditedModel, model: DiffusionModel, settings: GenerationSpec,
                 columns: int = 5, seed: int = 0) -> Image.Image:
    """Erased concept + most-drawn concepts; original model above, edited model below."""
    from erasebench.generate import Generator

    rows = []
    for concept, summary in search_notes(edit).items():
        words = [concept, *most_drawn(summary, columns)]
        prompts = [PromptSpec(text=word, seed=seed) for word in words]
        original = Generator(model, settings, progress=False).images(prompts)
        with edit.applied(model):
            edited = Generator(model, settings, progress=False).images(prompts)
        rows.append((words, original, edited))
    width = max(len(words) for words, _, _ in rows) * TILE
    strip = Image.new("RGB", (width, len(rows) * (2 * TILE + LABEL)), "white")
    draw = ImageDraw.Draw(strip)
    for row, (words, original, edited) in enumerate(rows):
        top = row * (2 * TILE + LABEL)
        for column, word in enumerate(words):
            left = column * TILE
            label = f"erased: {word}" if column == 0 else word
            draw.text((left + 2, top + 1), label[:16], fill="black")
            for offset, image in ((LABEL, original[column]), (LABEL + TILE, edited[column])):
                strip.paste(image.resize((TILE, TILE), Image.Resampling.NEAREST),
                            (left, top + offset))
    return strip
