"""Fault injection: processes killed at random checkpoints, damaged files, failing writes.

Every killed run, started again, must end with exactly the rows of a run that was never
interrupted — nothing lost, nothing doubled, nothing damaged read as valid.
"""

import errno
import os
import random

import pandas as pd
import pytest
from cli_processes import exit_code, start_cli

from erasebench.cli import main
from erasebench.faults import CHECKPOINTS, ENVIRONMENT_VARIABLE
from erasebench.io import atomic_write_bytes
from erasebench.results import load_results

STABLE = ["eraser", "config_hash", "request", "task", "task_version", "metric", "split", "seed",
          "value", "higher_is_better", "model", "run_id"]
# How often a run of RUN_ARGS passes each checkpoint (counted once by hand; the test
# fails loudly if a kill point is never reached, so a change here cannot go unnoticed).
# "train.step" and "attack.kept" are not among them: the mock eraser trains nothing and
# the mock task attacks nothing (tests/integration/test_training_resume.py kills a run at
# the first, a robustness unit at the second).
PASSES = {"erase.done": 1, "generate.batch": 6, "cache.png_written": 12, "score.done": 2,
          "io.before_rename": 34}
KILLS = 20


def _args(root):
    return ["run", "--model", "tiny", "--erasers", "sd,mock", "--tasks", "mock",
            "--task-config", "images_per_concept=3", "--steps", "3", "--batch-size", "2",
            "--results", str(root / "results"), "--cache", str(root / "cache"),
            "--workers", "1"]  # the pass counts below are one process's


def _kill_points(seed=2026):
    """KILLS distinct random (checkpoint, n-th pass) points, every checkpoint at least once."""
    rng = random.Random(seed)
    assert set(CHECKPOINTS) == {*PASSES, "train.step", "attack.kept"}, (
        "a new checkpoint needs its passes")
    points = [(name, rng.randint(1, PASSES[name])) for name in PASSES]
    while len(points) < KILLS:
        name = rng.choice(list(PASSES))
        point = (name, rng.randint(1, PASSES[name]))
        if point not in points:
            points.append(point)
    return points


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    assert main(_args(root)) == 0
    return load_results(root / "results")[STABLE]


@pytest.mark.parametrize("checkpoint, nth", _kill_points(), ids=lambda v: str(v))
def test_sigkill_at_a_checkpoint_then_resume_gives_the_uninterrupted_rows(
        checkpoint, nth, reference, tmp_path):
    env = {**os.environ, ENVIRONMENT_VARIABLE: f"{checkpoint}:{nth}"}
    log = tmp_path / "killed.log"
    killed = start_cli(_args(tmp_path), log, env)
    assert exit_code(killed) == -9, f"never reached {checkpoint}:{nth}\n{log.read_text()[-2000:]}"
    assert main(_args(tmp_path)) == 0
    rows = load_results(tmp_path / "results")[STABLE]
    pd.testing.assert_frame_equal(rows, reference)
    assert not rows.duplicated(["run_id", "metric", "split", "seed"]).any()


def test_a_failing_write_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    target = tmp_path / "record.json"
    atomic_write_bytes(target, b"old and complete")

    def disk_full(tmp):
        tmp.write_bytes(b"half of the ne")
        raise OSError(errno.ENOSPC, "No space left on device")

    from erasebench.io import atomic_write

    with pytest.raises(OSError, match="No space"):
        atomic_write(target, disk_full)
    assert target.read_bytes() == b"old and complete"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]  # no temp file left


def test_a_run_whose_result_write_fails_can_be_resumed(tmp_path, monkeypatch, reference,
                                                       capsys):
    from erasebench import results

    real_write = results.atomic_write_json
    calls = []

    def fail_second(path, value):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, value)

    monkeypatch.setattr(results, "atomic_write_json", fail_second)
    assert main(_args(tmp_path)) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "run the same command again" in err
    assert "Traceback" not in err
    monkeypatch.setattr(results, "atomic_write_json", real_write)
    assert len(load_results(tmp_path / "results").run_id.unique()) == 1
    assert main(_args(tmp_path)) == 0
    pd.testing.assert_frame_equal(load_results(tmp_path / "results")[STABLE], reference)


def test_two_runs_on_one_results_folder_at_once(tmp_path, reference):
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    runs = [start_cli(_args(tmp_path), log) for log in logs]
    assert [exit_code(run) for run in runs] == [0, 0], [log.read_text() for log in logs]
    pd.testing.assert_frame_equal(load_results(tmp_path / "results")[STABLE], reference)


def test_a_damaged_samples_file_is_named_by_the_report_and_its_unit_redone(tmp_path, capsys):
    # The per-image values beside a record (for the bootstrap intervals) had no check: a
    # truncated file ended `report` in pyarrow's traceback, and a run never redid its unit.
    results = tmp_path / "results"
    args = ["run", "--erasers", "sd", "--tasks", "shapes_objects", "--task-config",
            "images_per_class=2", "--results", str(results), "--cache", str(tmp_path / "cache"),
            "--workers", "1", "--no-report"]
    assert main(args) == 0
    first = load_results(results)[STABLE]
    damaged = sorted((results / "samples").glob("*.parquet"))[0]
    intact = pd.read_parquet(damaged)
    board = tmp_path / "board.md"

    def report():
        capsys.readouterr()
        code = main(["report", "--results", str(results), "--out", str(board)])
        return code, capsys.readouterr().err

    other_values = intact.assign(value=intact["value"] + 1.0)  # a whole file, other values
    for damage in (lambda: damaged.write_bytes(damaged.read_bytes()[:100]),
                   lambda: other_values.to_parquet(damaged, index=False)):
        damage()
        code, err = report()
        assert code == 2 and f"samples file {str(damaged)!r}" in " ".join(err.split())
        assert "Traceback" not in err and not board.exists()
        assert main(args) == 0  # redoes that unit alone, from the caches
        assert "done 1 here" in " ".join(capsys.readouterr().out.split())
        pd.testing.assert_frame_equal(pd.read_parquet(damaged), intact)
        pd.testing.assert_frame_equal(load_results(results)[STABLE], first)
        assert report()[0] == 0
        board.unlink()
