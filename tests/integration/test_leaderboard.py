"""The committed leaderboard is exactly what `erasebench report` makes of the committed results."""

import re
from pathlib import Path

from erasebench.provenance import load_provenance
from erasebench.report import render_leaderboard
from erasebench.reported import load_reported
from erasebench.results import load_results

ROOT = Path(__file__).resolve().parents[2]


def test_committed_leaderboard_matches_committed_results():
    expected = render_leaderboard(load_results(ROOT / "results"), "results/figures",
                                  load_reported(ROOT / "results"),
                                  load_provenance(ROOT / "results"))
    assert (ROOT / "leaderboard.md").read_text() == expected, (
        "leaderboard.md is stale: run `erasebench report` and commit it")
    for link in re.findall(r"\]\((results/figures/[^)]+)\)", expected):
        assert (ROOT / link).is_file(), f"{link} is linked but not committed"
