"""The two plugin contracts: an Eraser edits a model, a Task says what to generate and scores it.

Both take a typed pydantic config (``Config`` / ``Options``) whose defaults are the
paper's settings; unknown keys and wrong types are user errors with a clear message.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from erasebench.errors import UnknownNameError, UserError
from erasebench.specs import (
    DEFAULT_MODEL_ID,
    EraserSpec,
    ErasureRequest,
    GenerationSpec,
    PromptSpec,
    TaskSpec,
)

if TYPE_CHECKING:
    import pandas as pd
    import torch
    from PIL import Image

    from erasebench.edits import EditedModel
    from erasebench.figures import Figure
    from erasebench.models import DiffusionModel
    from erasebench.probe import ModelProbe
    from erasebench.scorers.weights import WeightFile


class PluginConfig(BaseModel):
    """Base of eraser configs and task options: frozen, no unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def option_keys(schema: type[PluginConfig]) -> set[str] | None:
    """The keys a config or options schema takes; None for one that takes any (a plugin's
    own schema may allow extra keys, where PluginConfig forbids them)."""
    if schema.model_config.get("extra") != "forbid":
        return None
    return set(schema.model_fields)


def parse_config(kind: str, name: str, schema: type[PluginConfig],
                 values: dict[str, Any] | PluginConfig | None) -> PluginConfig:
    if isinstance(values, schema):
        return values
    try:
        return schema.model_validate(dict(values or {}))
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or '(config)'}: {item['msg']}"
            for item in error.errors()
        )
        valid = ", ".join(schema.model_fields) or "(no options)"
        raise UserError(
            f"bad {kind} config for {name!r}: {problems} (valid keys: {valid})") from None


class Eraser:
    """Base class of erasers: ``erase(model, request) -> EditedModel``.

    Subclasses set ``Config`` (paper defaults), optionally ``presets`` (named overrides,
    e.g. ``"shapes"`` for the miniature world), and implement :meth:`erase`, which must
    leave ``model`` as it found it. The contract suite checks that every parameter it
    changes is one that :meth:`editable_parameters` names.
    """

    name: ClassVar[str] = ""
    in_default_run: ClassVar[bool] = True  # part of `erasebench run` without --erasers
    # False for an eraser whose edit is always empty (the original model): its images are
    # the base model's, one set for every request (counted so by erasebench.workload).
    makes_edits: ClassVar[bool] = True
    # True for an eraser whose training checkpoints (``baselines.common.train_loop`` with a
    # ``TrainingState``): a run prices the checkpoints on the cache's disk
    # (``erasebench.cache_space``), and the contract suite holds the eraser to its word.
    checkpoints_training: ClassVar[bool] = False
    Config: ClassVar[type[PluginConfig]] = PluginConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, config: dict[str, Any] | PluginConfig | None = None,
                 preset: str | None = None) -> None:
        values: dict[str, Any] | PluginConfig | None = config
        if preset is not None:
            if preset not in self.presets:
                raise UnknownNameError(f"preset of {self.name}", preset, self.presets)
            overrides = config.model_dump() if isinstance(config, PluginConfig) else config
            values = {**self.presets[preset], **(overrides or {})}
        self.config = parse_config("eraser", self.name, self.Config, values)

    def spec(self) -> EraserSpec:
        return EraserSpec(name=self.name, config=self.config.model_dump(mode="json"))

    def editable_parameters(self, model: DiffusionModel) -> list[str]:
        """Qualified names of the parameters this eraser may change."""
        return []

    def erase(self, model: DiffusionModel, request: ErasureRequest) -> EditedModel:
        raise NotImplementedError


@dataclass(frozen=True)
class MetricInfo:
    higher_is_better: bool | None  # None: descriptive (e.g. a correlation), no best value
    description: str = ""
    # False for the detail behind a headline number (e.g. per-class rates): the leaderboard
    # shows headline metrics in its main table and the others in a detail table.
    headline: bool = True


