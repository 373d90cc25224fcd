"""Bootstrap 95% confidence intervals over images.

A headline number is the mean over requests (splits) of a per-request mean over images.
Its interval resamples the images of every request with replacement (the requests
themselves are the design, not a sample), recomputes that mean of means, and takes the
2.5th and 97.5th percentiles of ``resamples`` repetitions. The generator is seeded from
the row's name, so the leaderboard regenerates byte for byte.

Most headline values are rates whose per-image values are 0 or 100 (ESR, PSR, NER). A
resample of such images is fixed by how many of each value it draws, which is
multinomial: drawing those counts gives the very distribution that drawing the images'
indices gives, at the cost of the values, not of the images (a full reproduction's
Imagenette and I2P units hold thousands of images each, its report a few hundred such
intervals). Other values are resampled by index, a bounded number at a time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

RESAMPLES = 1000
# Values resampled by how often each distinct value is drawn where they take at most
# this share of the images' count as distinct values (a rate's 2 of thousands), else by index
LEVELS_SHARE = 1 / 8
# Indices drawn at a time by index (32 MB of them): COCO-30k's units would otherwise take
# 30,000 x 1,000 of them at once, half a GB with the values they pick
INDICES_AT_ONCE = 1 << 22


def interval(groups: Sequence[np.ndarray], seed: int, resamples: int = RESAMPLES,
             level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean over ``groups`` of each group's mean."""
    rng = np.random.default_rng(seed)
    means = np.zeros(resamples)
    for values in groups:
        means += resampled_means(np.asarray(values, dtype=float), rng, resamples)
    means /= len(groups)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def resampled_means(values: np.ndarray, rng: np.random.Generator, resamples: int
                    ) -> np.ndarray:
    """The means of ``resamples`` resamples of ``values`` with replacement."""
    levels, counts = np.unique(values, return_counts=True)
    if len(levels) <= LEVELS_SHARE * len(values):
        return by_levels(levels, counts, rng, resamples)
    return by_index(values, rng, resamples)


def by_levels(levels: np.ndarray, counts: np.ndarray, rng: np.random.Generator,
              resamples: int) -> np.ndarray:
    """Resampled means of images taking the distinct values ``levels``, ``counts`` of each:
    how many of each a resample draws is multinomial."""
    images = int(counts.sum())
    drawn = rng.multinomial(images, counts / images, size=resamples)
    return drawn @ levels / images


def by_index(values: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """Resampled means of ``values`` from drawn indices, at most INDICES_AT_ONCE at a time."""
    rows = max(1, INDICES_AT_ONCE // len(values))
    means = []
    for start in range(0, resamples, rows):
        picks = rng.integers(len(values), size=(min(rows, resamples - start), len(values)))
        means.append(values[picks].mean(axis=1))
    return np.concatenate(means)


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
