"""Thumbnails and image grids: which prompts are kept, the unsafe guard, the round trip,
and a grid that needs the same prompts and seeds in every row."""

import json

import pandas as pd
import pytest
from PIL import Image

from erasebench import thumbnails
from erasebench.errors import CorruptFileError
from erasebench.figures import GRID_GAP, grid_plan, png_bytes
from erasebench.report import render_leaderboard
from erasebench.specs import PromptSpec


def _prompts(unsafe=False):
    return [PromptSpec(text=f"a {label}", seed=seed, label=label, group=group, unsafe=unsafe)
            for label, group in (("cat", "erase"), ("dog", "preserve"), ("cow", "erase"))
            for seed in (1, 2)]


def test_choose_alternates_groups_takes_each_label_once_and_guards_unsafe():
    prompts = _prompts()
    assert thumbnails.choose(prompts, count=3) == [0, 2, 4]  # cat, dog, cow: first seeds
    assert thumbnails.choose(prompts, count=2) == [0, 2]  # one erased, one preserved
    assert thumbnails.choose(_prompts(unsafe=True)) == []
    assert thumbnails.choose(_prompts(unsafe=True), show_unsafe=True) == [0, 2, 4]


def _images(count, shade):
    return [Image.new("RGB", (40, 40), (shade, 10 * i, 0)) for i in range(count)]


def test_round_trip_and_grid(tmp_path):
    prompts = _prompts()
    thumbnails.save(tmp_path, "r1", _images(6, 0), prompts)
    thumbnails.save(tmp_path, "r2", _images(6, 200), prompts)
    images, meta = thumbnails.load(tmp_path, "r2")
    assert [m["label"] for m in meta] == ["cat", "dog", "cow"] and meta[0]["seed"] == 1
    assert images[1].getpixel((5, 5)) == (200, 20, 0)  # the second kept image is index 2
    frame = pd.DataFrame({"task": "t", "model": "m", "request": "split 1",
                          "eraser": ["a", "b"], "run_id": ["r1", "r2"]})
    plan = grid_plan(frame, tmp_path)
    figure = plan[("t", "m")][0]
    assert figure.filename == "t-m-grid.png" and "split 1" in figure.title
    assert png_bytes(figure.draw) == png_bytes(figure.draw)
    # Rows that show other prompts and seeds than most (here, a tie: the first row's) are
    # left out and named; they hid the whole grid.
    thumbnails.save(tmp_path, "r2", _images(6, 200), list(reversed(prompts)))
    (figure,) = grid_plan(frame, tmp_path)[("t", "m")]
    assert _row_labels(figure) == ["a"]
    assert figure.note == "Left out, showing other prompts or seeds: b."
    thumbnails.save(tmp_path, "r3", _images(6, 100), list(reversed(prompts)))
    both = pd.concat([frame, pd.DataFrame({"task": "t", "model": "m", "request": "split 1",
                                           "eraser": ["c"], "run_id": ["r3"]})])
    (figure,) = grid_plan(both, tmp_path)[("t", "m")]
    assert _row_labels(figure) == ["b", "c"] and figure.note == (
        "Left out, showing other prompts or seeds: a.")


def test_unsafe_thumbnails_stay_out_of_grids_unless_asked(tmp_path):
    thumbnails.save(tmp_path, "r1", _images(6, 0), _prompts(unsafe=True), show_unsafe=True)
    frame = pd.DataFrame({"task": "i2p", "model": "m", "request": "nudity", "eraser": ["a"],
                          "run_id": ["r1"]})
    assert grid_plan(frame, tmp_path) == {}
    assert len(grid_plan(frame, tmp_path, show_unsafe=True)[("i2p", "m")]) == 1
    assert thumbnails.save(tmp_path, "r2", _images(6, 0), _prompts(unsafe=True)) is None


def _drawn(figure):
    from matplotlib.figure import Figure

    drawn = Figure()
    figure.draw(drawn)
    return drawn


def _row_labels(figure):
    (axes,) = _drawn(figure).axes
    return [label.get_text() for label in axes.get_yticklabels()]


