"""The leaderboard's layout from hand-made rows: headline vs detail, directions, best in bold."""

import pandas as pd

from erasebench.report import render_leaderboard


def rows(eraser, request, metric, value, higher=True, headline=True):
    return {"eraser": eraser, "config_hash": "h", "request": request, "task": "t",
            "task_version": "1", "metric": metric, "split": "", "seed": None, "value": value,
            "higher_is_better": higher, "headline": headline, "model": "m", "run_id": "r"}


def test_sections_directions_and_best():
    frame = pd.DataFrame([
        rows("a", "split 1", "ESR", 80.0), rows("a", "split 2", "ESR", 90.0),
        rows("b", "split 1", "ESR", 50.0), rows("b", "split 2", "ESR", -0.0),
        rows("a", "split 1", "corr", 0.5, higher=None),
        rows("b", "split 1", "corr", 0.9, higher=None),
        rows("a", "split 1", "ESR/circle", 70.0, headline=False),
    ])
    text = render_leaderboard(frame)
    main = text.split("<details>")[0]
    assert "| eraser | ESR ↑ | corr |" in main
    assert "| a | **85 ± 7.1** | 0.5 |" in main  # mean and sample std of 80 and 90
    assert "| b | 25 ± 35 | 0.9 |" in main  # descriptive: never bold
    assert "ESR/circle" not in main and "| ESR/circle | 70 |" in text
    assert "| split 1 | b | 50 | 0.9 |" in text and "-0" not in text
    assert render_leaderboard(frame) == text


def test_request_table_bolds_nothing():
    frame = pd.DataFrame([rows("a", "split 1", "ESR", 80.0), rows("a", "split 2", "ESR", 90.0)])
    request_table = render_leaderboard(frame).split("Request by request")[1]
    assert "| split 2 | a | 90 |" in request_table and "**" not in request_table
