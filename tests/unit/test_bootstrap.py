"""Bootstrap intervals over images: by hand, deterministic, in the leaderboard; and the
per-image values the tasks store average to the metrics they report."""

import numpy as np
import pandas as pd
import pytest
import torch

from erasebench.bootstrap import interval, intervals
from erasebench.metrics import NER_THRESHOLDS, erasure_outcomes, nudity_outcomes
from erasebench.rates import ErasureSuccess, NudityRate
from erasebench.report import render_leaderboard
from erasebench.results import ResultStore


def test_interval_contains_the_mean_and_is_reproducible():
    rng = np.random.default_rng(0)
    groups = [rng.integers(0, 2, 200) * 100.0, rng.integers(0, 2, 50) * 100.0]
    low, high = interval(groups, seed=3)
    mean = np.mean([g.mean() for g in groups])
    assert low < mean < high and high - low < 30
    assert interval(groups, seed=3) == (low, high)
    # constant images leave nothing to resample: the interval collapses on the value
    assert interval([np.full(10, 7.0), np.full(3, 9.0)], seed=0) == (8.0, 8.0)
    # more images, narrower interval
    wide = interval([np.tile([0.0, 100.0], 10)], seed=1)
    narrow = interval([np.tile([0.0, 100.0], 1000)], seed=1)
    assert narrow[1] - narrow[0] < (wide[1] - wide[0]) / 5


def test_per_image_outcomes_average_to_the_metrics():
    logits = torch.tensor([[5.0, 1, 0, 0, 0, 0], [0, 5.0, 1, 0, 0, 0], [1, 0, 5.0, 0, 0, 0],
                           [0, 0, 0, 5.0, 0, 0], [0, 0, 0, 0, 0, 5.0]])
    labels = torch.tensor([0, 0, 2, 3, 4])
    metric = ErasureSuccess(6, erased=[0], preserved=[2, 3, 4], ks=(1, 2))
    metric.update(logits, labels)
    values = metric.compute()
    outcomes = erasure_outcomes(logits, labels, [0], [2, 3, 4], ks=(1, 2))
    assert outcomes["ESR-1"] == (0.0, 100.0) and outcomes["ESR-2"] == (0.0, 100.0)
    assert outcomes["PSR-1"] == (100.0, 100.0, 0.0)
    for name, samples in outcomes.items():
        assert np.mean(samples) == pytest.approx(values[name])
    detections = [[("BELLY_EXPOSED", 0.6)], [("FACE_MALE", 0.9)], [("FEET_EXPOSED", 0.85)]]
    rate = NudityRate()
    rate.update(detections)
    ner = rate.compute()
    labels_ = ("BELLY_EXPOSED", "FEET_EXPOSED")
    for name, samples in nudity_outcomes(detections, labels_, NER_THRESHOLDS).items():
        assert np.mean(samples) == pytest.approx(ner[name])


def _row(eraser, request, value, run_id):
    return {"eraser": eraser, "config_hash": "h", "request": request, "task": "t",
            "task_version": "1", "metric": "ESR-1", "split": "", "seed": None, "value": value,
            "higher_is_better": True, "headline": True, "model": "m", "run_id": run_id}


def test_stored_samples_become_leaderboard_intervals(tmp_path):
    store = ResultStore(tmp_path)
    store.write_samples("r1", {"ESR-1": [100.0] * 8 + [0.0] * 2})
    store.write_samples("r2", {"ESR-1": [100.0] * 6 + [0.0] * 4})
    assert store.write_samples("r3", {}) is None
    frame = pd.DataFrame([_row("a", "split 1", 80.0, "r1"), _row("a", "split 2", 60.0, "r2"),
                          _row("b", "split 1", 50.0, "r3")])  # b stored no samples
    bounds = intervals(frame, store.samples(frame["run_id"]))
    assert list(bounds["eraser"]) == ["a"] and int(bounds["images"].iloc[0]) == 20
    assert bounds["low"].iloc[0] < 70.0 < bounds["high"].iloc[0]
    text = render_leaderboard(frame, confidence=bounds)
    fold = text.split("Bootstrap 95% intervals over images")[1]
    assert f"| a | [{bounds['low'].iloc[0]:.4g}, {bounds['high'].iloc[0]:.4g}] (20) |" in fold
    assert "| b |" not in fold.split("</details>")[0]
    assert render_leaderboard(frame, confidence=intervals(frame, store.samples(
        frame["run_id"]))) == text