class MetricValue(BaseModel):
    """One number a task computed: a metric for one split/seed/group."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: str
    value: float
    split: str = ""
    seed: int | None = None
    # Per-image values whose mean is ``value``, for metrics that average over images
    # (e.g. 100 or 0 per image for ESR-1): the reporter's bootstrap intervals resample them.
    samples: tuple[float, ...] = ()


@dataclass
class ScoringContext:
    """What a task may use while scoring besides its images."""

    device: str
    # Images of the *unedited* base model for the same prompts (e.g. LPIPS vs `sd`); the
    # prompts are those the task declares (Task.reference_prompts).
    reference_images: Callable[[Sequence[PromptSpec]], Sequence[Image.Image]]
    # The base model's text embeddings (n, tokens, dim), e.g. for concept distances.
    encode_text: Callable[[list[str]], torch.Tensor] | None = None
    # The model and the unit's edit, for tasks that attack the edited model (robustness);
    # None where there is no model (`erasebench score` on a folder).
    probe: ModelProbe | None = None


class Task:
    """Base class of tasks: declares requests and prompts, scores images into metrics.

    Tasks never generate images themselves; the runner does, through the cache.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    citation: ClassVar[str] = ""
    in_default_run: ClassVar[bool] = False  # part of `erasebench run` without --tasks
    # The base model the task is meant for when `run` gets no --model (hub id, folder,
    # 'shapes' for the miniature world, 'tiny' for the random test model).
    default_model: ClassVar[str] = DEFAULT_MODEL_ID
    # Options that make the task small enough for the contract suite on the tiny model.
    contract_options: ClassVar[dict[str, Any]] = {}
    metrics: ClassVar[dict[str, MetricInfo]] = {}
    Options: ClassVar[type[PluginConfig]] = PluginConfig

    def __init__(self, options: dict[str, Any] | PluginConfig | None = None) -> None:
        self.options = parse_config("task", self.name, self.Options, options)

    def spec(self) -> TaskSpec:
        return TaskSpec(name=self.name, options=self.options.model_dump(mode="json"))

    def generation(self) -> GenerationSpec:
        """The papers' generation settings for this task (the runner may override them)."""
        return GenerationSpec()

    def requests(self) -> list[ErasureRequest]:
        raise NotImplementedError

    def prompts(self, request: ErasureRequest) -> list[PromptSpec]:
        raise NotImplementedError

    def reference_prompts(self, request: ErasureRequest) -> list[PromptSpec]:
        """The prompts whose original-model images :meth:`score` compares with
        (``context.reference_images``); none by default. A run draws them with the base
        model at the unit's generation settings, once for every unit that asks alike, and
        the dry run and the progress line count them as images to draw (an artist unit's
        1,000 where ``sd`` is not among the erasers). The contract suite checks that a
        run draws no more and no fewer."""
        return []

    def score(self, images: Sequence[Image.Image], prompts: Sequence[PromptSpec],
              request: ErasureRequest, context: ScoringContext) -> list[MetricValue]:
        """The metrics of ``images`` (one per prompt, in order).

        In a run, ``images`` (and ``context.reference_images(...)``) are read from the image
        cache as they are used (:mod:`erasebench.image_sequences`), so that thousands of
        512 px images need not fit in memory: go through them a slice at a time
        (``images[start:start + batch]``), as the scorers in ``erasebench.scorers`` do,
        rather than listing them all; each read decodes again.
        """
        raise NotImplementedError

    def scorer_versions(self) -> dict[str, str]:
        """Scorer name -> version and weight hash, recorded with every result."""
        return {}

    def weight_files(self) -> list[WeightFile]:
        """The weight files this task's scorers read (``erasebench weights`` lists them)."""
        return []

    def attack_kind(self, generation: GenerationSpec, device: str) -> str | None:
        """What the attacks this task makes on a unit's edited model
        (``ScoringContext.probe``) are made as, run with ``generation`` on ``device``: the
        attack, its version and the precision it runs in (``"recovery v1, bfloat16"``),
        which ``ModelProbe.kept_attack`` notes beside each. A look in the caches (a run's time
        left, ``--dry-run --check-cache``) counts for a unit to do only the attacks held
        that were made so, not those an older version of the attack, or another
        precision, made, which it would make again. None (the default): the task makes no
        attacks."""
        return None

    # Metrics another task measures on this task's requests, shown in this task's table as
    # the papers do (e.g. Imagenette's table has FID and CLIP from coco_quality): task name
    # -> metric names. The reporter takes them for the same model, eraser and request.
    borrowed_metrics: ClassVar[dict[str, tuple[str, ...]]] = {}

    @classmethod
    def report(cls, rows: pd.DataFrame) -> str:
        """Extra markdown for the leaderboard from this task's tidy result rows (e.g. a
        matrix assembled across requests); empty for none."""
        return ""

    @classmethod
    def figures(cls, rows: pd.DataFrame, stem: str) -> list[Figure]:
        """Figures for the leaderboard from this task's rows (file names start with
        ``stem``); none by default. See :mod:`erasebench.figures`."""
        return []
