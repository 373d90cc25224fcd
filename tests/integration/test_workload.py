"""The images a plan asks for, counted before a run, are the images the run draws."""

from erasebench.registry import ERASERS
from erasebench.runner import Runner, plan
from erasebench.specs import ErasureRequest, ModelSpec, PromptSpec
from erasebench.testing import MockTask
from erasebench.workload import count_images


class TwoRequests(MockTask):
    """Two requests that prompt alike (cat and dog, the roles swapped), with one prompt
    asked for twice and one again at a guidance of its own."""

    def requests(self) -> list[ErasureRequest]:
        return [ErasureRequest(concepts=("cat",), preserve=("dog",)),
                ErasureRequest(concepts=("dog",), preserve=("cat",))]

    def prompts(self, request: ErasureRequest) -> list[PromptSpec]:
        prompts = super().prompts(request)  # cat and dog, seeds 0 and 1
        cat = PromptSpec(text="a photo of a cat", seed=0)
        return [*prompts, cat, cat.model_copy(update={"guidance": 2.0})]


def test_the_count_is_what_an_empty_cache_draws(tmp_path):
    erasers = [ERASERS.get("sd")(), ERASERS.get("mock")()]
    units = plan(erasers, [TwoRequests({"images_per_concept": 2})], ModelSpec(id="tiny"),
                 {"steps": 2})
    workload = count_images(units)
    # Each unit: 4 prompts, one repeated (the same image), one again at another guidance: 5.
    assert sorted(workload.per_unit.values()) == [5, 5, 5, 5]
    assert workload.asked == 20
    # sd's images are the base model's: one set of 5 for both requests; the mock eraser's
    # two edits draw 5 each.
    assert workload.distinct == 15
    assert workload.by_setting == {("tiny", 2, None, None): 15}
    assert workload.edits == 2  # the mock eraser's, one per request; sd makes none
    # The mock task's scoring compares with the original model's images: sd's, drawn by
    # the first unit whichever eraser's it is.
    assert workload.references == 0
    first_mock = count_images(units[::-1])
    assert first_mock.distinct == 15 and first_mock.references == 0
    assert list(first_mock.references_per_unit.values()) == [5, 0, 0, 0]

    runner = Runner(tmp_path / "results", tmp_path / "cache", progress=False)
    assert len(runner.run(units).done) == 4
    assert len(list((tmp_path / "cache" / "images").rglob("*.png"))) == workload.distinct
    # sd's empty edits are cached too, but cost nothing to make
    assert len(list((tmp_path / "cache" / "edits").glob("mock-*"))) == workload.edits


def test_the_count_holds_the_original_models_images_the_scoring_compares_with(tmp_path):
    # No sd among the erasers: the mock task's scoring draws the original model's images of
    # 5 distinct prompts itself, once for both requests (they prompt alike).
    units = plan([ERASERS.get("mock")()], [TwoRequests({"images_per_concept": 2})],
                 ModelSpec(id="tiny"), {"steps": 2})
    workload = count_images(units)
    assert workload.asked == 10 and workload.distinct == 15
    assert list(workload.references_per_unit.values()) == [5, 0] and workload.references == 5
    assert workload.by_setting == {("tiny", 2, None, None): 15}
    Runner(tmp_path / "results", tmp_path / "cache", progress=False).run(units)
    assert len(list((tmp_path / "cache" / "images").rglob("*.png"))) == workload.distinct
