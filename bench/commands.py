"""The bodies of ``erasebench generate`` and ``erasebench score``: prompt files, seed
ranges, and folders of images with a ``manifest.csv`` (prompt, seed, guidance, file)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from erasebench.errors import UserError
from erasebench.image_sequences import ImageFiles
from erasebench.io import atomic_write
from erasebench.plugins import MetricValue, ScoringContext, Task
from erasebench.specs import MAX_SEED, GenerationSpec, ModelSpec, PromptSpec

MANIFEST = "manifest.csv"
_SEED_COLUMNS = ("seed", "evaluation_seed", "sd_seed")
_GUIDANCE_COLUMNS = ("guidance", "evaluation_guidance", "sd_guidance_scale")


def parse_seeds(text: str) -> list[int]:
    """'0-3' -> [0, 1, 2, 3]; '1,5,9' -> [1, 5, 9]; ranges and lists combine."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part[1:]:
                low, high = (int(x) for x in part.split("-", 1))
                if high < low:
                    raise UserError(f"seed range {part!r} runs backwards: write the lower "
                                    f"seed first ('{high}-{low}')")
                seeds.extend(range(low, high + 1))
            elif part:
                seeds.append(int(part))
        except ValueError:
            raise UserError(f"bad seed list {text!r}: use e.g. '0-3' or '1,5,9'") from None
    bad = [seed for seed in seeds if not 0 <= seed <= MAX_SEED]
    if bad or not seeds:
        raise UserError(f"seeds must be integers in [0, {MAX_SEED}]; got {text!r}")
    return seeds


def read_prompt_file(path: Path) -> list[PromptSpec]:
    """A CSV with a ``prompt`` column; seeds and guidance from the usual column names."""
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise UserError(f"prompt file {str(path)!r} does not exist") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise UserError(f"prompt file {str(path)!r} is not a readable CSV: {error}") from None
    if "prompt" not in frame.columns:
        raise UserError(f"prompt file {str(path)!r} has no 'prompt' column; columns: "
                        f"{', '.join(map(str, frame.columns))}")
    if frame.empty:
        raise UserError(f"prompt file {str(path)!r} has no rows")
    seed_column = next((c for c in _SEED_COLUMNS if c in frame.columns), None)
    guidance_column = next((c for c in _GUIDANCE_COLUMNS if c in frame.columns), None)
    prompts = []
    for line, row in enumerate(frame.itertuples(index=False), start=2):
        values = row._asdict()
        try:
            seed = int(values[seed_column]) if seed_column else 0
            guidance = float(values[guidance_column]) if guidance_column else None
            prompts.append(PromptSpec(text=str(values["prompt"]), seed=seed, guidance=guidance))
        except (ValueError, TypeError) as error:
            raise UserError(f"{path}:{line}: bad row: {error}".splitlines()[0]) from None
    return prompts


def generate_images(*, out: Path, texts: list[str], prompt_file: Path | None, seeds: str,
                    edit_path: Path | None, model: ModelSpec, cache_dir: Path, device: str,
                    batch_size: int | None, overrides: dict[str, Any], console: Any,
                    compile_unet: bool = False) -> None:
    from erasebench.cache import ImageCache
    from erasebench.edits import EditedModel
    from erasebench.generate import Generator
    from erasebench.models import load_model
    from erasebench.runner import Runner

    if bool(texts) == bool(prompt_file):
        raise UserError("give either --prompt (one or more) or --prompts FILE")
    settings = GenerationSpec.checked(overrides)  # before the model is loaded
    prompts = (read_prompt_file(prompt_file) if prompt_file
               else [PromptSpec(text=t, seed=s) for t in texts for s in parse_seeds(seeds)])
    edit = EditedModel.load(edit_path) if edit_path else None
    base = load_model(model, device=Runner(device=device).device)
    cache = ImageCache(cache_dir)
    generator = Generator(base, settings, cache,
                          batch_size=batch_size, compile=compile_unet)
    if edit is not None:
        edit.apply(base)
    generator.images(prompts)  # drawn into the cache, or found there and checked
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    # The cache's PNGs are copied, not decoded and encoded again (50 ms an image at 512 px).
    for index, (prompt, key) in enumerate(zip(prompts, generator.keys(prompts), strict=True)):
        name = f"{index:05d}.png"
        atomic_write(out / name, lambda tmp, key=key: shutil.copyfile(cache.path_of(key), tmp))
        guidance = generator.settings.guidance if prompt.guidance is None else prompt.guidance
        rows.append({"file": name, "prompt": prompt.text, "seed": prompt.seed,
                     "guidance": guidance})
    frame = pd.DataFrame(rows)
    atomic_write(out / MANIFEST, lambda tmp: frame.to_csv(tmp, index=False))
    console.print(f"wrote {len(rows)} images and {MANIFEST} to {out}")


def read_image_folder(folder: Path) -> dict[tuple[str, int], Path]:
    """The image file of each (prompt, seed) in ``folder``'s manifest (read when scored)."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise UserError(f"{str(folder)!r} has no {MANIFEST}; make it with `erasebench generate`")
    frame = pd.read_csv(manifest, keep_default_na=False)
    missing = {"file", "prompt", "seed"} - set(frame.columns)
    if missing:
        raise UserError(f"{manifest} lacks the columns {sorted(missing)}")
    files = {(str(row.prompt), int(row.seed)): folder / str(row.file)
             for row in frame.itertuples(index=False)}
    absent = [path.name for path in files.values() if not path.is_file()]
    if absent:
        raise UserError(f"{manifest} names {len(absent)} file(s) that {str(folder)!r} lacks: "
                        f"{', '.join(absent[:5])}")
    return files


def score_folder(task: Task, folder: Path, reference: Path | None,
                 device: str) -> Iterator[tuple[str, MetricValue]]:
    """Scores the images of ``folder`` for every request of ``task`` whose prompts it holds."""
    images = read_image_folder(folder)
    references = read_image_folder(reference) if reference else None

    def reference_images(prompts: Any) -> ImageFiles:
        if references is None:
            raise UserError(f"task {task.name!r} compares against the original model's images;"
                            " pass --reference FOLDER (generated from the base model)")
        return ImageFiles([_lookup(references, p, reference) for p in prompts])

    context = ScoringContext(device=device, reference_images=reference_images)
    scored = 0
    closest: tuple[int, str, int, PromptSpec] | None = None  # held, request, of, first missing
    for request in task.requests():
        prompts = task.prompts(request)
        missing = [p for p in prompts if (p.text, p.seed) not in images]
        if missing:
            held = len(prompts) - len(missing)
            if closest is None or held > closest[0]:
                closest = (held, request.display(), len(prompts), missing[0])
            continue
        scored += 1
        chosen = ImageFiles([images[(p.text, p.seed)] for p in prompts])
        for value in task.score(chosen, prompts, request, context):
            yield request.display(), value
    if not scored:
        nearest = ""
        if closest is not None:  # what to draw, for a folder made from the task's prompts
            held, request_name, of, first = closest
            nearest = (f"; the nearest, request {request_name!r}, has {held} of its {of} "
                       f"images, lacking e.g. {first.text!r} seed {first.seed}")
        raise UserError(f"{str(folder)!r} does not hold all the prompts and seeds of any request"
                        f" of task {task.name!r}{nearest}")


def _lookup(images: dict[tuple[str, int], Path], prompt: PromptSpec,
            folder: Path | None) -> Path:
    try:
        return images[(prompt.text, prompt.seed)]
    except KeyError:
        raise UserError(f"{folder} has no image for {prompt.text!r} seed {prompt.seed}") from None
