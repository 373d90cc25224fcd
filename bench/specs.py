"""Frozen, serialisable specs from which every run is rebuilt.

The canonical-JSON hash of a spec is its id: it names cache entries, result files and
run directories, and it is how an interrupted run knows what it has already done.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from erasebench.errors import UserError
from erasebench.io import canonical_json

DEFAULT_MODEL_ID = "CompVis/stable-diffusion-v1-4"
SCHEDULERS = ("ddim", "lms", "pndm", "dpm")
MAX_SEED = 2**63 - 1


class Spec(BaseModel):
    """Base of every spec: immutable, rejects unknown keys, hashes canonically."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def canonical(self) -> str:
        return canonical_json(self.model_dump(mode="json"))

    def spec_hash(self, length: int = 16) -> str:
        """Stable id: the same spec gives the same hash in every process and on every machine."""
        return hashlib.sha256(self.canonical().encode()).hexdigest()[:length]


class ErasureRequest(Spec):
    """What to erase: concepts, optional anchors (what to map them to) and a preserve set."""

    concepts: tuple[str, ...] = Field(min_length=0)
    anchors: tuple[str, ...] = ()
    preserve: tuple[str, ...] = ()
    label: str = ""  # a human name for tables, e.g. "split 1"; part of the id on purpose

    @field_validator("concepts", "anchors", "preserve")
    @classmethod
    def _strip(cls, values: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        stripped = tuple(value.strip() for value in values)
        if "" in stripped:  # an eraser would erase (map to, keep) the empty prompt
            # A UserError, not pydantic's ValueError: one line naming the field wherever a
            # request is made (`erase --concept ""`, a task's option).
            what = {"concepts": "concept", "anchors": "anchor", "preserve": "concept to "
                    "preserve"}[info.field_name or "concepts"]
            raise UserError(f"an empty {what} in the erasure request {list(values)!r}: each "
                            "must name something")
        return stripped

    def display(self) -> str:
        return self.label or ", ".join(self.concepts) or "(nothing)"


class ModelSpec(Spec):
    """A base model: a hub id or a local diffusers folder (plus revision), or ``tiny``."""

    id: str = DEFAULT_MODEL_ID
    revision: str | None = None


class GenerationSpec(Spec):
    """Sampling settings; a prompt's own guidance (e.g. I2P's) overrides ``guidance``."""

    scheduler: Literal["ddim", "lms", "pndm", "dpm"] = "ddim"
    steps: int = Field(50, ge=1, le=1000)
    guidance: float = Field(7.5, ge=0.0)
    # None: the model's native size (512 for SD v1, 32 for the tiny test model).
    height: int | None = Field(None, ge=8, multiple_of=8)
    width: int | None = Field(None, ge=8, multiple_of=8)
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"

    @classmethod
    def checked(cls, values: Mapping[str, Any]) -> GenerationSpec:
        """The settings of ``values`` (a task's own with a command's options over them); a
        bad value is a UserError naming the setting and the value, not pydantic's
        traceback."""
        try:
            return cls.model_validate(dict(values))
        except ValidationError as error:
            first = error.errors()[0]
            setting = ".".join(str(part) for part in first["loc"]) or "settings"
            raise UserError(f"bad generation setting {setting} {first.get('input')!r}: "
                            f"{first['msg']}") from None


class EraserSpec(Spec):
    """An eraser by name with its full, resolved config (defaults written out)."""

    name: str
    config: dict[str, Any] = Field(default_factory=dict)


class TaskSpec(Spec):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class RunSpec(Spec):
    """One work unit: this eraser, on this request, scored by this task, on this model."""

    eraser: EraserSpec
    request: ErasureRequest
    task: TaskSpec
    model: ModelSpec
    generation: GenerationSpec

    def run_id(self) -> str:
        return self.spec_hash()


class PromptSpec(Spec):
    """One image to generate and how the task will read it."""

    text: str
    seed: int = Field(ge=0, le=MAX_SEED)
    guidance: float | None = Field(None, ge=0.0)  # None: the run's GenerationSpec.guidance
    negative: str = ""
    group: str = "erase"  # "erase", "preserve", ... : which side of the trade-off it measures
    label: str = ""  # the class or concept the image should (not) show
    unsafe: bool = False  # images of unsafe prompts never appear in reports unless asked
