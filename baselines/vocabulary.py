"""Concept vocabularies that AP and AGE search for the concept to preserve or map to.

A vocabulary is named by one of :data:`BUILT_IN` or is a file: a CSV with a ``word``
(or ``concept``/``prompt``) column, or plain text with one concept per line.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from erasebench.errors import UserError

_HERE = Path(__file__).parent
_COLUMNS = ("word", "concept", "prompt", "label_str")


def _english_3000() -> list[str]:
    return read_vocabulary(_HERE / "data" / "english_3000.csv")


def _imagenet() -> list[str]:
    # torchvision ships the category names with its weight enums: no download needed.
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


def _shapes() -> list[str]:
    from erasebench.tasks.shapes.render import COLOURS, SHAPES, TEXTURES

    return [*SHAPES, *COLOURS, *TEXTURES]


def _shape_names() -> list[str]:
    from erasebench.tasks.shapes.render import SHAPES

    return list(SHAPES)


def _clip_tokens() -> list[str]:
    # The CLIP BPE vocabulary's whole words ("cat</w>"), alphabetic, 3+ letters: ~30k words.
    from erasebench.tokenizer import sd_tokenizer

    words = (token[:-4] for token in sd_tokenizer().get_vocab() if token.endswith("</w>"))
    return sorted({word for word in words if re.fullmatch(r"[a-z]{3,}", word)})


BUILT_IN: dict[str, Callable[[], list[str]]] = {
    "english_3000": _english_3000,   # AP's and AGE's default (EN3K)
    "imagenet": _imagenet,           # AGE's vocabulary for objects: the 1000 class names
    "clip_tokens": _clip_tokens,     # every whole word of the CLIP tokenizer
    "shapes": _shapes,               # the miniature world's shapes, colours and textures
    "shape_names": _shape_names,     # only its ten shapes (its "class names")
}


def read_vocabulary(path: Path) -> list[str]:
    """The concepts of a CSV (``word``/``concept``/``prompt``/``label_str`` column) or a
    text file (one per line); blank entries dropped, first occurrence kept."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"vocabulary file {str(path)!r} does not exist") from None
    except UnicodeDecodeError as error:
        raise UserError(f"vocabulary file {str(path)!r} is not UTF-8 text: {error}") from None
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        column = next((c for c in _COLUMNS if rows and c in rows[0]), None)
        if column is None:
            found = ", ".join(rows[0]) if rows else "none"
            raise UserError(f"vocabulary file {str(path)!r} needs a column named one of "
                            f"{', '.join(_COLUMNS)}; it has: {found}")
        entries: Sequence[str] = [row[column] or "" for row in rows]
    else:
        entries = text.splitlines()
    words = list(dict.fromkeys(entry.strip() for entry in entries if entry.strip()))
    if not words:
        raise UserError(f"vocabulary file {str(path)!r} holds no concepts")
    return words


def load_vocabulary(name_or_path: str, exclude: Sequence[str] = ()) -> list[str]:
    """A built-in vocabulary or a file, without the concepts in ``exclude`` (the erased
    ones: searching them would pit preservation against erasure on the same concept)."""
    if name_or_path in BUILT_IN:
        words = BUILT_IN[name_or_path]()
    elif Path(name_or_path).suffix or Path(name_or_path).exists():
        words = read_vocabulary(Path(name_or_path))
    else:
        raise UserError(f"unknown vocabulary {name_or_path!r}: use one of "
                        f"{', '.join(BUILT_IN)} or the path of a .csv/.txt file")
    excluded = {concept.strip().lower() for concept in exclude}
    kept = [word for word in words if word.lower() not in excluded]
    if not kept:
        raise UserError(f"vocabulary {name_or_path!r} has nothing left once the erased "
                        f"concepts ({', '.join(exclude)}) are taken out")
    return kept
