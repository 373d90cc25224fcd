import re
import shutil
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from cli_processes import exit_code, start_cli
from filelock import FileLock

from erasebench.cache import claim_file
from erasebench.cli import main
from erasebench.faults import OUT_OF_MEMORY_VARIABLE
from erasebench.hardware import describe_device
from erasebench.help_records import help_records
from erasebench.registry import ERASERS, TASKS
from erasebench.results import load_results
from erasebench.runner import Runner, plan
from erasebench.specs import ModelSpec

STABLE = ["eraser", "config_hash", "request", "task", "task_version", "metric", "split", "seed",
          "value", "higher_is_better", "model", "run_id"]


def _units(images_per_concept=2):
    erasers = [ERASERS.get("sd")(), ERASERS.get("mock")()]
    tasks = [TASKS.get("mock")({"images_per_concept": images_per_concept})]
    return plan(erasers, tasks, ModelSpec(id="tiny"), {"steps": 3})


def test_run_writes_rows_and_the_mock_eraser_moves_only_what_it_should(tmp_path):
    summary = Runner(tmp_path / "results", tmp_path / "cache", progress=False).run(_units())
    assert len(summary.done) == 2
    frame = load_results(tmp_path / "results").set_index(["eraser", "metric"])["value"]
    assert frame["sd", "change_erase"] == 0 and frame["sd", "change_preserve"] == 0
    assert frame["mock", "change_erase"] > 0


def test_same_spec_same_rows_and_a_second_run_skips_everything(tmp_path):
    first = Runner(tmp_path / "a", tmp_path / "cache_a", progress=False)
    first.run(_units())
    again = Runner(tmp_path / "a", tmp_path / "cache_a", progress=False).run(_units())
    assert again.done == [] and len(again.skipped) == 2
    Runner(tmp_path / "b", tmp_path / "cache_b", progress=False).run(_units())
    pd.testing.assert_frame_equal(load_results(tmp_path / "a")[STABLE],
                                  load_results(tmp_path / "b")[STABLE])


def test_edits_are_cached_and_reused(tmp_path):
    runner = Runner(tmp_path / "results", tmp_path / "cache", progress=False)
    runner.run(_units())
    edits = list((tmp_path / "cache" / "edits").glob("mock-*.safetensors"))
    assert len(edits) == 1
    mtime = edits[0].stat().st_mtime_ns
    runner2 = Runner(tmp_path / "other", tmp_path / "cache", progress=False)
    runner2.run(_units())
    assert edits[0].stat().st_mtime_ns == mtime  # read, not recomputed


def test_records_say_how_long_each_step_took_and_whether_the_edit_was_made_there(tmp_path):
    # The mock task under two option sets: the second unit of each eraser reads the edit
    # the first made, and draws only the images the first did not (one per concept).
    erasers = [ERASERS.get("sd")(), ERASERS.get("mock")()]
    runner = Runner(tmp_path / "results", tmp_path / "cache", progress=False)
    timings = {}
    for images_per_concept in (2, 3):
        task = TASKS.get("mock")({"images_per_concept": images_per_concept})
        for unit in plan(erasers, [task], ModelSpec(id="tiny"), {"steps": 3}):
            assert runner.run_unit(unit) == "done"
            record = runner.store.record(unit.run_id)
            timings[unit.eraser.name, images_per_concept] = record.provenance.timings
    first, second = timings["mock", 2], timings["mock", 3]
    assert first.erasure_trained and not second.erasure_trained
    # The original model is no erasure: none made (erasebench timings counted one per
    # unit), and no empty edit file kept for it.
    assert not timings["sd", 2].erasure_trained and not timings["sd", 3].erasure_trained
    assert [path.name.split("-")[0] for path in (tmp_path / "cache" / "edits").iterdir()
            if path.suffix == ".safetensors"] == ["mock"]
    # the erasure's time is its training's and the edit file's writing
    assert first.training == second.training and 0 < first.training < first.erasure
    assert first.training_device == describe_device("cpu")
    # The mock task scores against the original model's images: the sd units drew them.
    assert [timings["sd", n].images_drawn for n in (2, 3)] == [4, 2]
    assert [timings["mock", n].images_drawn for n in (2, 3)] == [4, 2]
    assert all(t.images > 0 and t.scoring > 0 for t in timings.values())
    assert [t.scoring_drawn for t in timings.values()] == [0, 0, 0, 0]
    # With a fresh cache and no sd unit before it, the mock unit's scoring draws the
    # original model's images itself: counted apart from the unit's own.
    runner = Runner(tmp_path / "fresh", tmp_path / "fresh cache", progress=False)
    unit = plan([erasers[1]], [TASKS.get("mock")({"images_per_concept": 2})],
                ModelSpec(id="tiny"), {"steps": 3})[0]
    assert runner.run_unit(unit) == "done"
    fresh = runner.store.record(unit.run_id).provenance.timings
    assert (fresh.images_drawn, fresh.scoring_drawn) == (4, 4)


