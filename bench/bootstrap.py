"""Bootstrap 95% confidence intervals over images.

A headline number is the mean over requests (splits) of a per-request mean over images.
Its interval resamples the images of every request with replacement (the requests
themselves are the design, not a sample), recomputes that mean of means, and takes the
2.5th and 97.5th percentiles of ``resamples`` repetitions. The generator is seeded from
the row's name, so the leaderboard regenerates byte for byte.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

RESAMPLES = 1000


def interval(groups: Sequence[np.ndarray], seed: int, resamples: int = RESAMPLES,
             level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean over ``groups`` of each group's mean."""
    rng = np.random.default_rng(seed)
    means = np.zeros(resamples)
    for values in groups:
        picks = rng.integers(len(values), size=(resamples, len(values)))
        means += values[picks].mean(axis=1)
    means /= len(groups)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def samples_interval(samples: Sequence[float], *names: str) -> tuple[float, float]:
    """The interval of the mean of one request's per-image ``samples`` (a metric's, as
    ``erasebench score`` prints it), seeded from ``names`` so that it reprints alike."""
    return interval([np.asarray(samples, dtype=float)], _seed(*names))


def _seed(*names: str) -> int:
    return int.from_bytes(hashlib.sha256("|".join(names).encode()).digest()[:8], "little")


def intervals(frame: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """(task, model, eraser, metric, low, high, images) for every metric of ``frame`` whose
    every unit stored per-image samples."""
    columns = ["task", "model", "eraser", "metric", "low", "high", "images"]
    if frame.empty or samples.empty:
        return pd.DataFrame(columns=columns)
    by_unit = {key: group["value"].to_numpy(dtype=float)
               for key, group in samples.groupby(["run_id", "metric"], sort=False)}
    rows = []
    for (task, model, eraser, metric), group in frame.groupby(
            ["task", "model", "eraser", "metric"], sort=True):
        groups = [by_unit.get((run_id, metric)) for run_id in group["run_id"]]
        if not groups or any(g is None or len(g) == 0 for g in groups):
            continue
        present = [g for g in groups if g is not None]
        low, high = interval(present, _seed(str(task), str(model), str(eraser), str(metric)))
        rows.append((task, model, eraser, metric, low, high, sum(len(g) for g in present)))
    return pd.DataFrame(rows, columns=columns)
