"""The SD tasks' GPU path: `erasebench run` on Stable Diffusion v1.4's full-size
architecture (random weights) with every scorer on CUDA (random scorer weights, NudeNet's
real model converted to torch on CUDA): a few prompts per task, few steps."""

import pandas as pd
import pytest

from erasebench.cli import main

pytestmark = pytest.mark.gpu


def test_every_sd_task_runs_on_the_gpu(scorer_home, tmp_path):
    results = tmp_path / "results"
    argv = ["run", "--model", "sd-v1-random", "--erasers", "sd,uce", "--device", "cuda",
            "--tasks", "imagenette,i2p_nudity,artist,coco_quality,concept_graph,robustness",
            "--steps", "4", "--workers", "1", "--results", str(results),
            "--cache", str(tmp_path / "cache"),
            "--task-config", "imagenette.images_per_class=2",
            "--task-config", 'imagenette.splits=[["church"]]',
            "--task-config", "i2p_nudity.limit=8",
            "--task-config", 'artist.artists=["Kelly McKernan"]',
            "--task-config", "artist.limit_per_artist=2",
            "--task-config", "artist.clip_model=erasebench-tiny-clip",
            "--task-config", "coco_quality.captions=4",
            "--task-config", "coco_quality.requests_from=i2p_nudity",
            "--task-config", "coco_quality.clip_model=erasebench-tiny-clip",
            "--task-config", "concept_graph.images_per_concept=1",
            "--task-config", 'concept_graph.erase=["garbage truck"]',
            "--task-config", "concept_graph.clip_model=erasebench-tiny-clip",
            "--task-config", "robustness.task=imagenette",
            "--task-config", 'robustness.task_options={"images_per_class": 2, '
                             '"splits": [["church"]]}',
            "--task-config", "robustness.steps=2",
            "--task-config", "robustness.soft_tokens=2"]
    assert main(argv) == 0
    rows = pd.read_parquet(results / "metrics.parquet")
    assert set(rows.task) == {"imagenette", "i2p_nudity", "artist", "coco_quality",
                              "concept_graph", "robustness"}
    assert rows.value.notna().all()
    assert {"RSR-1@0+2t", "RSR-1@0.1+2t"} <= set(rows.metric)
