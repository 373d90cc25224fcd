import subprocess
import sys

import pytest
from pydantic import ValidationError

from erasebench.specs import (
    EraserSpec,
    ErasureRequest,
    GenerationSpec,
    ModelSpec,
    PromptSpec,
    RunSpec,
    TaskSpec,
)


def _spec(**changes):
    values = dict(
        eraser=EraserSpec(name="uce", config={"lam": 0.5, "scales": [1, 2]}),
        request=ErasureRequest(concepts=("cat",), preserve=("dog",)),
        task=TaskSpec(name="mock", options={"n": 3}),
        model=ModelSpec(),
        generation=GenerationSpec(),
    )
    values.update(changes)
    return RunSpec(**values)


def test_same_spec_same_hash_in_another_process():
    spec = _spec()
    code = (
        "from erasebench.specs import RunSpec\n"
        f"print(RunSpec.model_validate_json({spec.model_dump_json()!r}).run_id())"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == spec.run_id()


def test_key_order_does_not_change_the_hash():
    a = EraserSpec(name="uce", config={"a": 1, "b": 2})
    b = EraserSpec(name="uce", config={"b": 2, "a": 1})
    assert a.spec_hash() == b.spec_hash()


@pytest.mark.parametrize("change", [
    {"eraser": EraserSpec(name="uce", config={"lam": 0.6, "scales": [1, 2]})},
    {"request": ErasureRequest(concepts=("cat",))},
    {"task": TaskSpec(name="mock", options={"n": 4})},
    {"model": ModelSpec(revision="fp16")},
    {"generation": GenerationSpec(steps=49)},
])
def test_any_change_changes_the_hash(change):
    assert _spec(**change).run_id() != _spec().run_id()


def test_specs_are_frozen_and_reject_unknown_keys():
    spec = _spec()
    with pytest.raises(ValidationError):
        spec.model = ModelSpec(id="other")  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        GenerationSpec(stepz=3)  # type: ignore[call-arg]


def test_round_trip_through_json():
    spec = _spec()
    assert RunSpec.model_validate_json(spec.model_dump_json()) == spec


@pytest.mark.parametrize("bad", [
    {"seed": -1}, {"seed": 2**64}, {"seed": "x"}, {"guidance": -1.0},
])
def test_prompt_values_are_checked(bad):
    with pytest.raises(ValidationError):
        PromptSpec(**{"text": "a cat", "seed": 0, **bad})


def test_generation_size_must_be_a_multiple_of_8():
    with pytest.raises(ValidationError):
        GenerationSpec(height=500)


@pytest.mark.parametrize(("field", "named"), [
    ("concepts", "an empty concept"), ("anchors", "an empty anchor"),
    ("preserve", "an empty concept to preserve"),
])
def test_an_empty_concept_anchor_or_preserved_one_is_refused_by_name(field, named):
    from erasebench.errors import UserError

    values = {"concepts": ("cat",), field: ("dog", "  ")}
    with pytest.raises(UserError, match=named):
        ErasureRequest(**values)
    assert ErasureRequest(concepts=(" cat ",)).concepts == ("cat",)  # trimmed, kept
    assert ErasureRequest(concepts=()).concepts == ()  # none at all: the original model's
