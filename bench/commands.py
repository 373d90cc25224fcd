"""The bodies of ``erasebench prompts``, ``generate`` and ``score``: prompt files, seed
ranges, and folders of images with a ``manifest.csv`` (file, prompt, seed, guidance and,
from ``generate``, the concepts the images' edit erased and the model, scheduler and steps
that drew them, the size and the precision they were drawn in)."""

from __future__ import annotations

import json
import math
import shlex
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from erasebench.errors import UserError
from erasebench.hardware import resolved_device
from erasebench.image_sequences import ImageFiles
from erasebench.io import atomic_write
from erasebench.plugins import MetricValue, ScoringContext, Task
from erasebench.specs import (
    MAX_SEED,
    ErasureRequest,
    GenerationSpec,
    ModelSpec,
    PromptSpec,
)

MANIFEST = "manifest.csv"
# The manifest's column of the concepts the images' edit erased, as a JSON list: [] for
# the original model's images. A manifest written elsewhere may lack it.
ERASED = "erased"
# The manifest's columns of how `generate` drew the images, which `score` compares with how
# the task draws its own (with the guidance column, per image). The size is the one drawn
# ("512x512"), and NATIVE_SIZE the model's own side ("512"), which a task draws at where it
# asks for no size.
DRAWN_WITH = ("model", "scheduler", "steps", "size")
NATIVE_SIZE = "native_size"
# The manifest's column of the precision the images were drawn in (fp32, fp16, bf16), which
# the task leaves to the device (fp16 on a GPU): `score` compares it between the images and
# the reference images they are measured against, not with the task.
PRECISION = "precision"
_SEED_COLUMNS = ("seed", "evaluation_seed", "sd_seed")
_GUIDANCE_COLUMNS = ("guidance", "evaluation_guidance", "sd_guidance_scale")
_NEGATIVE_COLUMNS = ("negative", "negative_prompt")


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
    """A CSV with a ``prompt`` column; seeds, guidance and negative prompts from the usual
    column names (an empty negative cell: none)."""
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
    negative_column = next((c for c in _NEGATIVE_COLUMNS if c in frame.columns), None)
    prompts = []
    for line, row in enumerate(frame.itertuples(index=False), start=2):
        values = row._asdict()
        try:
            seed = _whole_seed(values[seed_column], path, line) if seed_column else 0
            guidance = float(values[guidance_column]) if guidance_column else None
            negative = values[negative_column] if negative_column else ""
            prompts.append(PromptSpec(text=str(values["prompt"]), seed=seed, guidance=guidance,
                                      negative="" if pd.isna(negative) else str(negative)))
        except (ValueError, TypeError) as error:
            raise UserError(f"{path}:{line}: bad row: {error}".splitlines()[0]) from None
    return prompts


def task_prompt_table(task: Task, requests: Sequence[ErasureRequest],
                      references: bool = False) -> pd.DataFrame:
    """One row per image ``requests`` of ``task`` ask for (with ``references``, per
    original-model image their scoring compares with: ``Task.reference_prompts``), each
    once (a classification task's splits prompt alike): prompt, seed, guidance (the
    prompt's own, else the task's) and label, the columns `generate --prompts` reads."""
    guidance = task.generation().guidance
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for request in requests:
        prompts = task.reference_prompts(request) if references else task.prompts(request)
        for prompt in prompts:
            rows.setdefault((prompt.text, prompt.seed), {
                "prompt": prompt.text, "seed": prompt.seed, "label": prompt.label,
                "guidance": guidance if prompt.guidance is None else prompt.guidance})
    return pd.DataFrame(list(rows.values()), columns=["prompt", "seed", "guidance", "label"])


