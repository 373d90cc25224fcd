"""The line ``erasebench run`` prints as a unit ends."""

from __future__ import annotations

import io
from types import SimpleNamespace

from rich.console import Console

from erasebench.help_records import HelpRecord
from erasebench.results import UnitTimings
from erasebench.run_console import RunConsole


def _console(records: dict, times: list[float], tmp_path) -> tuple[RunConsole, io.StringIO]:
    out = io.StringIO()
    clock = iter(times)
    lines = RunConsole(Console(file=out, width=200), Console(file=io.StringIO()), records.get,
                       tmp_path / "images", progress=None, clock=lambda: next(clock))
    return lines, out


def _unit(run_id: str) -> SimpleNamespace:
    return SimpleNamespace(run_id=run_id, describe=lambda: f"sd x mock [{run_id}]")


def _record(**timings) -> SimpleNamespace:
    return SimpleNamespace(provenance=SimpleNamespace(timings=UnitTimings(
        erasure=2.0, erasure_trained=False, images=10.25, scoring=0.5, **timings)))


def test_a_finished_unit_is_told_with_the_seconds_its_record_has(tmp_path):
    # On Ray the driver tells of every actor's units: two ending together are 0.0 s apart,
    # but each took what its record says.
    untimed = SimpleNamespace(provenance=SimpleNamespace(timings=None))
    lines, out = _console({"a": _record(images_drawn=0), "b": untimed},
                          [100.0, 112.0, 112.0, 115.0], tmp_path)
    lines.unit_ended(_unit("a"), "done")  # 12 s after the start; its record: 12.75
    lines.unit_ended(_unit("a"), "done")  # 0 s after the line before
    lines.unit_ended(_unit("b"), "done")  # no timings in its record: the 3 s since
    assert out.getvalue().splitlines() == [
        "  [done] sd x mock [a]  (a, 12.8 s)", "  [done] sd x mock [a]  (a, 12.8 s)",
        "  [done] sd x mock [b]  (b, 3.0 s)"]


def test_a_unit_that_drew_its_images_is_told_with_their_pace_and_batch(tmp_path):
    # On a GPU a run's hours follow the pace, and the batch out of memory may have halved:
    # seen as each unit ends, not only in `erasebench timings` afterwards. The pace leaves
    # out the 0.25 s spent waiting for images other processes drew.
    lines, out = _console({"a": _record(images_drawn=41, images_awaited=0.25, batch=8),
                           "b": _record(images_drawn=41)}, [100.0, 112.0, 124.0], tmp_path)
    lines.unit_ended(_unit("a"), "done")
    lines.unit_ended(_unit("b"), "done")  # a record before the batch was kept
    assert out.getvalue().splitlines() == [
        "  [done] sd x mock [a]  (a, 12.8 s: drew 41 images at 4.1 images/s, batch 8)",
        "  [done] sd x mock [b]  (b, 12.8 s: drew 41 images at 4 images/s)"]


def test_a_unit_whose_task_attacked_the_model_is_told_with_the_attacks_seconds(tmp_path):
    # A robustness unit's time is mostly its recovery attack, no scorer's: said as it ends,
    # whether its images were drawn or read from the cache.
    lines, out = _console({"a": _record(images_drawn=41, batch=8, attacking=0.375),
                           "b": _record(images_drawn=0, attacking=0.25),
                           "c": _record(images_drawn=0, attacking=0.0)},
                          [100.0, 112.0, 124.0, 136.0], tmp_path)
    for unit in "abc":
        lines.unit_ended(_unit(unit), "done")
    assert out.getvalue().splitlines() == [
        "  [done] sd x mock [a]  (a, 12.8 s: drew 41 images at 4 images/s, batch 8; 0.4 s "
        "attacking the model)",
        "  [done] sd x mock [b]  (b, 12.8 s; 0.2 s attacking the model)",
        "  [done] sd x mock [c]  (c, 12.8 s)"]


