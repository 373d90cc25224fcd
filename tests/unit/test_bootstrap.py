"""Bootstrap intervals over images: by hand, deterministic, in the leaderboard; and the
per-image values the tasks store average to the metrics they report."""

import math
import tracemalloc

import numpy as np
import pandas as pd
import pytest
import torch

from erasebench import bootstrap
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


def _binomial_quantile(images: int, rate: float, level: float) -> int:
    """The least count of hits whose binomial distribution function reaches ``level``."""
    total = 0.0
    for hits in range(images + 1):
        total += math.comb(images, hits) * rate**hits * (1 - rate) ** (images - hits)
        if total >= level:
            return hits
    return images


def test_a_rates_images_resample_by_value_counts_as_they_do_by_index():
    # 30 of 100 images at 100: a resample's mean is 100 * Binomial(100, 0.3) / 100, whose
    # 2.5th and 97.5th percentiles are 21 and 39 (by hand, from the distribution function)
    values = np.array([100.0] * 30 + [0.0] * 70)
    low, high = _binomial_quantile(100, 0.3, 0.025), _binomial_quantile(100, 0.3, 0.975)
    assert (low, high) == (21, 39)
    levels, counts = np.unique(values, return_counts=True)
    by_counts = bootstrap.by_levels(levels, counts, np.random.default_rng(0), 20_000)
    by_index = bootstrap.by_index(values, np.random.default_rng(0), 20_000)
    for means in (by_counts, by_index):
        assert np.percentile(means, [2.5, 97.5]) == pytest.approx([low, high], abs=1)
        assert means.mean() == pytest.approx(30, abs=0.1)
    assert interval([values], seed=4) == pytest.approx((low, high), abs=1.5)


def _peak_megabytes(compute) -> float:
    tracemalloc.start()
    compute()
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return peak


def test_many_images_resample_in_bounded_memory():
    # 200,000 images resampled 100 times: drawn all at once, the indices and the values
    # they pick would take 320 MB
    rng = np.random.default_rng(0)
    rate = (rng.random(200_000) < 0.4) * 100.0  # two values: counted, not indexed
    assert _peak_megabytes(lambda: interval([rate], seed=1, resamples=100)) < 10
    scores = rng.normal(30, 3, 200_000)  # continuous: indexed, a bounded number at a time
    assert _peak_megabytes(lambda: interval([scores], seed=1, resamples=100)) < 100
    low, high = interval([scores], seed=1, resamples=100)
    assert low < scores.mean() < high and high - low < 0.1


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
