"""The leaderboard's layout from hand-made rows: headline vs detail, directions, best in bold."""

import pandas as pd
import pytest

from erasebench.errors import UserError
from erasebench.figures import draw_figures, figure_plan
from erasebench.report import borda_ranks, render_leaderboard, summarise
from erasebench.reported import compare, load_reported


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


def task_rows(task, eraser, metric, value, higher=True):
    return {**rows(eraser, "split 1", metric, value, higher), "task": task}


def test_borda_count_by_hand():
    frame = pd.DataFrame([
        # task x: a best on both metrics (2 points each), b and c tie on LOW (0.5 each).
        task_rows("x", "a", "HIGH", 90.0), task_rows("x", "b", "HIGH", 50.0),
        task_rows("x", "c", "HIGH", 10.0),
        task_rows("x", "a", "LOW", 1.0, higher=False), task_rows("x", "b", "LOW", 5.0, False),
        task_rows("x", "c", "LOW", 5.0, higher=False),
        task_rows("x", "a", "corr", 0.3, higher=None),  # descriptive: no vote
        # task y: c best, a worst; b absent from it.
        task_rows("y", "a", "HIGH", 1.0), task_rows("y", "c", "HIGH", 2.0),
    ])
    table = borda_ranks(frame).set_index("eraser")
    # x: a (2 + 2)/2 = 2, b (1 + 0.5)/2 = 0.75, c (0 + 0.5)/2 = 0.25; y: c 1, a 0.
    assert table["borda"].to_dict() == {"a": 2.0, "b": 0.75, "c": 1.25}
    assert table["rank"].to_dict() == {"a": 1, "c": 2, "b": 3}
    assert table["tasks"].to_dict() == {"a": 2, "b": 1, "c": 2}
    text = render_leaderboard(frame)
    assert "## Overall rank (Borda count)" in text and "| 1 | a | 2 | 2 |" in text


def test_rows_of_another_protocol_are_shown_but_not_ranked():
    variant = {**task_rows("x", "a [x: k=2]", "HIGH", 99.0), "run_id": "other"}
    frame = pd.DataFrame([task_rows("x", "a", "HIGH", 90.0), task_rows("x", "b", "HIGH", 50.0),
                          task_rows("y", "a", "HIGH", 1.0), task_rows("y", "b", "HIGH", 2.0),
                          variant])
    ranked = render_leaderboard(frame, unranked=frozenset({"other"}))
    overall = ranked.split("## x")[0]
    assert "| 1 | a | 1 | 2 |" in overall and "| 1 | b | 1 | 2 |" in overall
    assert "a [x: k=2]" not in overall and "| a [x: k=2] | **99** |" in ranked
    # ranked with the others, the variant would take a's place in task x
    assert "| 1 | a [x: k=2] |" in render_leaderboard(frame).split("## x")[0]


def test_the_overall_rank_names_tasks_whose_votes_rest_on_rows_run_otherwise():
    quick = [{**task_rows("y", e, "HIGH", v), "run_id": "quick"} for e, v in (("a", 1.0),
                                                                              ("b", 2.0))]
    frame = pd.DataFrame([task_rows("x", "a", "HIGH", 90.0), task_rows("x", "b", "HIGH", 50.0),
                          *quick])
    text = render_leaderboard(frame, differences={"quick": "steps 2 (the task's 50)", "r": ""})
    overall, y = text.split("## x")[0], text.split("## y")[1]
    assert "| 1 | a | 1 | 2 |" in overall  # still ranked: its section ran alike
    assert "The votes of y rest on rows run otherwise than its protocol" in overall
    assert ("Not the task's protocol (its default options and the generation settings it "
            "draws with): a, b: steps 2 (the task's 50).") in y
    assert "Not the task's protocol" not in text.split("## y")[0]
    assert "rest on rows" not in render_leaderboard(frame, differences={"quick": ""})


def test_figures_are_linked_and_drawn_reproducibly(tmp_path):
    frame = pd.DataFrame([
        {**rows(e, f"split {s}", m, v + s), "task": "shapes_objects", "model": "shapes"}
        for e, base in (("sd", 0.0), ("esd_x", 60.0)) for s in (1, 2)
        for m, v in (("ESR-1", base), ("PSR-1", 100.0 - base))])
    text = render_leaderboard(frame, "results/figures")
    link = "(results/figures/shapes_objects-shapes-tradeoff.png)"
    assert link in text and link not in render_leaderboard(frame)
    plan = figure_plan(frame)
    first = draw_figures(plan, tmp_path / "a")
    second = draw_figures(plan, tmp_path / "b")
    assert [p.name for p in first] == ["shapes_objects-shapes-tradeoff.png"]
    assert first[0].read_bytes() == second[0].read_bytes()
    assert first[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reported_numbers_stand_beside_reproduced_ones_never_averaged(tmp_path):
    folder = tmp_path / "reported"
    folder.mkdir()
    (folder / "paper.csv").write_text(
        "task,model,eraser,metric,mean,std,source\n"
        "t,m,a,ESR,90,2,Someone 2024\n"
        "t,m,z,ESR,50,,Someone 2024\n"
        "other,m,a,ESR,10,,Else 2023\n")
    reported = load_reported(tmp_path)
    frame = pd.DataFrame([rows("a", "split 1", "ESR", 80.0), rows("a", "split 2", "ESR", 90.0)])
    text = render_leaderboard(frame, reported=reported)
    section = text.split("## t (model `m`)")[1]
    assert "| a | **85 ± 7.1** |" in section.split("**Reported vs reproduced**")[0], (
        "the reproduced mean is ours alone")
    assert "| a | 90 ± 2 → 85 ± 7.1 (-5) |" in text
    assert "| z | 50 → – |" in text and "Sources: Someone 2024." in text
    assert "## other (model `m`)" in text and "Not reproduced yet." in text
    table = compare(reported[reported.task == "t"], summarise(frame))
    assert table.set_index("eraser").loc["a", "difference"] == -5.0


def test_malformed_reported_numbers_are_a_clear_error(tmp_path):
    (tmp_path / "reported").mkdir()
    (tmp_path / "reported" / "bad.csv").write_text("task,eraser\nt,a\n")
    with pytest.raises(UserError, match="lack the columns model, metric, mean, std, source"):
        load_reported(tmp_path)


def test_imagenette_table_borrows_fid_and_clip_measured_on_its_requests():
    def row(task, eraser, request, metric, value, higher):
        return {**rows(eraser, request, metric, value, higher), "task": task}

    frame = pd.DataFrame([
        row("imagenette", "a", "split 1", "ESR-1", 90.0, True),
        row("imagenette", "a", "split 2", "ESR-1", 80.0, True),
        row("coco_quality", "a", "split 1", "FID", 20.0, False),
        row("coco_quality", "a", "split 2", "FID", 22.0, False),
        row("coco_quality", "a", "nudity", "FID", 99.0, False),  # another request: not taken
        row("coco_quality", "b", "split 1", "FID", 50.0, False),  # no imagenette row of b
    ])
    text = render_leaderboard(frame)
    section = text.split("## imagenette")[1].split("\n## ")[0]
    assert "| eraser | ESR-1 ↑ | FID ↓ |" in section
    assert "| a | **85 ± 7.1** | **21 ± 1.4** |" in section and "| b |" not in section
    coco = text.split("## coco_quality")[1]
    assert "| b | 50 |" in coco.replace("**", "")  # still in its own section
