"""The contract every registered eraser and task must keep, third-party ones included.

Plugin authors run this file against their own package: everything registered under
the entry-point groups is collected.
"""

import pytest

from erasebench.edits import EditedModel
from erasebench.errors import UserError
from erasebench.plugins import Eraser, Task
from erasebench.registry import ERASERS, TASKS
from erasebench.results import load_results
from erasebench.runner import Runner, plan
from erasebench.specs import ErasureRequest, ModelSpec, PromptSpec
from erasebench.testing import check_eraser_contract, contract_eraser
from erasebench.workload import count_images

REQUEST = ErasureRequest(concepts=("cat",), anchors=("animal",), preserve=("dog",))


@pytest.mark.parametrize("name", ERASERS.names())
class TestEraserContract:
    def test_keeps_the_contract_on_the_tiny_model(self, name, tiny, tmp_path):
        eraser = contract_eraser(ERASERS.get(name))
        assert isinstance(eraser, Eraser) and eraser.name == name
        edit = check_eraser_contract(eraser, tiny, REQUEST)
        loaded = EditedModel.load(edit.save(tmp_path / "edit.safetensors"))
        assert loaded.digest == edit.digest and loaded.config == eraser.spec().config
        again = contract_eraser(ERASERS.get(name)).erase(tiny, REQUEST)
        assert again.digest == edit.digest, "same seed and config must give the same edit"

    def test_config_is_typed_and_documented(self, name):
        cls = ERASERS.get(name)
        assert (cls.__doc__ or "").strip(), f"{name} has no docstring"
        assert cls().spec().spec_hash() == cls().spec().spec_hash()
        with pytest.raises(UserError, match="no_such_key"):
            cls({"no_such_key": 1})


@pytest.mark.parametrize("name", TASKS.names())
class TestTaskContract:
    def test_declares_requests_prompts_and_metrics(self, name):
        task = TASKS.get(name)(TASKS.get(name).contract_options)
        assert isinstance(task, Task) and task.name == name and task.metrics
        assert (TASKS.get(name).__doc__ or "").strip(), f"{name} has no docstring"
        requests = task.requests()
        assert requests and all(isinstance(r, ErasureRequest) for r in requests)
        for request in requests:
            prompts = task.prompts(request)
            assert prompts and all(isinstance(p, PromptSpec) for p in prompts)
            assert prompts == task.prompts(request), "prompts must be deterministic"

    def test_runs_end_to_end_on_the_tiny_model(self, name, tmp_path, scorer_home):
        # scorer_home: every scorer reads random weights through its real loading code
        task = TASKS.get(name)(TASKS.get(name).contract_options)
        units = plan([ERASERS.get("sd")()], [task], ModelSpec(id="tiny"), {"steps": 2})
        Runner(tmp_path / "results", tmp_path / "cache", progress=False).run(units[:1])
        frame = load_results(tmp_path / "results")
        assert not frame.empty and set(frame.metric) <= set(task.metrics)
        assert frame.value.notna().all()

    def test_a_run_draws_the_reference_images_it_declares(self, name, tmp_path, scorer_home):
        # An edited model's unit: its own images are the edit's, so the base model's images
        # in the cache are those its scoring drew (Task.reference_prompts), which the dry
        # run and the progress line count (erasebench.workload) as drawn.
        task = TASKS.get(name)(TASKS.get(name).contract_options)
        unit = plan([ERASERS.get("mock")()], [task], ModelSpec(id="tiny"), {"steps": 2})[0]
        declared = task.reference_prompts(unit.spec.request)
        assert declared == task.reference_prompts(unit.spec.request), "must be deterministic"
        Runner(tmp_path / "results", tmp_path / "cache", progress=False).run([unit])
        drawn = len(list((tmp_path / "cache" / "images").rglob("*.png")))
        workload = count_images([unit])
        assert drawn == workload.distinct, (
            f"the run drew {drawn} images, the task's prompts and reference prompts "
            f"{workload.distinct}: does its score ask for reference images it does not "
            "declare in reference_prompts?")


def test_the_contract_holds_an_eraser_that_makes_no_edits_to_its_word(tiny):
    # Its images are counted as the base model's (erasebench.workload): an edit would be a lie.
    class ClaimsNoEdits(ERASERS.get("mock")):
        makes_edits = False

    with pytest.raises(AssertionError, match="says it makes no edits"):
        check_eraser_contract(ClaimsNoEdits(), tiny, REQUEST)
    check_eraser_contract(ERASERS.get("sd")(), tiny, REQUEST)


def test_the_contract_holds_an_eraser_to_its_word_on_checkpoints(tiny):
    # A run prices the checkpoints of those that say they keep them (erasebench.cache_space).
    class ClaimsCheckpoints(ERASERS.get("mock")):
        checkpoints_training = True

    class KeepsThemQuiet(ERASERS.get("esd_x")):
        checkpoints_training = False

    with pytest.raises(AssertionError, match="sets checkpoints_training but its training"):
        check_eraser_contract(ClaimsCheckpoints(), tiny, REQUEST)
    with pytest.raises(AssertionError, match="does not set checkpoints_training = True"):
        check_eraser_contract(KeepsThemQuiet(preset="tiny"), tiny, REQUEST)