def test_records_name_the_code_their_process_started_with(tmp_path, monkeypatch):
    from erasebench import code_version as code
    from erasebench.code_version import CodeVersion

    code.code_version.cache_clear()
    try:
        started_with = CodeVersion("started-with", "9f8e7d6c" * 2)
        monkeypatch.setattr(code, "read_code_version", lambda folders: started_with)
        runner = Runner(tmp_path / "results", tmp_path / "cache", progress=False)
        monkeypatch.setattr(code, "read_code_version",
                            lambda folders: CodeVersion("committed-meanwhile"))
        runner.run(_units())
        assert {(r.provenance.git_sha, r.provenance.code_changes)
                for r in runner.store.records()} == {("started-with", "9f8e7d6c" * 2)}
    finally:  # the next test reads the real code again
        code.code_version.cache_clear()


def test_a_unit_whose_erasure_another_process_is_making_waits_for_it_and_reads_it(tmp_path):
    unit = next(unit for unit in _units() if unit.eraser.name == "mock")
    maker = Runner(tmp_path / "made", tmp_path / "maker_cache", progress=False)
    maker.run([unit])
    made = maker.edit_path(unit, maker.model(unit.spec.model))
    runner = Runner(tmp_path / "results", tmp_path / "cache", progress=False)
    path = runner.edit_path(unit, runner.model(unit.spec.model))
    # Another process has claimed the erasure and saves it half a second from now.
    making = claim_file(path.with_suffix(".claim"))

    def finish_making():
        time.sleep(0.5)
        shutil.copy(made, path)
        making.release()

    threading.Thread(target=finish_making).start()
    assert runner.run_unit(unit) == "done"
    timings = runner.store.record(unit.run_id).provenance.timings
    assert timings.erasure_trained is False and timings.erasure >= 0.4  # waited, then read


def test_a_process_with_no_unit_left_draws_the_images_of_one_another_process_runs(
        tmp_path):
    # Another process holds the mock unit's lock (it is running it): this runner, with no
    # unit of its own left, makes the erasure (not claimed yet) and draws all the unit's
    # images, then the original model's its scoring compares with; the unit's process then
    # only reads them and writes the rows a lone run does.
    units = _units(images_per_concept=3)
    unit = next(unit for unit in units if unit.eraser.name == "mock")
    lone = Runner(tmp_path / "lone", tmp_path / "lone_cache", progress=False)
    lone.run([unit])
    results, cache = tmp_path / "results", tmp_path / "cache"
    lock = FileLock(str(results / ".locks" / f"{unit.run_id}.lock"))
    (results / ".locks").mkdir(parents=True)
    helped_lines = []
    with lock:
        helper = Runner(results, cache, progress=False,
                        on_help=lambda unit, work: helped_lines.append((unit.run_id, work)))
        summary = helper.run([unit])
    assert summary.busy == [unit.run_id] and summary.helped == {unit.run_id: 12}
    [(run_id, work)] = helped_lines
    assert (run_id, work.images) == (unit.run_id, 12)  # 2 concepts x 3 images, edited and not
    # The helper's work, which the unit's record will not hold, is in its help record.
    # The original model's images, which the unit's scoring compares with, apart from its
    # own: erasebench timings counts them as the scoring's drawing.
    [helping] = help_records(results)
    assert (helping.run_id, helping.eraser, helping.device, helping.images_drawn,
            helping.references_drawn) == (unit.run_id, "mock", describe_device("cpu"), 6, 6)
    assert helping.erasure_made and helping.erasure > 0
    assert helping.drawing > 0 and helping.referencing > 0
    assert work == helping  # the line said of the help is what its record keeps
    owner = Runner(results, cache, progress=False)
    assert owner.run_unit(unit) == "done"
    timings = owner.store.record(unit.run_id).provenance.timings
    assert timings.images_drawn == timings.scoring_drawn == 0
    assert timings.erasure_trained is False
    assert timings.images_awaited == 0.0  # all drawn before it came: no waiting recorded
    pd.testing.assert_frame_equal(load_results(tmp_path / "lone")[STABLE],
                                  load_results(results)[STABLE])
    # A recorded unit is not helped, and a runner told not to help does not.
    assert helper.help([unit]) == {}
    other = next(u for u in _units(images_per_concept=4) if u.eraser.name == "mock")
    with FileLock(str(results / ".locks" / f"{other.run_id}.lock")):
        quiet = Runner(results, cache, progress=False, help_others=False)
        assert quiet.run([other]).helped == {}
    assert len(help_records(results)) == 1
    assert not list((cache / "edits").glob("*.claim"))


