"""What of a plan the caches already hold, and the time left once that is counted."""

import pytest

from erasebench.cached_work import cached_work, held_erasures
from erasebench.registry import ERASERS
from erasebench.run_progress import RunProgress
from erasebench.runner import Runner, plan
from erasebench.specs import ModelSpec
from erasebench.testing import MockTask
from erasebench.workload import erasure_of


def test_an_erasure_in_the_edit_cache_counts_as_made(tmp_path):
    erasers = [ERASERS.get("mock")(), ERASERS.get("uce")(preset="tiny")]
    mock_unit, uce_unit = units = plan(erasers, [MockTask()], ModelSpec(id="tiny"), {"steps": 2})
    runner = Runner(tmp_path / "results", tmp_path / "cache", progress=False)
    assert held_erasures(units, runner) == set()
    assert len(runner.run(units).done) == 2
    # uce's unit to do again, as in another results folder sharing the cache: its erasure
    # is in the edit cache, its images in the image cache.
    (tmp_path / "results" / "runs" / f"{uce_unit.run_id}.json").unlink()
    assert held_erasures(units, runner) == {erasure_of(mock_unit), erasure_of(uce_unit)}
    held = cached_work([uce_unit], runner)
    assert (held.images, held.images_held) == (8, 8)
    assert held.erasures == held.erasures_held == {erasure_of(uce_unit)}

    timings = runner.store.record(mock_unit.run_id).provenance.timings
    assert timings.erasure_trained
    priced = RunProgress.of_records(units, runner.store.record, processes=1)
    counted = RunProgress.of_records(units, runner.store.record, processes=1,
                                     held=held_erasures([uce_unit], runner))
    # uce's 8 images at the mock unit's pace either way; its erasure, priced at the mock
    # eraser's (the only one timed) unless it is known to be in the cache.
    assert counted.seconds_left_by_timings() == pytest.approx(timings.images + timings.scoring)
    assert priced.seconds_left_by_timings() == pytest.approx(
        timings.images + timings.scoring + timings.erasure)
