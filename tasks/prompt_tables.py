"""Reading the papers' prompt files (CSV with ``prompt``, ``evaluation_seed``, ...).

Every Stable Diffusion task reads one of these; a file given by path is checked for the
columns the task needs, so a malformed file is one clear error, not a KeyError later.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

from erasebench.errors import UserError
from erasebench.specs import MAX_SEED


def bundled(package_file: str, name: str) -> Path:
    """A data file shipped beside a task module (``<task>/data/<name>``)."""
    return Path(package_file).parent / "data" / name


@lru_cache(maxsize=16)
def _read(path: str, mtime_ns: int) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False)


def read_prompt_table(path: str | Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """The table at ``path`` with at least ``columns``; seeds checked to be valid seeds."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"prompt file {path} does not exist")
    try:
        table = _read(str(path), path.stat().st_mtime_ns)
    except pd.errors.EmptyDataError:
        raise UserError(f"prompt file {path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise UserError(f"prompt file {path} is not a readable CSV: {error}") from None
    if table.empty:
        raise UserError(f"prompt file {path} has a header but no rows")
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise UserError(f"prompt file {path} lacks the column(s) {', '.join(missing)}; "
                        f"it has {', '.join(map(str, table.columns))}")
    if "evaluation_seed" in columns:
        seeds = pd.to_numeric(table["evaluation_seed"], errors="coerce")
        bad = table.index[seeds.isna() | (seeds < 0) | (seeds > MAX_SEED)]
        if len(bad):
            raise UserError(f"prompt file {path}: evaluation_seed of row {bad[0]} is "
                            f"{table['evaluation_seed'][bad[0]]!r}, not a seed in 0..{MAX_SEED}")
    return table.copy()
