"""The Ray backend on a local 2-worker Ray cluster gives exactly the rows of the local
backend on the miniature world, and resumes like it."""

import pandas as pd
import pytest

from erasebench.cli import main

ray = pytest.importorskip("ray")

COLUMNS = ["eraser", "request", "task", "metric", "value", "run_id"]


def _run(tmp_path, name, *extra):
    results = tmp_path / name / "results"
    argv = ["run", "--erasers", "sd,uce", "--tasks", "shapes_objects",
            "--task-config", "images_per_class=3",
            "--task-config", 'splits=[["circle", "star"], ["square"]]',
            "--results", str(results), "--cache", str(tmp_path / "cache"), *extra]
    return argv, results


def test_ray_gives_the_rows_of_the_local_backend_and_resumes(tmp_path, capsys):
    # Each unit asks for 30 images (10 classes, 3 each): sd's two units the same 30, uce's
    # each its own edit's; uce makes one erasure per split.
    argv, local_results = _run(tmp_path, "local", "--workers", "1")
    assert main(argv) == 0
    held = "in the caches: {} of the 90 distinct images of the units to do, {} of their 2 " \
        "erasures; {} images to draw"
    assert held.format(0, 0, 90) in " ".join(capsys.readouterr().out.split())
    argv, ray_results = _run(tmp_path, "ray", "--backend", "ray", "--workers", "2")
    try:
        assert main(argv) == 0
        out = " ".join(capsys.readouterr().out.split())
        assert "done 4 on Ray" in out
        # An actor looked in the cache the local run filled, for the driver's time left.
        assert held.format(90, 2, 0) in out
        assert "; 4/4 units," in out  # the driver tells how far the run is, actors' units too
        assert main(argv) == 0  # everything is done: nothing runs again
        assert "done 0 on Ray, 4 already done" in " ".join(capsys.readouterr().out.split())
    finally:
        ray.shutdown()
    local = pd.read_parquet(local_results / "metrics.parquet")[COLUMNS]
    remote = pd.read_parquet(ray_results / "metrics.parquet")[COLUMNS]
    pd.testing.assert_frame_equal(local, remote)
    assert len(remote) > 0 and set(remote.eraser) == {"sd", "uce"}


def test_an_unknown_backend_lists_the_valid_ones(tmp_path, capsys):
    argv, _ = _run(tmp_path, "x", "--backend", "slurm")
    assert main(argv) == 2
    assert "valid backends: local, ray" in capsys.readouterr().err
