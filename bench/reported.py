"""Published ("reported") numbers, kept apart from reproduced results.

They live in ``results/reported/*.csv`` (columns :data:`COLUMNS`), are read only here and
only shown beside reproduced numbers: :func:`compare` puts both in one table, side by side
with the difference, and never averages one into the other.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from erasebench.errors import UserError

FOLDER = "reported"
COLUMNS = ["task", "model", "eraser", "metric", "mean", "std", "source"]


def load_reported(results_dir: str | Path) -> pd.DataFrame:
    """Every ``results/reported/*.csv`` as one table (empty with :data:`COLUMNS` if none)."""
    frames = []
    for path in sorted((Path(results_dir) / FOLDER).glob("*.csv")):
        try:
            frame = pd.read_csv(path, dtype={"task": str, "model": str, "eraser": str,
                                             "metric": str, "source": str})
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
            raise UserError(f"reported numbers {str(path)!r} are not a readable CSV: "
                            f"{error}") from None
        missing = [column for column in COLUMNS if column not in frame.columns]
        if missing:
            raise UserError(f"reported numbers {str(path)!r} lack the columns "
                            f"{', '.join(missing)} (needed: {', '.join(COLUMNS)})")
        frames.append(frame[COLUMNS])
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(frames, ignore_index=True)


def compare(reported: pd.DataFrame, reproduced: pd.DataFrame) -> pd.DataFrame:
    """One row per reported (eraser, metric): the reported mean/std, our reproduced mean/std
    (``summary`` rows of the same task and model, NaN where not run) and reproduced −
    reported."""
    ours = reproduced.rename(columns={"mean": "reproduced", "std": "reproduced_std"})
    ours = ours[["eraser", "metric", "reproduced", "reproduced_std"]]
    table = reported.rename(columns={"mean": "reported", "std": "reported_std"}).merge(
        ours, on=["eraser", "metric"], how="left")
    table["difference"] = table["reproduced"] - table["reported"]
    return table
