"""What of a plan the caches already hold, and the time left once that is counted."""

import pytest

from erasebench.cached_work import cached_work
from erasebench.registry import ERASERS, TASKS
from erasebench.run_progress import RunProgress
from erasebench.runner import Runner, plan
from erasebench.specs import ModelSpec
from erasebench.testing import MockTask
from erasebench.workload import count_images, erasure_of


def test_an_erasure_in_the_edit_cache_counts_as_made_and_its_images_as_drawn(tmp_path):
    erasers = [ERASERS.get("mock")(), ERASERS.get("uce")(preset="tiny")]
    mock_unit, uce_unit = units = plan(erasers, [MockTask()], ModelSpec(id="tiny"), {"steps": 2})
    runner = Runner(tmp_path / "results", tmp_path / "cache", progress=False)
    nothing = cached_work(units, runner)
    assert (nothing.erasures_held, nothing.images_held) == (set(), 0)
    assert nothing.to_draw == {mock_unit.run_id: 8, uce_unit.run_id: 8}
    # The original model's 8 that the task's scoring compares with: the first unit draws them.
    assert nothing.references_to_draw == {mock_unit.run_id: 8, uce_unit.run_id: 0}
    assert nothing.images == 24
    assert len(runner.run(units).done) == 2
    # uce's unit to do again, as in another results folder sharing the cache: its erasure
    # is in the edit cache, its images in the image cache.
    (tmp_path / "results" / "runs" / f"{uce_unit.run_id}.json").unlink()
    assert cached_work(units, runner).erasures_held == {erasure_of(mock_unit),
                                                         erasure_of(uce_unit)}
    held = cached_work([uce_unit], runner)
    assert (held.images, held.images_held, held.to_draw) == (16, 16, {uce_unit.run_id: 0})
    assert held.references_to_draw == {uce_unit.run_id: 0}
    assert held.erasures == held.erasures_held == {erasure_of(uce_unit)}

    timings = runner.store.record(mock_unit.run_id).provenance.timings
    assert timings.erasure_trained and timings.images_drawn == 8
    priced = RunProgress.of_records(units, runner.store.record, processes=1)
    counted = RunProgress.of_records(units, runner.store.record, processes=1, cached=held)
    # Not looked in the caches: uce's 8 images drawn and scored at the mock unit's pace,
    # its erasure at the mock eraser's time (the only one timed). Looked: the erasure is
    # made and the images are read (no unit has only read yet: at no cost), then scored.
    # The scoring's pace leaves out the original model's images the mock unit's scoring
    # drew, at its drawing pace (here nearly all of its scoring): uce's unit finds them drawn.
    scoring = max(0.0, timings.scoring
                  - timings.scoring_drawn * timings.images / timings.images_drawn)
    assert timings.scoring_drawn == 8
    assert priced.seconds_left_by_timings() == pytest.approx(
        timings.images + scoring + timings.erasure)
    assert counted.seconds_left_by_timings() == pytest.approx(scoring)


def test_an_image_is_drawn_by_the_first_unit_that_asks_for_it(tmp_path):
    # sd's units of the mock task with 2 and 3 images per concept: the second asks for the
    # first's 4 images and 2 more.
    tasks = [TASKS.get("mock")({"images_per_concept": n}) for n in (2, 3)]
    two, three = units = plan([ERASERS.get("sd")()], tasks, ModelSpec(id="tiny"), {"steps": 2})
    workload = count_images(units)
    assert (workload.per_unit[three.run_id], workload.new_per_unit[three.run_id]) == (6, 2)
    runner = Runner(tmp_path / "results", tmp_path / "cache", progress=False)
    assert cached_work(units, runner).to_draw == {two.run_id: 4, three.run_id: 2}
    Runner(tmp_path / "other", tmp_path / "cache", progress=False).run([two])
    assert cached_work(units, runner).to_draw == {two.run_id: 0, three.run_id: 2}
    assert cached_work([three], runner).to_draw == {three.run_id: 2}


def test_checkpoints_no_erasure_of_the_plan_resumes_from_are_counted_apart(tmp_path):
    from erasebench.training_checkpoints import CheckpointPlace

    (unit,) = plan([ERASERS.get("esd_x")(preset="tiny")], [MockTask()], ModelSpec(id="tiny"),
                   {"steps": 2})
    runner = Runner(tmp_path / "results", tmp_path / "cache", progress=False)
    assert cached_work([unit], runner).elsewhere_line() is None  # no training folder yet
    own = CheckpointPlace(runner.checkpoints_stem(unit, runner.model(unit.spec.model)))
    own.next_loop().parent.mkdir(parents=True)
    own.next_loop().write_bytes(b"x" * 1_000)  # the plan's erasure, begun
    # and the temp file of its next loop's checkpoint, as a helper writes it
    (own.stem.parent / f".{own.next_loop().name}.a8f3.tmp").write_bytes(b"x")
    assert cached_work([unit], runner).elsewhere_line() is None
    # Another configuration's, stopped; and the temp file of a write killed half-way.
    other = runner.checkpoints_dir / "esd_x-0123456789abcdef.loop-0.safetensors"
    other.write_bytes(b"x" * 2_000_000)
    half = runner.checkpoints_dir / ".esd_x-0123456789abcdef.loop-0.safetensors.k3j2.tmp"
    half.write_bytes(b"x" * 500_000)
    work = cached_work([unit], runner)
    assert work.erasures_begun == {erasure_of(unit)}
    assert work.checkpoints_elsewhere == {other: 2_000_000, half: 500_000}
    assert work.elsewhere_line() == (
        f"2 files, 2.5 MB, in {runner.checkpoints_dir} that no erasure of these units "
        "resumes from (another run's trainings, or left by settings changed since or by a "
        "process killed); remove them once no run trains from them")


def test_only_the_attacks_held_that_a_unit_would_read_count_for_it(tmp_path):
    # A unit reads an attack made for it only where the attack is made as it makes them
    # now: one of an older version of the attack, or made in another precision (bf16 on a
    # GPU, then resumed on a CPU), it makes again, so its seconds stay in the unit's price.
    import torch

    from erasebench.attack_cache import AttackCache, HeldAttacks
    from erasebench.tasks.robustness.recovery import RECOVERY_VERSION, made_as

    task = TASKS.get("robustness")({"radii": [0.1], "task_options": {
        "images_per_class": 2, "splits": [["circle"]]}})
    [unit] = plan([ERASERS.get("token_filter")()], [task], ModelSpec(id="tiny"), {"steps": 2})
    runner = Runner(tmp_path / "results", tmp_path / "cache", device="cpu", progress=False)
    now = made_as(torch.device("cpu"), unit.spec.generation.precision)
    assert task.attack_kind(unit.spec.generation, "cpu") == now == \
        f"recovery v{RECOVERY_VERSION}, fp32"
    assert task.attack_kind(unit.spec.generation, "cuda:0") == \
        f"recovery v{RECOVERY_VERSION}, bfloat16"
    assert TASKS.get("mock")({}).attack_kind(unit.spec.generation, "cpu") is None
    cache = AttackCache(runner.attacks_dir)
    for radius, (kind, seconds) in enumerate([
            (now, 3.0), (now, 4.5), (f"recovery v{RECOVERY_VERSION - 1}, fp32", 50.0),
            (f"recovery v{RECOVERY_VERSION}, bfloat16", 60.0), ("", 70.0)]):
        cache.put({"radius": radius}, {"delta": torch.zeros(2)}, unit=unit.run_id,
                  seconds=seconds, made_as=kind)
    assert cached_work([unit], runner).attacks_held == {unit.run_id: HeldAttacks(2, 7.5)}