def generate_command(task: Task, prompt_file: Path, edited: bool = True,
                     folder: str = "IMAGES") -> str:
    """The `generate` command that draws ``prompt_file``'s images as ``task`` has them
    drawn (its model, scheduler, steps and size) into ``folder``, with an edit's place
    left to fill in where ``edited``. The model is always named: `generate`'s own default
    is the miniature world's, which would draw an SD task's prompts."""
    settings = task.generation()
    words = ["erasebench generate", "--prompts", shlex.quote(str(prompt_file)),
             "--model", shlex.quote(task.default_model),
             "--scheduler", settings.scheduler, "--steps", str(settings.steps)]
    if settings.height is not None and settings.height == settings.width:
        words += ["--size", str(settings.height)]
    elif settings.height is not None and settings.width is not None:
        words += ["--size", f"{settings.height}x{settings.width}"]
    if settings.precision != "auto":
        words += ["--precision", settings.precision]
    if edited:
        words += ["--edit", "EDIT.safetensors"]
    return " ".join([*words, "--out", folder])


def generate_images(*, out: Path, texts: list[str], prompt_file: Path | None, seeds: str,
                    negative: str = "", edit_path: Path | None, model: ModelSpec,
                    cache_dir: Path, device: str,
                    batch_size: int | None, overrides: dict[str, Any], console: Any,
                    compile_unet: bool = False) -> None:
    from erasebench.cache import ImageCache
    from erasebench.edits import EditedModel
    from erasebench.generate import Generator, resolved_precision_name
    from erasebench.models import load_model

    if bool(texts) == bool(prompt_file):
        raise UserError("give either --prompt (one or more) or --prompts FILE")
    if negative and prompt_file:
        raise UserError("--negative is for --prompt; a --prompts file gives its images' "
                        "negative prompts in a 'negative' column")
    settings = GenerationSpec.checked(overrides)  # before the model is loaded
    prompts = (read_prompt_file(prompt_file) if prompt_file
               else [PromptSpec(text=t, seed=s, negative=negative)
                     for t in texts for s in parse_seeds(seeds)])
    edit = EditedModel.load(edit_path) if edit_path else None
    base = load_model(model, device=resolved_device(device))
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
                     "guidance": guidance, "negative": prompt.negative})
    frame = pd.DataFrame(rows)
    # Which of a task's requests the images answer, for `score` to pick (the splits of a
    # classification task prompt alike).
    frame[ERASED] = json.dumps(list(edit.request.concepts) if edit else [])
    drawn_with = {"model": model.id, "scheduler": settings.scheduler, "steps": settings.steps,
                  "size": _size_words(*generator.size), NATIVE_SIZE: base.native_size,
                  PRECISION: resolved_precision_name(settings.precision, base.device)}
    frame = frame.assign(**drawn_with)
    atomic_write(out / MANIFEST, lambda tmp: frame.to_csv(tmp, index=False))
    console.print(f"wrote {len(rows)} images and {MANIFEST} to {out}")


@dataclass(frozen=True)
class ImageFolder:
    """A folder of images with its manifest: each (prompt, seed)'s file, and the concepts
    the images' edit erased (() for the original model's; None where the manifest does
    not say, as one written outside erasebench), each (prompt, seed)'s guidance and
    negative prompt and the values of the :data:`DRAWN_WITH`, :data:`NATIVE_SIZE` and
    :data:`PRECISION` columns, where the manifest has them."""

    files: dict[tuple[str, int], Path]
    erased: tuple[str, ...] | None
    guidance: dict[tuple[str, int], float]
    negative: dict[tuple[str, int], str]
    drawn_with: dict[str, list[str]]


def _whole_seed(value: Any, path: Path, line: int) -> int:
    """A seed cell of a CSV ("7", or "7.0" as code that wrote floats writes it), named by its
    line where it is no whole number (2.5 is not taken for 2)."""
    text = str(value).strip()  # pandas gives numbers where the column is all numeric
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if number.is_integer():
        return int(number)
    raise UserError(f"{path}:{line}: seed {str(value)!r} is not a whole number")