def test_a_grid_is_one_image_of_every_rows_thumbnails_in_place(tmp_path):
    # An axes per thumbnail made the grids most of a report's time (4 grids of 54 axes on
    # the miniature world: a report took 7.9 s, 5.5 with one image each, its ticks naming
    # the prompts and rows).
    for run_id, shade in (("r1", 0), ("r2", 200)):
        thumbnails.save(tmp_path, run_id, _images(6, shade), _prompts())
    frame = pd.DataFrame({"task": "t", "model": "m", "request": "split 1",
                          "eraser": ["b", "sd"], "run_id": ["r1", "r2"]})
    (grid,) = grid_plan(frame, tmp_path)[("t", "m")]
    (axes,) = _drawn(grid).axes
    (shown,) = axes.images
    mosaic = shown.get_array()
    side, step = 40, 40 + 40 // GRID_GAP
    assert mosaic.shape == (step + side, 2 * step + side, 3)
    # rows: the original model on top; columns: the kept prompts (cat, dog, cow)
    for row, shade in enumerate((200, 0)):
        for column, green in enumerate((0, 20, 40)):
            assert tuple(mosaic[row * step + side // 2, column * step + side // 2]) == \
                (shade, green, 0)
    assert tuple(mosaic[side + 1, side + 1]) == (255, 255, 255)  # the gap between them
    assert [label.get_text() for label in axes.get_xticklabels()] == [
        "cat\n(erased)", "dog\n(preserve)", "cow\n(erased)"]
    assert _row_labels(grid) == ["sd", "b"]


def test_a_grid_leaves_out_the_rows_of_another_protocol_and_wraps_long_labels(tmp_path):
    prompts = _prompts()
    for run_id, shade in (("plain", 0), ("soft", 0), ("tuned", 90)):
        thumbnails.save(tmp_path, run_id, _images(6, shade), prompts)
    frame = pd.DataFrame({"task": "t", "model": "m", "request": "split 1",
                          "eraser": ["esd_x", "esd_x [t: soft_tokens=4]",
                                     "esd_x [lr=1e-05, train_method=xattn]"],
                          "run_id": ["plain", "soft", "tuned"]})
    (everything,) = grid_plan(frame, tmp_path)[("t", "m")]
    assert len(_row_labels(everything)) == 3
    (grid,) = grid_plan(frame, tmp_path, other_protocol=frozenset({"soft"}))[("t", "m")]
    assert _row_labels(grid) == ["esd_x", "esd_x [lr=1e-05,\ntrain_method=xattn]"]


def _error(root, run_id):
    with pytest.raises(CorruptFileError) as caught:
        thumbnails.load(root, run_id)
    return str(caught.value)


def test_a_damaged_thumbnail_is_named_under_its_grid_and_an_absent_one_is_not(tmp_path):
    # A strip that no longer decodes, or no longer matches its prompt list, dropped its
    # eraser's row from the grid with no word: the reader saw an eraser missing.
    prompts = _prompts()
    for run_id, shade in (("r1", 0), ("r2", 200), ("r3", 100)):
        thumbnails.save(tmp_path, run_id, _images(6, shade), prompts)
    frame = pd.DataFrame({"task": "t", "model": "m", "request": "split 1",
                          "eraser": ["a", "b", "c", "d"], "run_id": ["r1", "r2", "r3", "r4"]})
    folder = tmp_path / thumbnails.SUBFOLDER
    (folder / "r2.png").write_bytes(b"not a png")
    listed = json.loads((folder / "r3.json").read_text())
    (folder / "r3.json").write_text(json.dumps(listed[:1]))  # one prompt for a strip of three
    with pytest.raises(CorruptFileError, match="r2.png"):
        thumbnails.load(tmp_path, "r2")
    with pytest.raises(CorruptFileError, match="r3.png.*3 images.*r3.json.*1 prompt"):
        thumbnails.load(tmp_path, "r3")
    (folder / "r1.json").write_text(json.dumps([{"text": "a cat"}] * 3))  # no seeds, ...
    with pytest.raises(CorruptFileError, match="r1.json.* not a list of prompts with their "
                                               "group, label, seed, text, unsafe"):
        thumbnails.load(tmp_path, "r1")
    (folder / "r1.json").write_text(json.dumps(listed))
    assert thumbnails.load(tmp_path, "r4") is None  # a unit that kept none
    (figure,) = grid_plan(frame, tmp_path)[("t", "m")]
    assert _row_labels(figure) == ["a"]
    assert figure.note == (f"Left out, their thumbnails damaged: b ({_error(tmp_path, 'r2')}), "
                           f"c ({_error(tmp_path, 'r3')}).")
    assert str(folder / "r2.png") in figure.note and str(folder / "r3.json") in figure.note
    board = render_leaderboard(frame.assign(metric="x", value=1.0, split=None, seed=None,
                                            higher_is_better=True, headline=True,
                                            config_hash="h", task_version="1"),
                               "figures", plan={("t", "m"): [figure]})
    assert f"![{figure.title}](figures/t-m-grid.png)\n\n*{figure.note}*\n" in board
    # Every row's strip damaged: the grid's place says so, and names them all.
    (folder / "r1.png").write_bytes(b"")
    (placeholder,) = grid_plan(frame, tmp_path)[("t", "m")]
    assert placeholder.filename == figure.filename and "no image grid" in placeholder.title.lower()
    assert placeholder.note == ("Left out, their thumbnails damaged: "
                                + ", ".join(f"{name} ({_error(tmp_path, run_id)})" for name, run_id
                                            in (("a", "r1"), ("b", "r2"), ("c", "r3"))) + ".")
    assert _drawn(placeholder).texts[0].get_text() == (
        "No image grid: every unit's thumbnails are unreadable")
