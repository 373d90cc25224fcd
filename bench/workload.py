"""How many images a run's work units ask for, counted before anything is loaded.

``erasebench run --dry-run`` prints it, so that a full reproduction can be sized before
it starts (at a measured images/s, ``benchmarks/README.md``). An image is counted once
per identity, the fields of the image cache's key (``Generator.key_fields``): model,
edit, prompt, negative prompt, seed, guidance, steps, scheduler, size and precision. The
edit is not known until it is made; it stands here as what makes it, the eraser's spec
and the request (``Runner.edit``'s key), or as nothing for an eraser that makes none
(``Eraser.makes_edits``): the original model's images are one set, shared by every
request and task that prompts alike. Tasks that compare with the original model's images
(``Task.reference_prompts``) have their scoring draw those too: counted as the original
model's, they are the ``sd`` row's images where ``sd`` is among the erasers and prompts
alike, and otherwise images to draw (an artist unit's 1,000 for a plugin's eraser run on
its own). So the distinct count is what the runner draws with an empty image cache, less
any two erasers' edits that happen to be equal. What the caches already hold is
``erasebench.cached_work``'s to count, which loads the models.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from erasebench.specs import PromptSpec, RunSpec


@dataclass
class Workload:
    """Images asked for, per unit and in all, and what draws them."""

    per_unit: dict[str, int] = field(default_factory=dict)  # run id -> distinct images
    # run id -> its images that no unit before it in the count asks for: those it draws
    # when the units run in order on an empty image cache
    new_per_unit: dict[str, int] = field(default_factory=dict)
    # run id -> the original model's images its scoring compares with (Task.
    # reference_prompts) that neither it nor a unit before it asks for or draws
    references_per_unit: dict[str, int] = field(default_factory=dict)
    # (model id, steps, height, width) -> the distinct images drawn at those settings
    by_setting: dict[tuple[str, int, int | None, int | None], int] = field(
        default_factory=dict)
    asked: int = 0  # summed over units: an image two units ask for counts twice
    distinct: int = 0  # each image once, as the image cache draws it; references included
    # of those, the original model's images a scoring compares with that no unit asks for
    # as its own (none where sd is among the erasers and prompts alike)
    references: int = 0
    edits: int = 0  # erasures to make (one per eraser, request and model; units share them)


def image_identities(spec: RunSpec, prompts: Sequence[PromptSpec],
                     makes_edits: bool) -> set[Hashable]:
    """What decides each image of a unit: the image cache's key fields, with the edit as
    its maker. The fields common to the unit's images are serialised once, not once per
    image: a full reproduction asks for 369,162."""
    generation = spec.generation
    edit = (spec.eraser.canonical(), spec.request.canonical()) if makes_edits else None
    drawn_with = (spec.model.canonical(), edit, generation.steps, generation.scheduler,
                  generation.height, generation.width, generation.precision)
    guidance = float(generation.guidance)
    return {(drawn_with, prompt.text, prompt.negative, prompt.seed,
             guidance if prompt.guidance is None else float(prompt.guidance))
            for prompt in prompts}


# An erasure as what makes it: eraser name, model, eraser spec and request (Runner.edit's key).
Erasure = tuple[str, str, str, str]


def erasure_of(unit: Any) -> Erasure | None:
    """The erasure a unit (``runner.WorkUnit``) needs, as what makes it: eraser name,
    model, eraser spec and request (``Runner.edit``'s key); None for an eraser that
    makes no edit. Units with equal erasures share one edit."""
    if not unit.eraser.makes_edits:
        return None
    spec = unit.spec
    return (spec.eraser.name, spec.model.canonical(), spec.eraser.canonical(),
            spec.request.canonical())


# Each request's prompts, built once per plan: (task spec hash, request spec hash, whether
# the reference prompts) -> prompts.
PromptMemo = dict[tuple[str, str, bool], list[PromptSpec]]


def prompts_of_unit(unit: Any, memo: PromptMemo, references: bool = False
                    ) -> list[PromptSpec]:
    """The prompts ``unit`` asks for (with ``references``, those whose original-model
    images its scoring compares with, ``Task.reference_prompts``), built once for every
    unit of the same task options and request (building them reads prompt files: I2P's
    and COCO's are thousands)."""
    key = (unit.spec.task.spec_hash(), unit.spec.request.spec_hash(), references)
    if key not in memo:
        request = unit.spec.request
        memo[key] = (unit.task.reference_prompts(request) if references
                     else unit.task.prompts(request))
    return memo[key]


def count_images(units: Sequence[Any], prompts_of: PromptMemo | None = None) -> Workload:
    """The images ``units`` (``runner.WorkUnit``) ask for; prompts built once per request,
    and kept in ``prompts_of`` for another count of the same plan when given."""
    workload = Workload()
    prompts_of = {} if prompts_of is None else prompts_of
    seen: set[Hashable] = set()
    asked: set[Hashable] = set()  # the units' own images
    edits: set[Hashable] = set()
    for unit in units:
        spec = unit.spec
        makes_edits = unit.eraser.makes_edits
        if makes_edits:
            edits.add(erasure_of(unit))
        identities = image_identities(spec, prompts_of_unit(unit, prompts_of), makes_edits)
        workload.per_unit[unit.run_id] = len(identities)
        workload.asked += len(identities)
        new = identities - seen
        seen |= new
        asked |= identities
        # Drawn by the unit's scoring, after its own images, with the base model.
        references = image_identities(spec, prompts_of_unit(unit, prompts_of, references=True),
                                      makes_edits=False) - seen
        seen |= references
        workload.new_per_unit[unit.run_id] = len(new)
        workload.references_per_unit[unit.run_id] = len(references)
        setting = (spec.model.id, spec.generation.steps, spec.generation.height,
                   spec.generation.width)
        workload.by_setting[setting] = (workload.by_setting.get(setting, 0) + len(new)
                                        + len(references))
    workload.distinct, workload.edits = len(seen), len(edits)
    workload.references = len(seen - asked)
    return workload