def read_image_folder(folder: Path) -> ImageFolder:
    """The manifest of ``folder`` (the images are read when scored)."""
    manifest = folder / MANIFEST
    if not folder.exists():
        raise UserError(f"{str(folder)!r} does not exist")
    if not folder.is_dir():
        raise UserError(f"{str(folder)!r} is a file, not a folder of images")
    if not manifest.is_file():
        raise UserError(f"{str(folder)!r} has no {MANIFEST}; make it with `erasebench generate`")
    try:
        frame = pd.read_csv(manifest, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise UserError(f"{manifest} is not a readable CSV: {error}") from None
    missing = {"file", "prompt", "seed"} - set(frame.columns)
    if missing:
        raise UserError(f"{manifest} lacks the columns {sorted(missing)}")
    keys = [(str(prompt), _whole_seed(seed, manifest, line))
            for line, (prompt, seed) in enumerate(zip(frame.prompt, frame.seed, strict=True),
                                                  start=2)]
    files = {key: folder / str(name) for key, name in zip(keys, frame.file, strict=True)}
    guidance = ({key: float(value) for key, value in zip(
                    keys, pd.to_numeric(frame.guidance, errors="coerce"), strict=True)
                 if not math.isnan(value)} if "guidance" in frame.columns else {})
    absent = [path.name for path in files.values() if not path.is_file()]
    if absent:
        raise UserError(f"{manifest} names {len(absent)} file(s) that {str(folder)!r} lacks: "
                        f"{', '.join(absent[:5])}")
    return ImageFolder(
        files, _erased(frame, manifest),
        guidance,
        (dict(zip(keys, frame.negative.astype(str), strict=True))
         if "negative" in frame.columns else {}),
        {column: sorted(set(frame[column].astype(str)))
         for column in (*DRAWN_WITH, NATIVE_SIZE, PRECISION) if column in frame.columns})


def drawn_otherwise(task: Task, held: ImageFolder, prompts: Sequence[PromptSpec]) -> list[str]:
    """How ``held``'s images of ``prompts`` were drawn otherwise than ``task`` draws its
    own, as far as the manifest says ("steps 50 (the task's 100)"); nothing where they were
    drawn alike. A local folder given as the model is taken at its word: it may well hold
    the task's model (no network, SD v1.4 copied in)."""
    settings = task.generation()
    expected = {"model": task.default_model, "scheduler": settings.scheduler,
                "steps": str(settings.steps)}
    sides = [settings.height, settings.width]
    native = held.drawn_with.get(NATIVE_SIZE, [])
    if len(native) == 1:  # the model that drew them: the task's, or a warning says not
        sides = [side or int(native[0]) for side in sides]
    if all(sides):
        expected["size"] = _size_words(*sides)
    found = []
    for column, values in held.drawn_with.items():
        if column == "model" and any(Path(v).is_absolute() or Path(v).is_dir() for v in values):
            continue
        if column in expected and values != [expected[column]]:
            found.append(f"{column} {', '.join(values)} (the task's {expected[column]})")
    guidance = {(p.text, p.seed): settings.guidance if p.guidance is None else p.guidance
                for p in prompts}
    found += _differing_images("guidance", held.guidance, guidance,
                               lambda a, b: not math.isclose(a, b), lambda v: f"{v:g}")
    negatives = {(p.text, p.seed): p.negative for p in prompts}
    found += _differing_images("negative prompt", held.negative, negatives,
                               lambda a, b: a != b, repr)
    return found


def _size_words(height: int | None, width: int | None) -> str:
    return f"{height}x{width}"


def _differing_images(setting: str, held: dict[tuple[str, int], Any],
                      wanted: dict[tuple[str, int], Any], differ: Callable[[Any, Any], bool],
                      show: Callable[[Any], str]) -> list[str]:
    """A per-image ``setting`` of the manifest (``held``) against the task's (``wanted``):
    "guidance 3 for 10 of 10 images (the task's 4 for e.g. …)", or nothing."""
    off = [(key, value) for key, value in wanted.items()
           if key in held and differ(held[key], value)]
    if not off:
        return []
    (text, seed), value = off[0]
    return [f"{setting} {show(held[text, seed])} for {len(off)} of {len(wanted)} images (the "
            f"task's {show(value)} for e.g. {text!r} seed {seed})"]


def _erased(frame: pd.DataFrame, manifest: Path) -> tuple[str, ...] | None:
    if ERASED not in frame.columns:
        return None
    erased = {_concept_list(text, manifest) for text in set(frame[ERASED].astype(str))}
    if len(erased) > 1:
        raise UserError(f"{manifest} holds images of edits that erased different concepts "
                        f"({', '.join(map(_concepts, sorted(erased)))}); score one edit's "
                        "images at a time")
    return erased.pop() if erased else ()


def _concept_list(text: str, manifest: Path) -> tuple[str, ...]:
    """The concepts of a JSON list in the manifest's ``erased`` column."""
    try:
        concepts = json.loads(text)
    except ValueError:
        concepts = None
    if not isinstance(concepts, list) or not all(isinstance(c, str) for c in concepts):
        raise UserError(f"{manifest}: the {ERASED!r} column holds {text!r}, not a JSON list of "
                        'concepts (e.g. ["cat"], or [] for the original model\'s images)')
    return tuple(concepts)


def _concepts(concepts: Sequence[str]) -> str:
    return ", ".join(concepts) or "nothing"


def chosen_requests(task: Task, names: Sequence[str]) -> list[ErasureRequest]:
    """The requests of ``task`` named as its tables name them (``split 1``, or the erased
    concepts), all of them when none is."""
    requests = task.requests()
    if not names:
        return requests
    by_name = {request.display(): request for request in requests}
    for name in names:
        if name not in by_name:
            raise UserError(f"task {task.name!r} has no request {name!r}; its requests: "
                            f"{', '.join(map(repr, by_name))}")
    return [by_name[name] for name in dict.fromkeys(names)]


def answered_requests(task: Task, requests: list[ErasureRequest],
                      erased: tuple[str, ...]) -> list[ErasureRequest]:
    """Of ``requests`` (more than one, whose prompts a folder all holds), those erasing
    what the folder's edit erased (``erased``; names compared in any case): the splits of
    a classification task prompt alike, and an edit answers only the one it was made for."""
    def key(concepts: Sequence[str]) -> set[str]:
        return {" ".join(concept.split()).casefold() for concept in concepts}

    matching = [r for r in requests if key(r.concepts) == key(erased)]
    if not matching:
        theirs = "; ".join(f"{r.display()!r}: {_concepts(r.concepts)}" for r in requests[:6])
        more = f"; and {len(requests) - 6} more" if len(requests) > 6 else ""
        raise UserError(f"the images were drawn with an edit that erased {_concepts(erased)}, "
                        f"and no request of task {task.name!r} erases just that (its "
                        f"requests: {theirs}{more}); pass --request NAME to score them as "
                        "one of these anyway")
    return matching


def score_folder(task: Task, folder: Path, reference: Path | None, device: str,
                 request_names: Sequence[str] = (),
                 warn: Callable[[str], None] = lambda _: None,
                 ) -> Iterator[tuple[str, MetricValue]]:
    """Scores the images of ``folder`` for the requests (:func:`chosen_requests`) it holds
    every prompt of; of several, those its edit answers (:func:`answered_requests`)
    unless they were named. Images drawn otherwise than the task draws its own
    (:func:`drawn_otherwise`) are scored with a warning first; so are reference images
    drawn so or with an edit, once the task asks for them (a task that does not, reads
    none)."""
    held = read_image_folder(folder)
    images = held.files
    reference_held = read_image_folder(reference) if reference else None
    looked_at_references = False

    def reference_images(prompts: Any) -> ImageFiles:
        nonlocal looked_at_references
        if reference_held is None:
            raise UserError(f"task {task.name!r} compares against the original model's images;"
                            " pass --reference FOLDER (generated from the base model)")
        if not looked_at_references:  # LPIPS, FID and the like measure against them
            looked_at_references = True
            edited = ([f"with an edit that erased {_concepts(reference_held.erased)} (the "
                       "original model's have none)"] if reference_held.erased else [])
            _warn_unlike(warn, task, f"the reference images in {str(reference)!r}",
                         edited + drawn_otherwise(task, reference_held, prompts),
                         "The numbers measured against them")
            _warn_other_precision(warn, (str(folder), held), (str(reference), reference_held))
        return ImageFiles([_lookup(reference_held.files, p, reference) for p in prompts])

    complete: dict[ErasureRequest, list[PromptSpec]] = {}
    closest: tuple[int, str, int, PromptSpec] | None = None  # held, request, of, first missing
    for request in chosen_requests(task, request_names):
        prompts = task.prompts(request)
        missing = [p for p in prompts if (p.text, p.seed) not in images]
        if not missing:
            complete[request] = prompts
        elif closest is None or len(prompts) - len(missing) > closest[0]:
            closest = (len(prompts) - len(missing), request.display(), len(prompts), missing[0])
    if not complete:
        nearest = ""
        if closest is not None:  # what to draw, for a folder made from the task's prompts
            count, request_name, of, first = closest
            nearest = (f"; the nearest, request {request_name!r}, has {count} of its {of} "
                       f"images, lacking e.g. {first.text!r} seed {first.seed}")
        raise UserError(f"{str(folder)!r} does not hold all the prompts and seeds of any request"
                        f" of task {task.name!r}{nearest}")
    chosen = list(complete)
    if not request_names and held.erased and len(chosen) > 1:
        chosen = answered_requests(task, chosen, held.erased)
    _warn_unlike(warn, task, f"the images in {str(folder)!r}",
                 drawn_otherwise(task, held, [p for r in chosen for p in complete[r]]),
                 "Their numbers")
    # The original model's images the task compares with, looked for before any scoring
    # (an SD task's takes minutes) rather than at the first one the scorer misses.
    declared = {(p.text, p.seed): p for r in chosen for p in task.reference_prompts(r)}
    if declared and reference_held is not None:
        absent = [p for key, p in declared.items() if key not in reference_held.files]
        if absent:
            raise UserError(
                f"{str(reference)!r} lacks {len(absent):,} of the {len(declared):,} original-"
                f"model images task {task.name!r} compares with, e.g. {absent[0].text!r} "
                f"seed {absent[0].seed}; `erasebench prompts --task {task.name}` prints the "
                "command that draws them")
    if declared:  # says at once that --reference is missing, or its images drawn otherwise
        reference_images(list(declared.values()))
    context = ScoringContext(device=device, reference_images=reference_images)
    for request in chosen:
        prompts = complete[request]
        files = ImageFiles([images[(p.text, p.seed)] for p in prompts])
        for value in task.score(files, prompts, request, context):
            yield request.display(), value


def _warn_unlike(warn: Callable[[str], None], task: Task, images: str,
                 otherwise: list[str], numbers: str) -> None:
    if otherwise:
        warn(f"{images} were drawn otherwise than task {task.name!r} draws its own: "
             f"{'; '.join(otherwise)}. {numbers} do not compare with the task's in a run "
             f"or on the leaderboard; `erasebench prompts --task {task.name}` prints the "
             "command that draws them as the task does.")


def _warn_other_precision(warn: Callable[[str], None], images: tuple[str, ImageFolder],
                          reference: tuple[str, ImageFolder]) -> None:
    """Warns where the images and the reference images they are measured against were
    drawn in different precisions (as far as both manifests say): a run draws both alike,
    and the pixels half precision moves count as the edit's in LPIPS, FID and the like."""
    (folder, held), (reference_folder, reference_held) = images, reference
    ours, theirs = held.drawn_with.get(PRECISION), reference_held.drawn_with.get(PRECISION)
    if ours and theirs and ours != theirs:
        warn(f"the images in {folder!r} were drawn in {', '.join(ours)} and the reference "
             f"images in {reference_folder!r} in {', '.join(theirs)}: the numbers "
             "measured between them count what the precision changes as the edit's doing; "
             "draw both in one precision (`erasebench generate --precision`)")


def _lookup(images: dict[tuple[str, int], Path], prompt: PromptSpec,
            folder: Path | None) -> Path:
    try:
        return images[(prompt.text, prompt.seed)]
    except KeyError:
        raise UserError(f"{folder} has no image for {prompt.text!r} seed {prompt.seed}") from None