def test_the_original_models_images_are_drawn_once_for_all_units_that_ask_for_them(
        tmp_path, monkeypatch):
    # Two units of sd whose prompts and seeds overlap (one task under two option sets, as two
    # tasks sharing prompts would be): the second draws only the images the first did not.
    from erasebench.generate import Generator

    drawn: list[list[tuple[str, int]]] = []
    original = Generator.sample

    def counting(self, prompts, conditioning=None):
        drawn[-1].extend((p.text, p.seed) for p in prompts)
        return original(self, prompts, conditioning)

    monkeypatch.setattr(Generator, "sample", counting)
    runner = Runner(tmp_path / "results", tmp_path / "cache", progress=False)
    for images_per_concept in (2, 3):
        drawn.append([])
        task = TASKS.get("mock")({"images_per_concept": images_per_concept})
        summary = runner.run(plan([ERASERS.get("sd")()], [task], ModelSpec(id="tiny"),
                                  {"steps": 3}))
        assert len(summary.done) == 1
    first, second = drawn
    assert sorted(first) == [(f"a photo of a {c}", s) for c in ("cat", "dog") for s in (0, 1)]
    assert sorted(second) == [("a photo of a cat", 2), ("a photo of a dog", 2)]


def _cli_args(results, cache, workers=1, erasers="sd,mock", batch_size=2):
    return ["run", "--model", "tiny", "--erasers", erasers, "--tasks", "mock", "--steps", "10",
            "--batch-size", str(batch_size), "--task-config", "images_per_concept=24",
            "--results", str(results), "--cache", str(cache), "--workers", str(workers)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The rows of ``_cli_args``'s run in one process, never interrupted."""
    root = tmp_path_factory.mktemp("uninterrupted")
    assert main(_cli_args(root / "results", root / "cache")) == 0
    return load_results(root / "results")[STABLE]


def _wait_for_a_record(results, process, log):
    deadline = time.time() + 120
    while time.time() < deadline and not list((results / "runs").glob("*.json")):
        assert process.is_alive(), log.read_text()[-3000:]
        time.sleep(0.05)


def test_two_local_workers_share_the_units_and_give_the_same_rows(tmp_path, uninterrupted):
    log = tmp_path / "two.log"
    # Batches of one image, which change no image, so that the first unit takes longer:
    # the run, forked warm from the test's server, starts it at once, while its helper, a
    # fresh interpreter, imports and loads the model before it claims a unit; at batches
    # of 2 (about 9 s a unit) the run could end its first unit and claim the second
    # before, on a loaded machine (seen twice in a session), leaving the helper none.
    two = start_cli(_cli_args(tmp_path / "results", tmp_path / "cache", workers=2,
                              batch_size=1), log)
    code = exit_code(two)
    out = " ".join(log.read_text().split())
    assert code == 0, out[-3000:]
    assert "2 processes" in out
    done_here = int(re.search(r"done (\d+) here", out).group(1))
    assert done_here < 2, "the helper did part of the work"  # 2 units in all
    assert "helper 1 [done]" in out
    pd.testing.assert_frame_equal(uninterrupted, load_results(tmp_path / "results")[STABLE])


def test_a_unit_out_of_memory_on_a_helper_is_tried_here_then_named_and_the_others_go_on(
        tmp_path, monkeypatch):
    # Every erasure runs out of memory as it ends (mock's, on whichever process takes its
    # unit), as on GPUs too small for it: the main process tries what its helper left, then
    # names it; sd's unit, which makes no erasure, is recorded.
    monkeypatch.setenv(OUT_OF_MEMORY_VARIABLE, "erase.done")
    results, log = tmp_path / "results", tmp_path / "two.log"
    two = start_cli(_cli_args(results, tmp_path / "cache", workers=2), log)
    code = exit_code(two)
    out = log.read_text()
    assert code == 1, out[-3000:]
    assert "2 processes" in out
    assert out.count("[out of memory] mock x mock [") >= 1
    assert out.strip().splitlines()[-1].startswith(
        "error: 1 of the 2 units to do ran out of memory and is left undone: mock x mock [")
    assert [record["eraser"] for record in load_results(results)[["eraser"]].drop_duplicates()
            .to_dict("records")] == ["sd"]


@pytest.mark.parametrize("delay", [0.5, 1.0])
def test_a_run_killed_with_sigkill_resumes_to_exactly_the_uninterrupted_rows(
        tmp_path, delay, uninterrupted):
    # Kill as soon as the first unit is recorded, plus a little: mid-way through the second.
    results, cache, log = tmp_path / "results", tmp_path / "cache", tmp_path / "victim.log"
    victim = start_cli(_cli_args(results, cache), log)
    _wait_for_a_record(results, victim, log)
    time.sleep(delay)
    victim.kill()
    victim.join()
    # The kill really fell mid-run: one unit recorded, the other's images half made.
    runs = results / "runs"
    assert len(list(runs.glob("*.json"))) == 1
    made = len(list((cache / "images").rglob("*.png")))
    assert 48 <= made < 96  # sd's 48 images, then part of the edited model's 48
    assert main(_cli_args(results, cache)) == 0
    got = load_results(results)[STABLE]
    pd.testing.assert_frame_equal(uninterrupted, got)
    assert not got.duplicated(["run_id", "metric", "split", "seed"]).any()
    leftovers = [p for p in runs.iterdir() if not p.name.endswith(".json")]
    assert not leftovers, leftovers


def test_a_run_sent_sigterm_stops_in_one_line_with_its_helpers_and_resumes(tmp_path, capsys):
    # SIGTERM: what Slurm sends at a time limit, and kill by default.
    # Three units on two processes: when the first is recorded, the third has just begun.
    # (With two, the other process could end the second as the signal was sent, leaving
    # nothing to stop: it did so in 1 of 7 full runs.)
    results, cache, log = tmp_path / "results", tmp_path / "cache", tmp_path / "stopped.log"
    three_units = _cli_args(results, cache, workers=2, erasers="sd,mock,uce")
    stopped = start_cli(three_units, log)
    _wait_for_a_record(results, stopped, log)
    stopped.terminate()
    code = exit_code(stopped, timeout=60)
    said = log.read_text()
    assert code == 128 + signal.SIGTERM, said[-3000:]
    # One line, from the main process (its helper writes to the same log); no traceback;
    # its helper ended with it.
    assert said.count("stopped (SIGTERM)") == 1 and "Traceback" not in said, said[-3000:]
    assert "stopped (SIGTERM): what was recorded is kept; the same command resumes" in said
    assert not [line for line in _command_lines() if str(results) in line]
    recorded = len(list((results / "runs").glob("*.json")))
    assert 1 <= recorded <= 2
    assert not [path for path in (results / "runs").iterdir() if path.suffix != ".json"]
    capsys.readouterr()
    assert main(three_units) == 0
    assert f"{recorded} already done" in " ".join(capsys.readouterr().out.split())
    assert set(load_results(results).eraser) == {"sd", "mock", "uce"}


def _command_lines():
    """The command lines of this machine's processes (Linux's /proc)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            found.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:  # ended meanwhile
            continue
    return found


def test_provenance_counts_the_images_each_row_rests_on(tmp_path):
    from erasebench.provenance import load_provenance, provenance_table
    from erasebench.results import ResultStore

    Runner(tmp_path / "results", tmp_path / "cache", progress=False).run(_units(3))
    table = load_provenance(tmp_path / "results").set_index("eraser")
    records = {r.spec.eraser.name: r for r in ResultStore(tmp_path / "results").records()}
    for eraser in ("sd", "mock"):
        assert table.loc[eraser, "images"] == records[eraser].image_count > 0
        assert table.loc[eraser, "requests"] == 1
        assert table.loc[eraser, "config_hash"] == records[eraser].spec.eraser.spec_hash()
    text = provenance_table(table.reset_index())
    assert f"| sd | `{table.loc['sd', 'config_hash'][:12]}` |" in text
