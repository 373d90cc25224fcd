"""The committed leaderboard is exactly what `erasebench report` makes of the committed results."""

import re
from pathlib import Path

from erasebench.report import build_report

ROOT = Path(__file__).resolve().parents[2]


def test_committed_leaderboard_matches_committed_results():
    expected, _, _ = build_report(ROOT / "results", ROOT / "leaderboard.md")
    assert (ROOT / "leaderboard.md").read_text() == expected, (
        "leaderboard.md is stale: run `erasebench report` and commit it")
    for link in re.findall(r"\]\((results/figures/[^)]+)\)", expected):
        assert (ROOT / link).is_file(), f"{link} is linked but not committed"