def test_a_unit_helped_is_told_with_the_helpers_seconds_and_pace(tmp_path):
    # On Ray the driver hears of an actor's help only as the actor ends it, for every unit
    # it helped at once: the line has the seconds the help took, not those since the line
    # before (0.5 s here), and the pace of the drawing.
    def work(**fields) -> HelpRecord:
        return HelpRecord(run_id="a", eraser="sd", task="mock", model="tiny", device="cpu",
                          **fields)

    lines, out = _console({}, [100.0, 100.5, 101.0, 101.5, 102.0], tmp_path)
    lines.unit_helped(_unit("a"), work(images_drawn=30, drawing=2.5, references_drawn=10,
                                       referencing=1.5, erasure=6.0, erasure_made=True))
    lines.unit_helped(_unit("b"), work(images_drawn=40, drawing=4.0))
    lines.unit_helped(_unit("c"), work(images_drawn=0, drawing=0.0, erasure=3.0,
                                       erasure_made=True))
    lines.unit_helped(_unit("d"), work(images_drawn=0, drawing=0.25))  # all drawn by others
    assert out.getvalue().splitlines() == [
        "  [helped] sd x mock [a]  (a, 10.0 s): made its erasure in 6.0 s, drew 40 images "
        "for it at 10 images/s",
        "  [helped] sd x mock [b]  (b, 4.0 s): drew 40 images for it at 10 images/s",
        "  [helped] sd x mock [c]  (c, 3.0 s): made its erasure in 3.0 s"]


def test_a_unit_recorded_before_the_run_is_not_told_one_recorded_since_is(tmp_path):
    # A rerun of 99 recorded units printed 99 "[skipped] … (0.0 s)" lines (the seconds
    # since the line before); the start line counts them instead.
    lines, out = _console({}, [100.0, 100.5, 101.0, 101.5], tmp_path)
    lines.recorded_before = frozenset({"a"})
    lines.unit_ended(_unit("a"), "skipped")
    lines.unit_ended(_unit("b"), "skipped")  # another `erasebench run` recorded it meanwhile
    assert out.getvalue().splitlines() == [
        "  [skipped] sd x mock [b]  (b): recorded by another run since this one started"]


def test_the_start_prices_a_checkpoint_per_process_of_the_run(tmp_path, monkeypatch):
    # The caches are looked in by one process (or a Ray actor) that knows nothing of the
    # others: the run's line prices a training checkpoint for each of its processes.
    from erasebench import cache_space as space_module
    from erasebench.cached_work import CachedWork

    monkeypatch.setattr(space_module, "free_bytes", lambda path: 20_000)
    progress = SimpleNamespace(count_cached=lambda cached: None, start_line=lambda: "",
                               images_to_draw=0)
    space = space_module.cache_space(tmp_path, {}, edit_bytes=[1_000, 1_000],
                                     checkpoint_bytes=[6_000, 5_000])
    assert not space.short_of_room()  # as looked: 1,000 x 2 + 6,000 x 2 in 20,000 bytes
    for processes, warned in ((1, False), (2, True)):  # 2,000 + 22,000 do not fit
        errors = io.StringIO()
        lines = RunConsole(Console(file=io.StringIO(), width=200),
                           Console(file=errors, width=400), {}.get, tmp_path, progress,
                           processes=processes)
        lines.start_from_caches(CachedWork(), space)
        assert ("their trainings' checkpoints up to 22.0 kB while they are made"
                in errors.getvalue()) == warned, errors.getvalue()


def test_the_start_names_the_checkpoints_no_erasure_of_the_run_resumes_from(tmp_path):
    from erasebench.cache_space import CacheSpace
    from erasebench.cached_work import CachedWork

    progress = SimpleNamespace(count_cached=lambda cached: None, start_line=lambda: "",
                               images_to_draw=0)
    out = io.StringIO()
    lines = RunConsole(Console(file=out, width=400), Console(file=io.StringIO()), {}.get,
                       tmp_path, progress)
    lines.start_from_caches(CachedWork(), CacheSpace({}, free=10**9))
    assert "training checkpoints" not in out.getvalue()
    stray = CachedWork(checkpoints_elsewhere={tmp_path / "training" / "a.safetensors": 2_000})
    lines.start_from_caches(stray, CacheSpace({}, free=10**9))
    assert (f"  training checkpoints: 1 file, 2.0 kB, in {tmp_path / 'training'} that no "
            "erasure of these units resumes from") in out.getvalue()
