"""The Stable Diffusion tasks as users run them: `erasebench weights`, then `erasebench run`
on the tiny model with every scorer reading its (random) weight files offline."""

import pandas as pd

from erasebench.cli import main


def test_weights_lists_missing_and_present_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    assert main(["weights", "--tasks", "imagenette,i2p_nudity"]) == 1
    out = capsys.readouterr().out
    assert "320n.onnx" in out and "1 file(s) missing" in out
    # Piped (not a terminal), the table folds no path, whatever its length: each is copied
    # whole onto the offline node it goes to.
    missing = tmp_path / "empty" / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth"
    assert len(str(missing)) > 80
    assert any(str(missing) in line for line in out.splitlines())


def test_weights_all_present(scorer_home, capsys):
    argv = ["weights", "--tasks", "imagenette,artist,coco_quality,concept_graph",
            "--task-config", "clip_model=erasebench-tiny-clip"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count(" yes ") == 6 and " no " not in out


def test_imagenette_and_coco_run_on_the_tiny_model(scorer_home, tmp_path, capsys):
    results = tmp_path / "results"
    argv = ["run", "--model", "tiny", "--erasers", "sd,mock", "--tasks",
            "imagenette,coco_quality", "--steps", "2", "--workers", "1",
            "--task-config", "imagenette.images_per_class=1",
            "--task-config", 'imagenette.splits=[["tench"]]',
            "--task-config", "coco_quality.captions=3",
            "--task-config", "coco_quality.clip_model=erasebench-tiny-clip",
            "--results", str(results), "--cache", str(tmp_path / "cache")]
    assert main(argv) == 0
    rows = pd.read_parquet(results / "metrics.parquet")
    assert set(rows.task) == {"imagenette", "coco_quality"}
    assert set(rows.eraser) == {"sd", "mock"}
    # coco_quality measures Imagenette's four default splits (its requests_from)
    fid = rows[(rows.task == "coco_quality") & (rows.metric == "FID")].groupby("eraser").value
    assert fid.count()["sd"] == 4 and fid.count()["mock"] == 4
    assert fid.max()["sd"] < 1e-3 < fid.min()["mock"]  # FID of SD to itself is 0
    board = (tmp_path / "leaderboard.md").read_text()
    assert "## imagenette" in board and "ESR-1" in board and "FID" in board
    # per-image values stored beside each unit's record; the leaderboard's intervals
    samples = pd.concat(pd.read_parquet(p) for p in (results / "samples").glob("*.parquet"))
    assert {"ESR-1", "PSR-5", "CLIP"} <= set(samples.metric)
    assert "Bootstrap 95% intervals over images" in board
    # thumbnails kept per unit; the leaderboard's grid of the same prompts per eraser
    assert len(list((results / "thumbnails").glob("*.png"))) == 2 + 8  # 1 + 4 units each
    assert "(results/figures/imagenette-tiny-grid.png)" in board
    assert (results / "figures" / "imagenette-tiny-grid.png").is_file()


def test_missing_scorer_weights_stop_the_run_before_anything_is_generated(tmp_path,
                                                                         monkeypatch, capsys):
    import torch

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    monkeypatch.setattr(torch.hub, "download_url_to_file",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    results = tmp_path / "results"
    argv = ["run", "--model", "tiny", "--erasers", "sd", "--tasks", "imagenette",
            "--results", str(results), "--cache", str(tmp_path / "cache"), "--workers", "1"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "resnet50-11ad3fa6.pth" in error and "classifier_weights" in error
    assert not results.exists() and not (tmp_path / "cache" / "images").exists()
