"""The CLI as a user runs it: in-process through ``main`` (fast), output and exit codes."""

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from erasebench import generate
from erasebench.cli import main
from erasebench.edits import EditedModel
from erasebench.hardware import describe_device
from erasebench.registry import ERASERS
from erasebench.results import ResultStore, records_to_frame
from erasebench.testing import TracingCompileBackend


def test_unknown_eraser_exits_2_with_one_line_listing_the_valid_names(capsys):
    assert main(["run", "--erasers", "sd,nope", "--tasks", "mock"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "unknown eraser 'nope'" in err and "mock" in err and "sd" in err


@pytest.mark.parametrize("argv, message", [
    (["run", "--tasks", "nope"], "unknown task 'nope'"),
    # an empty list (a shell variable unset) is not the default run, every eraser or task
    (["run", "--erasers", "", "--tasks", "mock"],
     "--erasers '' names no eraser; registered: age, all_but_one, ap"),
    (["run", "--erasers", "sd", "--tasks", " , "], "--tasks ' , ' names no task; registered:"),
    (["weights", "--tasks", ","], "--tasks ',' names no task"),
    (["run", "--tasks", "mock", "--task-config", "colour=3"],
     "no selected task has the option 'colour'"),
    (["run", "--tasks", "mock", "--task-config", "images_per_concept=many"], "images_per_concept"),
    (["run", "--tasks", "mock", "--steps", "0"], None),  # click's own range check
    (["generate", "--out", "x", "--prompt", "a", "--seeds", "3-x"], "bad seed list"),
    (["generate", "--out", "x", "--prompt", "a", "--seeds", "-5"], "seeds must be"),
    (["generate", "--out", "x", "--prompt", "a", "--seeds", "0,9-2"],
     "seed range '9-2' runs backwards: write the lower seed first ('2-9')"),
    (["generate", "--out", "x", "--prompt", "a", "--precision", "fp8"],
     "bad generation setting precision 'fp8': Input should be 'auto', 'fp32', 'fp16' or 'bf16'"),
    (["generate", "--out", "x", "--prompt", "a", "--size", "33"],
     "bad generation setting height 33: Input should be a multiple of 8"),
    (["generate", "--out", "x", "--prompt", "a", "--size", "32x36"],
     "bad generation setting width 36: Input should be a multiple of 8"),
    (["run", "--tasks", "mock", "--size", "512x"],
     "--size '512x': give one side in pixels ('512') or HEIGHTxWIDTH ('512x768')"),
    (["run", "--tasks", "mock", "--scheduler", "euler"], "bad generation setting scheduler"),
    (["run", "--erasers", "esd_x,uce", "--tasks", "mock", "--preset", "shape"],
     "unknown preset 'shape'; valid presets: shapes, tiny"),
    (["erase", "--eraser", "mock", "--concept", "c", "--out", "e.safetensors",
      "--config", "strength=strong"], "bad eraser config"),
    (["erase", "--eraser", "mock", "--concept", "c", "--out", "e.safetensors",
      "--config", "unknown_key=1"], "unknown_key"),
    (["run", "--tasks", "mock", "--task-config", "nope.images_per_concept=1"],
     "unknown task 'nope'"),
    (["run", "--tasks", "i2p_nudity", "--task-config", "prompt_file=missing.csv"],
     "missing.csv does not exist"),
    (["run", "--tasks", "robustness", "--task-config", "task=i2p_nudity"], "ESR-k"),
    (["timings", "--results", "missing"], "'missing' does not exist"),
    (["run", "--tasks", "mock", "--backend", "slurm"], "valid backends: local, ray"),
    (["report", "--results", "typo", "--out", "board.md"], "results folder 'typo' does not"),
    (["erase", "--eraser", "mock", "--concept", "c", "--out", "e.pt"], "safetensors only"),
    (["erase", "--eraser", "mock", "--concept", " ", "--out", "e.safetensors"],
     "an empty concept in the erasure request [' ']: each must name something"),
    (["erase", "--eraser", "mock", "--concept", "c", "--anchor", "", "--out", "e.safetensors"],
     "an empty anchor"),
    (["run", "--tasks", "i2p_nudity", "--task-config", "concept=", "--dry-run"],
     "an empty concept in the erasure request"),
], ids=lambda v: " ".join(v)[:40] if isinstance(v, list) else str(v))
def test_bad_input_is_one_line_and_exit_2_and_writes_nothing(argv, message, capsys, tmp_path,
                                                             monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    if message:
        assert message in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_a_malformed_prompt_file_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "prompts.csv"
    bad.write_text("text,seed\nhello,1\n")
    assert main(["generate", "--out", str(tmp_path / "o"), "--prompts", str(bad)]) == 2
    assert "no 'prompt' column" in capsys.readouterr().err
    bad.write_text("prompt,seed\nhello,one\n")
    assert main(["generate", "--out", str(tmp_path / "o"), "--prompts", str(bad)]) == 2
    assert "prompts.csv:2" in capsys.readouterr().err
    bad.write_text("prompt,seed\nhello,1\nhello,2.5\n")  # not taken for seed 2
    assert main(["generate", "--out", str(tmp_path / "o"), "--prompts", str(bad)]) == 2
    assert "prompts.csv:3: seed '2.5' is not a whole number" in capsys.readouterr().err
    for empty in ("", "prompt,seed\n"):
        bad.write_text(empty)
        assert main(["generate", "--out", str(tmp_path / "o"), "--prompts", str(bad)]) == 2
        assert "prompts.csv" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_malformed_image_folder_is_a_clear_error(tmp_path, capsys):
    # A manifest written by other code with a seed that is no whole number, or in another
    # encoding, ended `score` in a traceback.
    def score(folder):
        code = main(["score", "--task", "mock", "--images", str(folder)])
        return code, " ".join(capsys.readouterr().err.split())

    folder = tmp_path / "images"
    assert score(folder) == (2, f"error: {str(folder)!r} does not exist")
    folder.write_text("")
    assert score(folder) == (2, f"error: {str(folder)!r} is a file, not a folder of images")
    folder.unlink()
    folder.mkdir()
    assert score(folder) == (2, f"error: {str(folder)!r} has no manifest.csv; make it with "
                                "`erasebench generate`")
    manifest = folder / "manifest.csv"
    for text, message in [
            ("file,prompt,seed\na.png,a cat,1\nb.png,a cat,one\n",
             f"{manifest}:3: seed 'one' is not a whole number"),
            ("file,prompt,seed\na.png,a cat,\n", f"{manifest}:2: seed '' is not a whole number"),
            ("file,prompt,seed\na.png,a cat,2.5\n",
             f"{manifest}:2: seed '2.5' is not a whole number"),
            ("file,prompt,seed\na.png,a cat,2.0\n",  # read as seed 2: on to the image
             f"{manifest} names 1 file(s) that {str(folder)!r} lacks: a.png"),
            ("file,prompt\na.png,a cat\n", f"{manifest} lacks the columns ['seed']"),
            ("", f"{manifest} is not a readable CSV: No columns to parse from file")]:
        manifest.write_text(text)
        assert score(folder) == (2, f"error: {message}")
    manifest.write_bytes(b"file,prompt,seed\na.png,caf\xe9,1\n")  # Latin-1
    code, err = score(folder)
    assert code == 2 and err.startswith(f"error: {manifest} is not a readable CSV: 'utf-8'")


def test_a_model_path_that_is_not_a_diffusers_folder(tmp_path, capsys):
    (tmp_path / "not_a_model").mkdir()
    argv = ["run", "--model", str(tmp_path / "not_a_model"), "--erasers", "sd", "--tasks",
            "mock", "--results", str(tmp_path / "results"), "--cache", str(tmp_path / "c")]
    assert main(argv) == 2
    assert "not a diffusers folder" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()  # not even a lock file


def test_a_dry_run_stops_on_the_model_folder_the_run_would_stop_on(tiny, tmp_path, capsys):
    # The plan of a run that could not load its base model is no plan: the dry run (which
    # loads nothing) says what the run would, as the first thing it says.
    folder = tiny.save_pretrained(tmp_path / "model")
    argv = ["run", "--model", str(folder), "--erasers", "sd", "--tasks", "mock", "--dry-run",
            "--results", str(tmp_path / "results"), "--cache", str(tmp_path / "c")]
    assert main(argv) == 0
    (folder / "text_encoder" / "model.safetensors").unlink()
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == (f"error: model folder {str(folder)!r} lacks "
                                    "text_encoder/model.safetensors")
    assert "lacks" not in captured.out
    argv[2] = str(tmp_path / "no such folder")
    assert main(argv) == 2
    assert "does not exist; pass a diffusers folder" in capsys.readouterr().err


def test_a_run_stops_on_a_hub_model_the_cache_lacks_where_the_hub_is_not_asked(
        tiny, tmp_path, monkeypatch, capsys):
    # As for a folder: before its worker processes start (they each stopped on it, in
    # diffusers' words, naming no file), and in a dry run, which loads nothing.
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = ["run", "--model", "someone/sd-finetune", "--erasers", "sd", "--tasks", "mock",
            "--results", str(tmp_path / "results"), "--cache", str(tmp_path / "c")]
    for dry in ([], ["--dry-run"]):
        assert main([*argv, *dry]) == 2
        captured = capsys.readouterr()
        assert captured.err.startswith(
            "error: model 'someone/sd-finetune': only the Hugging Face cache can be read "
            "(HF_HUB_OFFLINE is set), and it lacks 11 of the 11 files a run reads")
        assert "work units" not in captured.out
    assert not (tmp_path / "results").exists()
    repo = cache / "models--someone--sd-finetune"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("e" * 40)
    # As a run with network fills it: the components' files, without model_index.json.
    (tiny.save_pretrained(repo / "snapshots" / ("e" * 40)) / "model_index.json").unlink()
    assert main([*argv, "--dry-run"]) == 0
    assert main([*argv, "--workers", "1"]) == 0
    assert "[done] sd x mock" in capsys.readouterr().out


NEEDS_PROC_AND_SYS = pytest.mark.skipif(
    not (Path("/proc/self").is_dir() and Path("/sys/kernel").is_dir()),
    reason="needs Linux's /proc and /sys")


@pytest.mark.parametrize("argv, env, message", [
    (["run", "--tasks", "mock", "--results", "log.txt"], {},
     "--results 'log.txt' is a file, not a folder"),
    (["run", "--tasks", "mock", "--results", "log.txt/results"], {},
     "--results 'log.txt/results' cannot be made: 'log.txt' is a file, not a folder"),
    (["run", "--tasks", "mock", "--cache", "log.txt"], {}, "--cache 'log.txt' is a file"),
    (["run", "--tasks", "mock"], {"ERASEBENCH_CACHE": "log.txt/cache"},
     "the cache folder ($ERASEBENCH_CACHE) 'log.txt/cache' cannot be made"),
    (["run", "--tasks", "mock", "--leaderboard", "folder"], {},
     "--leaderboard 'folder' is a folder, not a file"),
    (["generate", "--out", "log.txt", "--prompt", "a"], {}, "--out 'log.txt' is a file"),
    (["erase", "--eraser", "mock", "--concept", "c", "--out", "log.txt/e.safetensors"], {},
     "--out 'log.txt/e.safetensors' cannot be made: 'log.txt' is a file"),
    (["export", "--edit", "e.safetensors", "--out", "log.txt"], {}, "--out 'log.txt' is a file"),
    (["search-history", "e.safetensors", "--strip", "folder"], {},
     "--strip 'folder' is a folder, not a file"),
    (["report", "--results", "folder", "--out", "folder"], {},
     "--out 'folder' is a folder, not a file"),
    # Places that take no new file, even for root: /proc (ENOENT) and /sys (EACCES), as a
    # read-only share or another user's folder would refuse it at the first write.
    pytest.param(["run", "--tasks", "mock", "--results", "/proc/erasebench-results"], {},
                 "--results '/proc/erasebench-results' cannot be written: '/proc' takes no "
                 "new file (No such file or directory)", marks=NEEDS_PROC_AND_SYS),
    pytest.param(["run", "--tasks", "mock", "--cache", "/sys"], {},
                 "--cache '/sys' cannot be written: '/sys' takes no new file (Permission "
                 "denied)", marks=NEEDS_PROC_AND_SYS),
    pytest.param(["run", "--tasks", "mock"], {"ERASEBENCH_CACHE": "/sys/erasebench"},
                 "the cache folder ($ERASEBENCH_CACHE) '/sys/erasebench' cannot be written",
                 marks=NEEDS_PROC_AND_SYS),
    pytest.param(["generate", "--out", "/sys/images", "--prompt", "a"], {},
                 "--out '/sys/images' cannot be written: '/sys' takes no new file",
                 marks=NEEDS_PROC_AND_SYS),
    pytest.param(["report", "--results", "folder", "--out", "/proc/leaderboard.md"], {},
                 "--out '/proc/leaderboard.md' cannot be written", marks=NEEDS_PROC_AND_SYS),
], ids=lambda v: " ".join(v)[:40] if isinstance(v, list) else None)
def test_an_output_place_that_cannot_be_made_or_written_stops_before_any_work(
        argv, env, message, capsys, tmp_path, monkeypatch):
    # The first write would fail there minutes in (a model loaded, an eraser trained) with
    # a traceback; the user mistyped a path, which one line can say.
    monkeypatch.chdir(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "log.txt").write_text("kept")
    (tmp_path / "folder").mkdir()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["folder", "log.txt"]
    assert (tmp_path / "log.txt").read_text() == "kept"
    assert not list((tmp_path / "folder").iterdir())


def test_run_end_to_end_then_report(tmp_path, capsys):
    results, cache = tmp_path / "results", tmp_path / "cache"
    argv = ["run", "--model", "tiny", "--erasers", "sd", "--tasks", "mock", "--steps", "2",
            "--results", str(results), "--cache", str(cache)]
    assert main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "done 1 here" in out
    assert "1 work unit (1 to do, asking for 8 images; 1 process)" in out
    assert "; 1/1 units, 8/8 images" in out  # the mock task's 4 images of cat and of dog
    assert main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "1 work unit (0 to do, 1 recorded before, asking for 0 images" in out
    assert "1 already done" in out and "[skipped]" not in out  # counted, not told one by one
    assert main(["timings", "--results", str(results)]) == 0
    row = next(line.split() for line in capsys.readouterr().out.splitlines()
               if line.strip().startswith("sd "))
    # eraser, task, units, erasures: the original model makes none, so no seconds of one
    # ("–"); 8 images drawn
    assert row[:4] == ["sd", "mock", "1", "0"] and row[4:6] == ["–", "8"]
    board = tmp_path / "leaderboard.md"
    assert main(["report", "--results", str(results), "--out", str(board)]) == 0
    first = board.read_bytes()
    assert b"| sd | **0** | **0** |" in first
    assert main(["report", "--results", str(results), "--out", str(board)]) == 0
    assert board.read_bytes() == first
    assert len(pd.read_parquet(results / "metrics.parquet")) == 2
    # A damaged thumbnail strip is named under the grid it is left out of, and on the
    # console.
    (strip,) = (results / "thumbnails").glob("*.png")
    strip.write_bytes(b"")
    capsys.readouterr()
    assert main(["report", "--results", str(results), "--out", str(board)]) == 0
    wrote, said = capsys.readouterr().out.splitlines()
    note = f"Left out, their thumbnails damaged: sd (thumbnails {str(strip)!r} are unreadable: "
    assert wrote == f"wrote {board}"
    assert said.startswith(f"note: mock (model tiny), mock-tiny-grid.png: {note}")
    assert f"\n*{said.split('.png: ', 1)[1]}*\n" in board.read_text()


def test_a_run_takes_its_units_longest_first(tmp_path, capsys):
    # Listed first, the style task's units draw under 100 images between them; the first
    # objects split draws 300, and the other three read those (the original model's
    # images, which the splits prompt alike).
    assert main(["run", "--erasers", "sd", "--tasks", "shapes_style,shapes_objects",
                 "--workers", "1", "--steps", "2", "--no-report", "--results",
                 str(tmp_path / "results"), "--cache", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    ran = re.findall(r"\[done\] sd x (\w+ \[[^]]+\])", out)
    assert ran == ["shapes_objects [split 1]", "shapes_style [striped]",
                   "shapes_style [dotted]", "shapes_objects [split 2]",
                   "shapes_objects [split 3]", "shapes_objects [split 4]"]
    # Not a terminal (a log file, a Slurm job's output): each unit's line stays whole,
    # however long, so that a grep for a unit finds its progress too.
    done_lines = [line for line in out.splitlines() if "[done]" in line]
    assert len(done_lines) == 6 and all(re.search(r"\d/6 units, [\d,]+/[\d,]+ images", line)
                                        for line in done_lines)


def test_a_resumed_run_says_the_time_left_as_it_starts(tmp_path, capsys):
    argv = ["run", "--model", "tiny", "--tasks", "mock", "--steps", "2",
            "--results", str(tmp_path / "results"), "--cache", str(tmp_path / "cache")]
    assert main([*argv, "--erasers", "sd"]) == 0
    assert "recorded before" not in capsys.readouterr().out  # a fresh run: no pace yet
    assert main([*argv, "--erasers", "sd,mock"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert re.search(r"in the caches: .*; 8 images to draw; about \d+ s left at the pace of "
                     r"the 1 unit recorded before \(erasures of mock not counted: none timed "
                     r"yet\)", out)


def _run_while_another_run_holds_mocks_unit(tmp_path, *options):
    """``erasebench run`` of sd's and mock's units of the mock task while another run holds
    mock's unit (its lock); returns the command line (without ``options``) and the unit."""
    from filelock import FileLock

    from erasebench.registry import TASKS
    from erasebench.runner import plan
    from erasebench.specs import ModelSpec

    argv = ["run", "--model", "tiny", "--erasers", "sd,mock", "--tasks", "mock", "--steps",
            "2", "--workers", "1", "--results", str(tmp_path / "results"), "--cache",
            str(tmp_path / "cache"), "--no-report"]
    [unit] = plan([ERASERS.get("mock")()], [TASKS.get("mock")({})], ModelSpec(id="tiny"),
                  {"steps": 2})
    locks = tmp_path / "results" / ".locks"
    locks.mkdir(parents=True)
    with FileLock(str(locks / f"{unit.run_id}.lock")):
        assert main([*argv, *options]) == 0
    return argv, unit


def test_a_run_left_without_units_draws_the_images_of_one_another_run_holds(tmp_path,
                                                                             capsys):
    # Another run holds mock's unit: this one runs sd's, then draws mock's images for it
    # (and its erasure), says so, and the other run, started after, only reads them.
    argv, unit = _run_while_another_run_holds_mocks_unit(tmp_path)
    out = " ".join(capsys.readouterr().out.split())
    assert re.search(rf"\[helped\] mock x mock \[cat\] \({unit.run_id}, [\d.]+ s\): made its "
                     r"erasure in [\d.]+ s, drew 8 images for it at [\d.]+ images/s", out), out
    assert ("done 1 here, 0 by helper or other processes, 0 already done, busy (another run) "
            "1, 8 images drawn for 1 unit run elsewhere;") in out
    assert main(argv) == 0
    record = ResultStore(tmp_path / "results").record(unit.run_id)
    assert record.provenance.timings.images_drawn == 0
    # The timings count the 8 images where they were drawn: sd's own 8 and, from the help
    # record, mock's 8, which its unit's record does not hold.
    capsys.readouterr()
    assert main(["timings", "--results", str(tmp_path / "results")]) == 0
    text = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in text.splitlines()
            if line.strip().startswith(("sd ", "mock ", "all "))}
    # eraser, task, units, erasures, their seconds (a number and its unit), images drawn
    assert rows["mock"][2:4] == ["1", "1"] and rows["mock"][6] == "8"
    assert rows["all"][1:3] == ["2", "1"] and rows["all"][5] == "16"  # mock's erasure alone
    assert "include the work of 1 help record" in " ".join(text.split())


def test_no_help_others_leaves_the_images_of_a_unit_another_run_holds_to_it(tmp_path,
                                                                             capsys):
    # As above, but the run is told not to help: it draws nothing for mock's unit, whose
    # own run, started after, draws its 8 images itself.
    argv, unit = _run_while_another_run_holds_mocks_unit(tmp_path, "--no-help-others")
    out = " ".join(capsys.readouterr().out.split())
    assert "[helped]" not in out
    assert ("done 1 here, 0 by helper or other processes, 0 already done, busy (another run) "
            "1;") in out
    assert main(argv) == 0
    record = ResultStore(tmp_path / "results").record(unit.run_id)
    assert record.provenance.timings.images_drawn == 8


@pytest.mark.parametrize("changes", ["", "9f8e7d6c" * 2])
def test_a_run_from_uncommitted_changes_warns_and_its_rows_name_them(
        changes, tmp_path, capsys, monkeypatch):
    from erasebench import code_version as code

    code.code_version.cache_clear()
    try:
        monkeypatch.setattr(code, "read_code_version",
                            lambda folders: code.CodeVersion("1a" * 20, changes))
        board = tmp_path / "leaderboard.md"
        assert main(["run", "--model", "tiny", "--erasers", "sd", "--tasks", "mock",
                     "--steps", "2", "--results", str(tmp_path / "results"),
                     "--cache", str(tmp_path / "cache"), "--leaderboard", str(board)]) == 0
    finally:
        code.code_version.cache_clear()
    err = " ".join(capsys.readouterr().err.split())
    warned = ("warning: erasebench's source has uncommitted changes: the records name them "
              "(code 1a1a1a1a1a with changes 9f8e7d6c)")
    assert (warned in err) == bool(changes)
    named = "| 1a1a1a1a1a with changes 9f8e7d6c |" if changes else "| 1a1a1a1a1a |"
    assert named in board.read_text()


def test_run_with_compile_samples_through_the_compiled_unet_and_gives_the_same_rows(
        tmp_path, capsys, monkeypatch):
    backend = TracingCompileBackend()
    monkeypatch.setattr(generate, "COMPILE_BACKEND", backend)
    torch._dynamo.reset()
    rows = {}
    try:
        for flag in ("--no-compile", "--compile"):  # own caches: the images are drawn again
            results = tmp_path / flag
            argv = ["run", "--model", "tiny", "--erasers", "sd,mock", "--tasks", "mock",
                    "--steps", "2", "--workers", "1", "--results", str(results),
                    "--cache", str(tmp_path / f"cache{flag}"), "--no-report", flag,
                    "--batch-size", "1"]  # every batch full: only those run compiled
            assert main(argv) == 0
            rows[flag] = records_to_frame(ResultStore(results).records())
            assert bool(backend.graphs) == (flag == "--compile") == (sum(backend.calls) > 0)
    finally:
        torch._dynamo.reset()
    pd.testing.assert_frame_equal(rows["--compile"], rows["--no-compile"])
    assert rows["--compile"]["eraser"].nunique() == 2  # the mock eraser's edit went through it


def test_erase_generate_score_export(tmp_path, capsys):
    edit = tmp_path / "cat.safetensors"
    assert main(["erase", "-e", "mock", "--concept", "cat", "--out", str(edit)]) == 0
    with safe_open(str(edit), framework="pt") as handle:
        assert all("attn2.to_v" in key for key in handle.keys())  # noqa: SIM118
    made = EditedModel.load(edit)
    # The device with its model, as the records and the leaderboard name it.
    assert made.seconds > 0 and made.device == describe_device("cpu")
    assert (f"made in {made.seconds:.1f} s on {made.device}"
            in " ".join(capsys.readouterr().out.split()))
    common = ["--steps", "3", "--seeds", "0-3", "--prompt", "a photo of a cat",
              "--prompt", "a photo of a dog"]
    assert main(["generate", "--out", str(tmp_path / "erased"), "--edit", str(edit), *common]) == 0
    assert main(["generate", "--out", str(tmp_path / "base"), *common]) == 0
    manifest = pd.read_csv(tmp_path / "erased" / "manifest.csv")
    assert len(manifest) == 8 and set(manifest.seed) == {0, 1, 2, 3}
    erased, base = ([np.asarray(Image.open(tmp_path / folder / name)) for name in manifest.file]
                    for folder in ("erased", "base"))
    assert all(image.shape == erased[0].shape for image in erased + base)
    assert not np.array_equal(erased[0], base[0])  # the edit's image, not the base model's
    capsys.readouterr()
    assert main(["score", "-t", "mock", "--images", str(tmp_path / "erased"),
                 "--reference", str(tmp_path / "base")]) == 0  # -t and -e as in `run`
    out = capsys.readouterr().out
    assert "change_erase" in out and "change_preserve" in out
    scores = tmp_path / "scores.csv"  # the printed values, kept for a script to read
    assert main(["score", "-t", "mock", "--images", str(tmp_path / "erased"),
                 "--reference", str(tmp_path / "base"), "--out", str(scores)]) == 0
    printed = _scored(capsys)
    kept = pd.read_csv(scores, keep_default_na=False)
    assert list(kept.columns) == ["task", "request", "metric", "split", "value", "low", "high",
                                  "images_scored", "images"]
    assert set(kept.task) == {"mock"} and set(kept.images) == {str(tmp_path / "erased")}
    assert {(r.request, r.metric): float(f"{r.value:.6g}") for r in kept.itertuples()} == printed
    assert main(["score", "-t", "mock", "--images", str(tmp_path / "erased"), "--reference",
                 str(tmp_path / "base"), "--out", str(tmp_path)]) == 2  # a folder
    assert capsys.readouterr().err.strip() == (
        f"error: --out {str(tmp_path)!r} is a folder, not a file")
    # The task's one request is scored whatever the edit erased: there is no other to pick.
    manifest = tmp_path / "erased" / "manifest.csv"
    pd.read_csv(manifest).assign(erased='["a dog"]').to_csv(manifest, index=False)
    assert main(["score", "-t", "mock", "--images", str(tmp_path / "erased"),
                 "--reference", str(tmp_path / "base")]) == 0
    assert "change_erase" in capsys.readouterr().out
    assert main(["score", "--task", "mock", "--images", str(tmp_path / "base")]) == 2
    assert "--reference" in capsys.readouterr().err
    # A reference folder without some of the images compared with: said whole, at once.
    assert main(["generate", "--out", str(tmp_path / "half"), *common[:2], "--seeds", "0-1",
                 *common[4:]]) == 0
    capsys.readouterr()
    assert main(["score", "--task", "mock", "--images", str(tmp_path / "erased"),
                 "--reference", str(tmp_path / "half")]) == 2
    assert " ".join(capsys.readouterr().err.split()).endswith(
        f"error: {str(tmp_path / 'half')!r} lacks 4 of the 8 original-model images task "
        "'mock' compares with, e.g. 'a photo of a cat' seed 2; `erasebench prompts --task "
        "mock` prints the command that draws them")
    (tmp_path / "base" / "00003.png").unlink()
    assert main(["score", "--task", "mock", "--images", str(tmp_path / "erased"),
                 "--reference", str(tmp_path / "base")]) == 2
    assert "names 1 file(s) that" in capsys.readouterr().err
    (tmp_path / "base" / "00003.png").write_bytes(b"not a png")
    assert main(["score", "--task", "mock", "--images", str(tmp_path / "erased"),
                 "--reference", str(tmp_path / "base")]) == 2
    assert "cannot read the image" in capsys.readouterr().err
    assert main(["export", "--edit", str(edit), "--out", str(tmp_path / "exported")]) == 0
    assert (tmp_path / "exported" / "model_index.json").is_file()


def test_generate_draws_with_a_negative_prompt_given_or_read_from_the_prompt_file(tmp_path,
                                                                                 capsys):
    # A prompt file's negative prompts were dropped without a word, and `--prompt` had none.
    common = ["--steps", "2", "--cache", str(tmp_path / "cache")]
    drawn = {}
    for name, extra in [("plain", []), ("negative", ["--negative", "a blue square"])]:
        assert main(["generate", "--prompt", "a red circle", "--seeds", "0-1", *common,
                     *extra, "--out", str(tmp_path / name)]) == 0
        manifest = pd.read_csv(tmp_path / name / "manifest.csv", keep_default_na=False)
        assert set(manifest.negative) == {extra[1] if extra else ""}
        drawn[name] = [np.asarray(Image.open(tmp_path / name / f)) for f in manifest.file]
    assert not np.array_equal(drawn["plain"][0], drawn["negative"][0])  # guidance steered
    for column in ("negative", "negative_prompt"):
        prompts = tmp_path / f"{column}.csv"
        pd.DataFrame({"prompt": ["a red circle"] * 2, "seed": [0, 1],
                      column: ["a blue square", ""]}).to_csv(prompts, index=False)
        assert main(["generate", "--prompts", str(prompts), *common,
                     "--out", str(tmp_path / column)]) == 0
        manifest = pd.read_csv(tmp_path / column / "manifest.csv", keep_default_na=False)
        assert list(manifest.negative) == ["a blue square", ""]
        from_file = [np.asarray(Image.open(tmp_path / column / f)) for f in manifest.file]
        assert np.array_equal(from_file[0], drawn["negative"][0])  # as --negative drew it
        assert np.array_equal(from_file[1], drawn["plain"][1])  # an empty cell: none
    capsys.readouterr()
    assert main(["generate", "--prompts", str(prompts), "--negative", "x", *common,
                 "--out", str(tmp_path / "both")]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --negative is for --prompt; a --prompts file gives its images' negative "
        "prompts in a 'negative' column")


def test_the_readmes_tour_of_erase_generate_score_export_runs_as_written(tmp_path, capsys,
                                                                        monkeypatch):
    # The tour drew only the cat's images, which `score --task mock` refused (it scores the
    # dog's too), and on the miniature world's model, not the mock task's.
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    lines = [line.split("  #")[0] for line in readme.splitlines()
             if line.startswith("erasebench ") and ("cat" in line or "--task mock" in line)]
    assert [shlex.split(line)[1] for line in lines] == ["erase", "generate", "generate",
                                                        "score", "export"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ERASEBENCH_CACHE", str(tmp_path / "cache"))
    for line in lines:
        assert main(shlex.split(line)[1:]) == 0, line
        if "score" in line:
            scored = capsys.readouterr()
            assert scored.err == ""  # drawn as the mock task draws: no warning
            assert "change_erase" in scored.out and "change_preserve" in scored.out
    assert (tmp_path / "cat-erased" / "model_index.json").is_file()


def test_the_readmes_command_for_the_papers_tables_plans_the_images_it_counts(tmp_path,
                                                                             capsys):
    # The README sized the papers' tables (302,629 images, 84 erasures) with no command
    # that runs them; this one must plan just what it says.
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    command = readme.split("is one command")[1].split("```bash\n")[1].split("\n```")[0]
    argv = shlex.split(command.replace("\\\n", " "))
    assert argv[:2] == ["erasebench", "run"] and "--device" in argv
    # a dry run on a cluster not yet joined: nothing loaded, the hub cache not asked
    assert main([*argv[1:], "--dry-run", "--backend", "ray",
                 "--results", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    assert "128 work units, 128 to do: 328,144 images asked for, 302,629 distinct" in out
    assert "and 84 erasures" in out
    assert "302,629 images and 84 erasures" in readme


def test_scoring_a_folder_short_of_every_request_says_what_the_nearest_lacks(tmp_path,
                                                                              capsys):
    # Images drawn outside erasebench, or with a prompt left out, were refused with no word
    # of which request came close or which image it lacks.
    out = tmp_path / "cats"
    assert main(["generate", "--out", str(out), "--steps", "2", "--seeds", "0-3",
                 "--prompt", "a photo of a cat"]) == 0
    capsys.readouterr()
    assert main(["score", "--task", "mock", "--images", str(out)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {str(out)!r} does not hold all the prompts and seeds of any request of task "
        "'mock'; the nearest, request 'cat', has 4 of its 8 images, lacking e.g. 'a photo of "
        "a dog' seed 0")


def _scored(capsys) -> dict[tuple[str, str], float]:
    """(request, metric) -> value from the table `score` printed."""
    rows = [[cell.strip() for cell in line.split("│")[1:-1]]
            for line in capsys.readouterr().out.splitlines() if line.startswith("│")]
    return {(row[0], row[1]): float(row[3]) for row in rows if row[0] != "request"}


def _task_prompts(tmp_path, capsys, options):
    """`prompts` with ``options`` into tmp_path/prompts.csv: the file, what it printed
    (spaces folded) and the generate command it printed, up to its --edit."""
    prompts = tmp_path / "prompts.csv"
    assert main(["prompts", *options, "--out", str(prompts)]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    command = re.search(r"erasebench (generate .*?) --edit EDIT.safetensors --out IMAGES",
                        printed)
    assert command
    return prompts, printed, command.group(1)


def test_prompts_says_how_to_draw_the_original_models_images_a_task_compares_with(
        tmp_path, capsys):
    from erasebench.registry import TASKS
    from erasebench.specs import PromptSpec
    from erasebench.testing import MockTask

    # The mock task compares each image with the original model's of the same prompt.
    prompts, printed, command = _task_prompts(tmp_path, capsys, ["--task", "mock"])
    assert ("and the original model's images of the same prompts, which its scoring compares "
            f"with, without an edit: erasebench {command} --out BASE and score them: "
            "erasebench score --task mock --images IMAGES --reference BASE (images") in printed
    # A task that compares with none says nothing of them.
    _, printed, _ = _task_prompts(tmp_path, capsys, ["--task", "shapes_objects",
                                                     "--task-config", "images_per_class=1"])
    assert "BASE" not in printed
    assert "erasebench score --task shapes_objects --task-config images_per_class=1 " \
        "--images IMAGES (images drawn" in printed

    class ComparesWithABird(MockTask):
        def reference_prompts(self, request):
            return [PromptSpec(text="a photo of a bird", seed=7)]

    # Original-model images of prompts the task's images do not have: a file of their own.
    TASKS.register("compares_with_a_bird")(ComparesWithABird)
    try:
        prompts, printed, command = _task_prompts(tmp_path, capsys,
                                                  ["--task", "compares_with_a_bird"])
    finally:
        TASKS.unregister("compares_with_a_bird")
    birds = tmp_path / "prompts.reference.csv"
    assert pd.read_csv(birds)[["prompt", "seed"]].values.tolist() == [["a photo of a bird", 7]]
    assert len(pd.read_csv(prompts)) == 8
    assert f"to {prompts}, and the 1 its scoring compares with to {birds}. To draw" in printed
    assert ("and the original model's images of prompts.reference.csv's prompts, which its "
            f"scoring compares with, without an edit: erasebench "
            f"{command.replace(str(prompts), str(birds))} --out BASE") in printed


def test_a_tasks_prompts_drawn_with_an_edit_are_scored_for_the_request_it_was_made_for(
        tmp_path, capsys):
    # The four splits of shapes_objects prompt alike, so a folder of one edit's images held
    # every split's prompts and was scored as all four (three of them for classes the edit
    # never erased); and `score` gave its scorer the device 'auto', which torch refuses.
    cache = ["--cache", str(tmp_path / "cache")]
    options = ["--task", "shapes_objects", "--task-config", "images_per_class=2"]
    prompts, printed, command = _task_prompts(tmp_path, capsys, options)
    table = pd.read_csv(prompts)
    assert list(table.columns) == ["prompt", "seed", "guidance", "label"]
    assert len(table) == 20 and table.label.value_counts().eq(2).all()  # 10 classes, once
    assert "--model shapes --scheduler dpm --steps 6" in command
    assert ("erasebench score --task shapes_objects --task-config images_per_class=2 --images "
            "IMAGES" in printed)
    draw = [*command.split(), *cache]
    split_1 = ["triangle", "cross", "heart", "diamond", "ring"]
    edit = tmp_path / "uce.safetensors"
    assert main(["erase", "--eraser", "uce", "--model", "shapes", "--out", str(edit),
                 *[word for concept in split_1 for word in ("--concept", concept)]]) == 0
    assert main([*draw, "--out", str(tmp_path / "base")]) == 0
    assert main([*draw, "--edit", str(edit), "--out", str(tmp_path / "erased")]) == 0
    capsys.readouterr()

    assert main(["score", *options, "--images", str(tmp_path / "base")]) == 0
    base = _scored(capsys)  # the original model's images answer every split
    assert {request for request, _ in base} == {"split 1", "split 2", "split 3", "split 4"}
    scores = tmp_path / "scores.csv"
    assert main(["score", *options, "--images", str(tmp_path / "erased"),
                 "--out", str(scores)]) == 0
    erased = _scored(capsys)
    assert {request for request, _ in erased} == {"split 1"}
    assert erased["split 1", "ESR-1"] >= base["split 1", "ESR-1"] + 50  # the classes are gone
    # Each rate over images comes with its bootstrap interval: 5 classes x 2 images erased,
    # as many preserved; a rate of 0 or 100 has every image alike, nothing to resample.
    rates = pd.read_csv(scores).query("metric in ['ESR-1', 'ESR-5', 'PSR-1', 'PSR-5']")
    assert len(rates) == 4 and (rates.images_scored == 10).all()
    assert ((rates.low >= 0) & (rates.low <= rates.value) & (rates.value <= rates.high)
            & (rates.high <= 100)).all()
    alike = rates.value.isin([0, 100])
    assert ((rates.low == rates.value) & (rates.high == rates.value))[alike].all()
    assert (rates.low < rates.high)[~alike].all()
    assert main(["score", *options, "--images", str(tmp_path / "erased"),
                 "--request", "split 2"]) == 0
    assert {request for request, _ in _scored(capsys)} == {"split 2"}
    assert main(["score", *options, "--images", str(tmp_path / "erased"),
                 "--request", "split 9"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: task 'shapes_objects' has no request 'split 9'; its requests: 'split 1', "
        "'split 2', 'split 3', 'split 4'")

    manifest = tmp_path / "erased" / "manifest.csv"
    frame = pd.read_csv(manifest)
    frame.assign(erased=json.dumps([c.upper() for c in split_1])).to_csv(manifest, index=False)
    assert main(["score", *options, "--images", str(tmp_path / "erased")]) == 0
    assert {request for request, _ in _scored(capsys)} == {"split 1"}  # names in any case
    frame.assign(erased='["circle"]').to_csv(manifest, index=False)
    assert main(["score", *options, "--images", str(tmp_path / "erased")]) == 2
    assert ("an edit that erased circle, and no request of task 'shapes_objects' erases just "
            "that (its requests: 'split 1': triangle, cross, heart, diamond, ring;"
            in capsys.readouterr().err)
    frame.assign(erased=['["circle"]'] + ['["ring"]'] * (len(frame) - 1)).to_csv(manifest,
                                                                               index=False)
    assert main(["score", *options, "--images", str(tmp_path / "erased")]) == 2
    assert "edits that erased different concepts (circle, ring)" in capsys.readouterr().err
    frame.assign(erased='"circle"').to_csv(manifest, index=False)  # a string, not a list
    assert main(["score", *options, "--images", str(tmp_path / "erased")]) == 2
    assert ("""the 'erased' column holds '"circle"', not a JSON list of concepts"""
            in capsys.readouterr().err)
    # Images drawn elsewhere: a manifest that does not say, scored for every request
    frame.drop(columns="erased").to_csv(manifest, index=False)
    assert main(["score", *options, "--images", str(tmp_path / "erased")]) == 0
    assert len({request for request, _ in _scored(capsys)}) == 4


def test_images_drawn_otherwise_than_the_task_draws_are_scored_with_a_warning_naming_how(
        tmp_path, capsys):
    # Images drawn with another model, sampler, steps or guidance than the task's were
    # scored without a word, their numbers read as if they were the task's.
    cache = ["--cache", str(tmp_path / "cache")]
    options = ["--task", "shapes_objects", "--task-config", "images_per_class=1"]
    prompts, _, command = _task_prompts(tmp_path, capsys, options)
    alike, otherwise = tmp_path / "alike", tmp_path / "otherwise"
    assert main([*command.split(), *cache, "--out", str(alike)]) == 0
    capsys.readouterr()
    assert main(["score", *options, "--images", str(alike)]) == 0
    assert capsys.readouterr().err == ""  # drawn as the task draws: nothing to say

    own_guidance = tmp_path / "own-guidance.csv"
    pd.read_csv(prompts).drop(columns="guidance").to_csv(own_guidance, index=False)
    assert main(["generate", "--prompts", str(own_guidance), "--model", "shapes", "--steps",
                 "2", "--guidance", "3", *cache, "--out", str(otherwise)]) == 0
    capsys.readouterr()
    assert main(["score", *options, "--images", str(otherwise)]) == 0
    scored = capsys.readouterr()
    assert "ESR-1" in scored.out  # scored all the same
    warning = " ".join(scored.err.split())
    assert warning.startswith(f"warning: the images in {str(otherwise)!r} were drawn otherwise "
                              "than task 'shapes_objects' draws its own: scheduler ddim (the "
                              "task's dpm); steps 2 (the task's 6); guidance 3 for 10 of 10 "
                              "images (the task's 4 for e.g. 'a red circle' seed ")
    assert "`erasebench prompts --task shapes_objects` prints the command" in warning

    manifest = alike / "manifest.csv"
    frame = pd.read_csv(manifest)
    frame.assign(model="tiny").to_csv(manifest, index=False)
    assert main(["score", *options, "--images", str(alike)]) == 0
    assert "drawn otherwise than task 'shapes_objects' draws its own: model tiny (the task's " \
        "shapes). Their numbers" in " ".join(capsys.readouterr().err.split())
    frame.assign(negative="blurry").to_csv(manifest, index=False)
    assert main(["score", *options, "--images", str(alike)]) == 0
    assert ("draws its own: negative prompt 'blurry' for 10 of 10 images (the task's '' for "
            "e.g. 'a red circle' seed ") in " ".join(capsys.readouterr().err.split())
    # A folder of the model's own, perhaps a copy of it: taken at its word.
    frame.assign(model=str(tmp_path / "copy-of-shapes")).to_csv(manifest, index=False)
    assert main(["score", *options, "--images", str(alike)]) == 0
    assert capsys.readouterr().err == ""
    # Drawn elsewhere, with no word of how: nothing to compare.
    manifest = otherwise / "manifest.csv"
    pd.read_csv(manifest)[["file", "prompt", "seed"]].to_csv(manifest, index=False)
    assert main(["score", *options, "--images", str(otherwise)]) == 0
    assert capsys.readouterr().err == ""


def test_a_task_drawn_at_height_x_width_is_drawn_so_by_the_command_prompts_prints(
        tmp_path, capsys, monkeypatch):
    # --size took one side, and `prompts` left a task's non-square size out of the generate
    # command it printed: its images came out square, and scored with a warning.
    from PIL import Image

    from erasebench.specs import GenerationSpec
    from erasebench.testing import MockTask

    monkeypatch.setattr(MockTask, "generation",
                        lambda self: GenerationSpec(steps=4, guidance=5.0, height=32, width=48))
    _, _, command = _task_prompts(tmp_path, capsys, ["--task", "mock"])
    assert "--size 32x48" in command
    images = tmp_path / "images"
    assert main([*command.split(), "--cache", str(tmp_path / "cache"), "--out",
                 str(images)]) == 0
    assert Image.open(images / "00000.png").size == (48, 32)  # PIL: (width, height)
    assert pd.read_csv(images / "manifest.csv")["size"].unique().tolist() == ["32x48"]
    capsys.readouterr()
    assert main(["score", "--task", "mock", "--images", str(images), "--reference",
                 str(images)]) == 0
    assert capsys.readouterr().err == ""


def test_images_drawn_at_another_size_than_the_tasks_are_scored_with_a_warning(tmp_path,
                                                                             capsys):
    # The scorers resize what they are given: a folder drawn at 256 px for an SD task was
    # scored without a word, its numbers read as the task's 512 px ones.
    cache = ["--cache", str(tmp_path / "cache")]
    _, _, command = _task_prompts(tmp_path, capsys, ["--task", "mock"])
    named, larger = tmp_path / "named", tmp_path / "larger"
    # The tiny model's own size (the mock task asks for none) asked for by name
    assert main([*command.split(), *cache, "--size", "32", "--out", str(named)]) == 0
    assert main([*command.split(), *cache, "--size", "64", "--out", str(larger)]) == 0
    capsys.readouterr()
    # (the mock task compares each image with the original model's, pixel by pixel)
    assert main(["score", "--task", "mock", "--images", str(named), "--reference",
                 str(named)]) == 0
    assert capsys.readouterr().err == ""
    assert main(["score", "--task", "mock", "--images", str(larger), "--reference",
                 str(larger)]) == 0
    assert "draws its own: size 64x64 (the task's 32x32). Their numbers" in \
        " ".join(capsys.readouterr().err.split())


def test_reference_images_drawn_with_an_edit_or_otherwise_are_named_in_a_warning(tmp_path,
                                                                                capsys):
    # LPIPS, FID and the mock task's change measure against the --reference folder, which
    # was taken as the original model's drawn as the task draws without a look.
    cache = ["--cache", str(tmp_path / "cache")]
    _, _, command = _task_prompts(tmp_path, capsys, ["--task", "mock"])
    edit = tmp_path / "edit.safetensors"
    assert main(["erase", "--eraser", "mock", "--concept", "cat", "--model", "tiny", "--out",
                 str(edit)]) == 0
    base, edited, fewer = tmp_path / "base", tmp_path / "edited", tmp_path / "fewer"
    assert main([*command.split(), *cache, "--out", str(base)]) == 0
    assert main([*command.split(), *cache, "--edit", str(edit), "--out", str(edited)]) == 0
    assert main([*command.split(), "--steps", "2", *cache, "--out", str(fewer)]) == 0
    capsys.readouterr()

    def warning(reference):
        assert main(["score", "--task", "mock", "--images", str(edited), "--reference",
                     str(reference)]) == 0
        return " ".join(capsys.readouterr().err.split())

    assert warning(base) == ""
    assert warning(edited) == (
        f"warning: the reference images in {str(edited)!r} were drawn otherwise than task "
        "'mock' draws its own: with an edit that erased cat (the original model's have none). "
        "The numbers measured against them do not compare with the task's in a run or on the "
        "leaderboard; `erasebench prompts --task mock` prints the command that draws them as "
        "the task does.")
    assert "the reference images in" in warning(fewer)
    assert "draws its own: steps 2 (the task's 4). The numbers measured" in warning(fewer)
    # A task that compares with none reads none: nothing to say of the folder given
    options = ["--task", "shapes_objects", "--task-config", "images_per_class=1"]
    _, _, command = _task_prompts(tmp_path, capsys, options)
    shapes = tmp_path / "shapes"
    assert main([*command.split(), *cache, "--out", str(shapes)]) == 0
    capsys.readouterr()
    assert main(["score", *options, "--images", str(shapes), "--reference", str(edited)]) == 0
    assert capsys.readouterr().err == ""


def test_reference_images_drawn_in_another_precision_are_named_in_a_warning(tmp_path,
                                                                           capsys):
    # The mock task's change, LPIPS and FID measure the images against the reference; drawn
    # in bf16 against fp32 ones, what the precision moves was counted as the edit's.
    cache = ["--cache", str(tmp_path / "cache")]
    _, _, command = _task_prompts(tmp_path, capsys, ["--task", "mock"])
    auto, half = tmp_path / "auto", tmp_path / "bf16"
    assert main([*command.split(), *cache, "--out", str(auto)]) == 0
    assert main([*command.split(), "--precision", "bf16", *cache, "--out", str(half)]) == 0
    capsys.readouterr()
    assert pd.read_csv(auto / "manifest.csv").precision.unique().tolist() == ["fp32"]  # CPU

    def warning(images, reference):
        assert main(["score", "--task", "mock", "--images", str(images), "--reference",
                     str(reference)]) == 0
        return " ".join(capsys.readouterr().err.split())

    assert warning(auto, auto) == ""
    assert warning(auto, half) == (
        f"warning: the images in {str(auto)!r} were drawn in fp32 and the reference images in "
        f"{str(half)!r} in bf16: the numbers measured between them count what the precision "
        "changes as the edit's doing; draw both in one precision (`erasebench generate "
        "--precision`)")
    assert "were drawn in bf16 and the reference images" in warning(half, auto)
    # A manifest that does not say (written before the column, or by other code): no word
    manifest = half / "manifest.csv"
    pd.read_csv(manifest).drop(columns="precision").to_csv(manifest, index=False)
    assert warning(auto, half) == ""


def test_search_history_shows_the_search_and_draws_its_strip(tmp_path, capsys):
    edit = tmp_path / "ap.safetensors"
    assert main(["erase", "--eraser", "ap", "--concept", "circle", "--out", str(edit),
                 "--config", "iterations=4", "--config", "records=4"]) == 0
    capsys.readouterr()
    strip = tmp_path / "strip.png"
    assert main(["search-history", str(edit), "--strip", str(strip), "--columns", "2"]) == 0
    out = capsys.readouterr().out
    assert "search while erasing 'circle'" in out and "drawn most" in out
    drawn = EditedModel.load(edit).notes["search"]["circle"]["drawn_counts"]
    with Image.open(strip) as image:  # erased concept + up to 2 found; original over edited
        assert image.size == (96 * (1 + min(2, len(drawn))), 2 * 96 + 14)

    plain = tmp_path / "mock.safetensors"
    assert main(["erase", "--eraser", "mock", "--concept", "cat", "--out", str(plain)]) == 0
    capsys.readouterr()
    assert main(["search-history", str(plain)]) == 2
    assert "no search history" in capsys.readouterr().err


def test_help_documents_every_option(capsys):
    for command in ["run", "erase", "generate", "score", "report", "export", "list",
                    "search-history", "prompts", "timings", "weights"]:
        assert main([command, "--help"]) == 0
        text = capsys.readouterr().out
        assert "--" in text


def test_no_help_text_loses_words_to_rich_markup(capsys):
    # typer renders help as rich markup: an unescaped "[ray]" (in "erasebench[ray]") is read
    # as a style and vanishes from what the user sees.
    import typer
    from rich.text import Text

    from erasebench.cli import app

    commands = typer.main.get_command(app).commands
    texts = {f"{name} {getattr(param, 'name', '')}": getattr(param, "help", None) or ""
             for name, command in commands.items() for param in [command, *command.params]}
    eaten = {where: text for where, text in texts.items()
             if Text.from_markup(text).plain != text.replace("\\[", "[")}
    assert not eaten
    assert main(["run", "--help"]) == 0
    assert "erasebench[ray]" in re.sub(r"[\s│]+", "", capsys.readouterr().out)


def test_each_command_is_summed_up_in_one_line_and_its_help_has_no_source_line_breaks():
    # `erasebench --help` lists a command by its docstring's first paragraph, line breaks
    # kept (typer's rich mode): one broken over two lines read "the units,| erasures made";
    # `timings --help` read "scoring's|time|against", its paragraph's lines wrapped again.
    import typer

    from erasebench.cli import app

    commands = typer.main.get_command(app).commands
    paragraphs = {name: (command.help or "").strip().split("\n\n")
                  for name, command in commands.items()}
    assert all(texts[0] for texts in paragraphs.values())
    assert {name: texts for name, texts in paragraphs.items()
            if any("\n" in text for text in texts)} == {}
    assert len(paragraphs["timings"]) == 2 and "scoring's time against" in paragraphs["timings"][1]


def test_paths_with_brackets_are_printed_whole(tmp_path, capsys):
    # rich reads "[b]" as a style: printed as markup, "runs[b]" would read "runs".
    runs = tmp_path / "runs[b]"
    assert main(["run", "--model", "tiny", "--erasers", "sd", "--tasks", "mock", "--steps",
                 "2", "--workers", "1", "--results", str(runs / "results"), "--cache",
                 str(runs / "cache"), "--leaderboard", str(runs / "leaderboard.md")]) == 0
    out = capsys.readouterr().out
    assert f"results in {runs / 'results'}/" in out
    assert f"wrote {runs / 'leaderboard.md'}" in out
    assert main(["report", "--results", str(runs / "results"), "--out",
                 str(runs / "board.md")]) == 0
    assert f"wrote {runs / 'board.md'}" in capsys.readouterr().out


def test_a_gpu_asked_of_a_machine_without_one_stops_before_any_work(tmp_path, capsys,
                                                                  monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    common = ["--model", "tiny", "--tasks", "mock", "--steps", "2", "--results",
              str(tmp_path / "results"), "--cache", str(tmp_path / "cache")]
    assert main(["run", "--erasers", "sd", "--device", "cuda", *common]) == 2
    assert "error: --device cuda: torch sees no GPU on this machine" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()
    assert main(["erase", "--eraser", "uce", "--concept", "cat", "--model", "tiny", "--out",
                 str(tmp_path / "uce.safetensors"), "--device", "cuda:0"]) == 2
    assert "error: --device cuda:0: torch sees no GPU" in capsys.readouterr().err
    # A dry run may price a run meant for a GPU machine.
    assert main(["run", "--erasers", "sd", "--device", "cuda", "--dry-run", *common]) == 0
    assert main(["run", "--erasers", "sd", "--device", "gpu", "--dry-run", *common]) == 2
    assert "--device 'gpu' is not a device erasebench runs on" in capsys.readouterr().err


def test_report_on_a_damaged_result_file_names_it(tmp_path, capsys):
    runs = tmp_path / "results" / "runs"
    runs.mkdir(parents=True)
    (runs / "0123.json").write_text('{"schema_version": 1, "run_id": ')
    assert main(["report", "--results", str(tmp_path / "results"),
                 "--out", str(tmp_path / "board.md")]) == 2
    assert "0123.json" in capsys.readouterr().err
    assert not (tmp_path / "board.md").exists()


def test_timings_of_records_written_before_they_were_kept_is_a_clear_error(
        tmp_path, capsys, make_record):
    ResultStore(tmp_path).write(make_record("sd"))  # no timings, as version 1 wrote them
    assert main(["timings", "--results", str(tmp_path)]) == 2
    assert "no record in" in capsys.readouterr().err


def test_run_into_a_results_folder_of_a_newer_schema_writes_nothing(tmp_path, capsys):
    runs = tmp_path / "results" / "runs"
    runs.mkdir(parents=True)
    (runs / "0123.json").write_text('{"schema_version": 99, "run_id": "0123"}')
    before = sorted(tmp_path.rglob("*"))
    argv = ["run", "--model", "tiny", "--erasers", "sd", "--tasks", "mock", "--steps", "2",
            "--results", str(tmp_path / "results"), "--cache", str(tmp_path / "cache")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "schema version 99" in err and "upgrade erasebench" in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(tmp_path.rglob("*")) == before


def test_list_verbose_shows_a_broken_plugin_without_hiding_the_others(capsys, monkeypatch):
    from erasebench.registry import TASKS

    TASKS.names()  # discover first, then add a plugin whose module does not exist
    monkeypatch.setitem(TASKS._entries, "broken", "erasebench_no_such_module:Task")
    assert main(["list", "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "failed to import" in out and "erasebench_no_such_module" in out
    assert "mock" in out and "sd" in out


def test_dry_run_estimates_the_time_left_at_the_pace_of_the_recorded_units(tmp_path, capsys):
    from erasebench.run_progress import format_duration

    results = tmp_path / "results"
    common = ["--model", "tiny", "--tasks", "mock", "--steps", "2", "--workers", "1",
              "--results", str(results), "--cache", str(tmp_path / "cache")]
    assert main(["run", "--erasers", "sd,mock", "--dry-run", *common]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "  time left: no recorded unit has timings yet, so no pace to estimate it from; a "
        "run's progress line estimates it from its first finished unit on")
    assert main(["run", "--erasers", "sd", "--no-report", *common]) == 0
    (record,) = ResultStore(results).records()
    timings = record.provenance.timings
    capsys.readouterr()
    assert main(["run", "--erasers", "sd,mock", "--dry-run", *common]) == 0
    *units, _, _, estimate = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in units] == ["done", "todo"]
    # The mock unit asks for as many images as sd's did, at sd's seconds per image; the
    # mock eraser's erasure has no eraser's time to go by yet (sd makes none), and says so.
    seconds = timings.images + timings.scoring + (0 if timings.erasure_trained else timings.erasure)
    assert estimate == (f"  time left: about {format_duration(seconds)} on 1 process, 8 images "
                        "to draw (those no recorded unit asked for; --check-cache looks in the "
                        "image cache), at the pace of the 1 recorded unit with timings, made on "
                        f"{describe_device('cpu')} (erasures of mock not counted: none timed "
                        "yet)")


def test_units_none_recorded_yet_take_the_pace_of_the_folders_units_of_their_tasks(
        tmp_path, capsys):
    # A new eraser setting's (or a new eraser's) units were priced at nothing, "no recorded
    # unit has timings yet", in a folder of units of the same tasks that had.
    from erasebench.run_progress import format_duration

    common = ["--model", "tiny", "--tasks", "mock", "--steps", "2", "--workers", "1",
              "--results", str(tmp_path / "results"), "--cache", str(tmp_path / "cache"),
              "--no-report"]
    assert main(["run", "--erasers", "mock", *common]) == 0
    (record,) = ResultStore(tmp_path / "results").records()
    timings = record.provenance.timings
    assert timings.erasure_trained and timings.own_images_drawn(record.image_count)
    capsys.readouterr()
    assert main(["run", "--erasers", "mock", "--eraser-config", "mock.strength=0.5",
                 "--dry-run", *common]) == 0
    *_, estimate = capsys.readouterr().out.splitlines()
    # As many images as the recorded unit drew, at its seconds per image; its erasure at
    # what the same eraser's took. Its scoring's 8 original-model images count as to draw
    # (a unit of another plan drew them: --check-cache would find them), at the drawing
    # pace, which the scoring's pace leaves out (to none where they were drawn faster).
    drawing = timings.images_less_waiting()
    scoring_itself = max(0.0, timings.scoring - drawing)
    seconds = 2 * drawing + scoring_itself + timings.erasure
    assert timings.scoring_drawn == 8
    assert estimate == (f"  time left: about {format_duration(seconds)} on 1 process, 16 images "
                        "to draw (those no recorded unit asked for; --check-cache looks in the "
                        "image cache), at the pace of the 1 unit of these tasks recorded with "
                        f"other settings, made on {describe_device('cpu')}")
    # Units drawn otherwise (other steps) set no pace for these.
    assert main(["run", "--erasers", "mock", "--eraser-config", "mock.strength=0.5",
                 "--dry-run", *common, "--steps", "3"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(
        "  time left: no recorded unit has timings yet")
    # The run itself says the time left from its start, at the same pace, less the scoring's
    # 8 original-model images, which it finds in the cache (the dry run priced them as to
    # draw; equal to the unit's own 8, they cost its drawing seconds).
    assert main(["run", "--erasers", "mock", "--eraser-config", "mock.strength=0.5",
                 *common]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "in the caches: 8 of the 16 distinct images of the units to do" in out
    run_seconds = drawing + scoring_itself + timings.erasure
    assert (f"about {format_duration(run_seconds)} left at the pace of the 1 unit of these "
            "tasks recorded before with other settings") in out


def test_dry_run_and_run_take_the_pace_of_the_units_recorded_on_their_own_device(tmp_path,
                                                                                 capsys):
    # sd's and mock's units recorded, mock's as if on a GPU: a run of them and uce's prices
    # uce's unit at sd's unit's pace alone, and says the other was left out.
    common = ["--model", "tiny", "--tasks", "mock", "--steps", "2", "--workers", "1",
              "--results", str(tmp_path / "results"), "--cache", str(tmp_path / "cache"),
              "--no-report"]
    assert main(["run", "--erasers", "sd,mock", *common]) == 0
    store = ResultStore(tmp_path / "results")
    [mock] = [record for record in store.records() if record.spec.eraser.name == "mock"]
    mock.provenance.device = "cuda (NVIDIA H100 80GB HBM3)"
    store.write(mock)
    capsys.readouterr()
    assert main(["run", "--erasers", "sd,mock,uce", "--dry-run", *common]) == 0
    estimate = " ".join(capsys.readouterr().out.split())
    assert (f"at the pace of the 1 recorded unit with timings, made on {describe_device('cpu')} "
            "(1 recorded on other devices left out)") in estimate
    # Priced for a GPU run from a machine without one, which names its device "cuda": at
    # the pace of the units recorded on a GPU, whatever its kind.
    assert main(["run", "--erasers", "sd,mock,uce", "--dry-run", "--device", "cuda",
                 *common]) == 0
    estimate = " ".join(capsys.readouterr().out.split())
    assert ("at the pace of the 1 recorded unit with timings, made on cuda (NVIDIA H100 80GB "
            "HBM3) (1 recorded on other devices left out)") in estimate
    assert main(["run", "--erasers", "sd,mock,uce", *common]) == 0
    assert (f"left at the pace of the 1 unit recorded before on {describe_device('cpu')} (1 "
            "recorded on other devices left out)") in " ".join(capsys.readouterr().out.split())


def test_dry_run_counts_the_original_models_images_the_scoring_draws(tmp_path, capsys):
    # The mock task compares each image with the original model's: without sd among the
    # erasers, its scoring draws them (a plugin's eraser run on its own).
    common = ["--model", "tiny", "--tasks", "mock", "--steps", "2", "--dry-run",
              "--results", str(tmp_path / "results"), "--cache", str(tmp_path / "cache")]
    assert main(["run", "--erasers", "mock", *common]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert ("1 work unit, 1 to do: 8 images asked for and 8 of the original model's that "
            "their scoring compares with, 16 distinct (16 for the units to do)") in out
    assert "to draw with tiny: 16 images, 2 steps" in out
    assert main(["run", "--erasers", "sd,mock", *common]) == 0  # sd's images are they
    out = " ".join(capsys.readouterr().out.split())
    assert "2 work units, 2 to do: 16 images asked for, 16 distinct (16 for the" in out
    assert not (tmp_path / "results").exists()


def test_dry_run_counts_what_the_caches_hold(tmp_path, capsys):
    from erasebench.run_progress import format_duration

    common = ["--model", "tiny", "--tasks", "mock", "--steps", "2", "--workers", "1",
              "--cache", str(tmp_path / "cache"), "--no-report"]
    planned = ["run", "--erasers", "sd,mock", "--results", str(tmp_path / "planned"), *common]

    def held() -> str:
        capsys.readouterr()
        assert main([*planned, "--dry-run", "--check-cache"]) == 0
        lines = capsys.readouterr().out.splitlines()
        (line,) = [line for line in lines if line.startswith("  in the caches: ")]
        spaces.append(lines[lines.index(line) + 1])
        return line.removeprefix("  in the caches: ")

    spaces: list[str] = []  # the image cache's line after each check

    # Each unit asks for 8 images (4 of a cat, 4 of a dog): sd's are the tiny model's, the
    # mock eraser's its edited model's, 16 in all.
    assert held() == "0 of the 16 distinct images of the units to do, 0 of their 1 erasures"
    assert main(["run", "--erasers", "sd", "--results", str(tmp_path / "other"), *common]) == 0
    assert held() == "8 of the 16 distinct images of the units to do, 0 of their 1 erasures"
    assert main(["run", "--erasers", "mock", "--results", str(tmp_path / "other"), *common]) == 0
    assert held() == "16 of the 16 distinct images of the units to do, 1 of their 1 erasures"
    assert not (tmp_path / "planned").exists()
    # The images to draw sized by the cached ones of their size: none cached at first; the
    # mock erasure's edit, until it is made, by the 4 attn2.to_v weights of the tiny model
    # it may change (32x32 floats each: 4 x 4,096 bytes), their names' header entries
    # (4 x 96 and their lengths: 66 to 70) and 8,192 for the metadata: 25,232 bytes.
    edit = "; 1 erasure to make, about 25.2 kB; "
    assert spaces[0].startswith("  cache space: 16 images to draw (32x32: none cached yet to "
                                f"size them by){edit}")
    assert spaces[1].startswith("  cache space: 8 images to draw, about ")
    assert "(32x32: " in spaces[1] and f"each, the mean of 8 cached){edit}" in spaces[1]
    assert spaces[2].startswith("  cache space: no images to draw; ") and edit not in spaces[2]

    # sd's unit run into the planned folder reads its 8 images: no pace for drawing yet.
    assert main([*planned[:2], "sd", *planned[3:]]) == 0
    capsys.readouterr()
    assert main([*planned, "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "  time left: 8 images to draw (those no recorded unit asked for; --check-cache looks "
        "in the image cache), and no recorded unit with timings drew images, so no pace to "
        "price them at; a run's progress line estimates it once one has")
    # Looking in the caches, the mock unit has none to draw, its erasure made: its 8
    # images are read and scored at sd's unit's pace.
    assert main([*planned, "--dry-run", "--check-cache"]) == 0
    (record,) = ResultStore(tmp_path / "planned").records()
    sd = record.provenance.timings
    assert sd.images_drawn == 0
    seconds = sd.images + sd.scoring + (0 if sd.erasure_trained else sd.erasure)
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"  time left: about {format_duration(seconds)} on 1 process, 0 images to draw (the "
        "rest in the image cache), at the pace of the 1 recorded unit with timings, made on "
        f"{describe_device('cpu')}")

    assert main([*planned, "--check-cache"]) == 2
    assert "--check-cache goes with --dry-run" in capsys.readouterr().err


def test_dry_run_prices_the_training_checkpoints_one_per_process(tmp_path, capsys, tiny):
    # ESD-u's and ESD-x's trainings keep checkpoints until their edits are saved, twice the
    # file while it is rewritten; the mock eraser's keeps none. One process trains one
    # erasure at a time: on 1 process ESD-u's is the most there is at once, on 2 both.
    from rich.filesize import decimal

    from erasebench.cached_work import checkpoint_size

    esd_u, esd_x = (checkpoint_size(ERASERS.get(name)(preset="tiny"), tiny)
                    for name in ("esd_u", "esd_x"))
    assert esd_u > 10 * esd_x > 0 and checkpoint_size(ERASERS.get("mock")(), tiny) == 0
    for workers, expected in (("1", 2 * esd_u), ("2", 2 * (esd_u + esd_x))):
        assert main(["run", "--erasers", "esd_x,esd_u,mock", "--model", "tiny", "--tasks",
                     "mock", "--steps", "2", "--workers", workers, "--results",
                     str(tmp_path / "results"), "--cache", str(tmp_path / "cache"),
                     "--dry-run", "--check-cache"]) == 0
        (line,) = [line for line in capsys.readouterr().out.splitlines()
                   if line.startswith("  cache space: ")]
        assert "; 3 erasures to make, about " in line
        assert (f", and their trainings' checkpoints up to {decimal(expected)} while they "
                "are made; ") in line, line


def test_a_run_warns_when_the_images_to_draw_may_not_fit_on_the_cache_disk(
        tmp_path, capsys, monkeypatch):
    from erasebench import cache_space

    monkeypatch.setattr(cache_space, "free_bytes", lambda path: 100)
    common = ["--model", "tiny", "--tasks", "mock", "--steps", "2", "--workers", "1",
              "--results", str(tmp_path / "results"), "--cache", str(tmp_path / "cache"),
              "--no-report"]
    # No image of the tiny model's size cached yet: nothing to size the 8 by, no warning.
    assert main(["run", "--erasers", "sd", *common]) == 0
    assert "may run out of room" not in capsys.readouterr().err
    # sd's 8 cached images size the mock eraser's 8 at more than the 100 bytes free.
    assert main(["run", "--erasers", "mock", *common]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "may run out of room: 8 images to draw, about " in err
    assert "100 bytes free on its disk; a run that fills the disk stops, and resumes" in err
    assert len(ResultStore(tmp_path / "results").records()) == 2  # a warning only

    # On a fresh cache nothing sizes the 16 images at the start, and the mock erasure's
    # edit (about 25,232 bytes) fits in 100 bytes more; sd's unit draws 8, which size the
    # mock eraser's 8 still to draw: one warning, after it.
    monkeypatch.setattr(cache_space, "free_bytes", lambda path: 25_232 + 100)
    fresh = [arg if arg != str(tmp_path / "cache") else str(tmp_path / "fresh") for arg in common]
    fresh[fresh.index(str(tmp_path / "results"))] = str(tmp_path / "fresh_results")
    assert main(["run", "--erasers", "sd,mock", *fresh]) == 0
    out, err = capsys.readouterr()
    assert "16 images to draw" in " ".join(out.split())
    err = " ".join(err.split())
    assert err.count("may run out of room") == 1 and "room: 8 images to draw, about " in err


def test_run_without_arguments_plans_the_miniature_world(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--dry-run"]) == 0
    *lines, summary, setting, time_left = capsys.readouterr().out.splitlines()
    erasers = {name for name in ERASERS.names() if ERASERS.get(name).in_default_run}
    assert {"sd", "uce", "esd_x", "esd_u", "ap", "age"} <= erasers and "mock" not in erasers
    # 4 object splits + 2 textures + 5 graph rows, for every default eraser
    assert len(lines) == 11 * len(erasers)
    assert all(" todo " in line and line.endswith(" images") for line in lines)
    tasks = {line.split(" x ")[1].split(" [")[0] for line in lines}
    assert tasks == {"shapes_objects", "shapes_style", "shapes_graph"}
    asked = sum(int(line.rsplit("  ", 1)[1].split()[0].replace(",", "")) for line in lines)
    assert summary.startswith(f"{len(lines)} work units, {len(lines)} to do: {asked:,} images "
                              "asked for, ")
    assert setting.startswith("  to draw with shapes: ")
    assert time_left.startswith("  time left: no recorded unit has timings yet")
    assert not (tmp_path / "leaderboard.md").exists()  # a dry run writes nothing


# torch's words when a GPU runs out of memory (a 16 GB card), advice on its allocator last
OUT_OF_MEMORY = (
    "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 15.77 GiB "
    "of which 1.02 GiB is free. Including non-PyTorch memory, this process has 14.74 GiB "
    "memory in use. If reserved but unallocated memory is large try setting "
    "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.")


@pytest.mark.parametrize("doing, where, undone", [
    ("making its erasure", "erasebench.testing.MockEraser.erase", ["mock"]),
    ("drawing its images", "erasebench.generate.Generator._sample_and_fit", ["mock", "sd"]),
    ("scoring its images", "erasebench.testing.MockTask.score", ["mock", "sd"]),
])
def test_units_out_of_device_memory_are_named_left_undone_and_the_run_goes_on(
        doing, where, undone, tmp_path, capsys, monkeypatch):
    # An eraser that does not fit a GPU (ESD-u's 19.5 GB on a 16 GB card) ended the run in
    # torch's traceback, naming neither the unit nor what was kept, and stopped the units
    # that would fit. The drawing gives up at a batch of one image.
    common = ["--model", "tiny", "--tasks", "mock", "--steps", "2", "--workers", "1",
              "--results", str(tmp_path / "results"), "--cache", str(tmp_path / "cache"),
              "--no-report"]

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError(OUT_OF_MEMORY)

    with monkeypatch.context() as short_of_memory:
        short_of_memory.setattr(where, out_of_memory)
        assert main(["run", "--erasers", "mock,sd", *common]) == 1
    out, err = capsys.readouterr()
    *told, last = [line for line in err.splitlines()
                   if not line.startswith("warning: erasebench's source has uncommitted")]
    account = (f"on {describe_device('cpu')} {doing}: CUDA out of memory. Tried to allocate "
               "2.00 GiB. GPU 0 has a total capacity of 15.77 GiB of which 1.02 GiB is free")
    assert sorted(line.split("] ")[1].split(" x ")[0] for line in told) == undone
    assert all(line.startswith("  [out of memory] ") and line.endswith(
        f") {account}; left undone, the run goes on with the others") for line in told)
    assert last.startswith(f"error: {len(undone)} of the 2 units to do ran out of memory and "
                           f"{'are' if len(undone) > 1 else 'is'} left undone: ")
    assert (f"(the first {account}). The units recorded are kept; the same command runs just "
            "what is left, on a device with more memory free (no other process on it); "
            ) in last
    assert "PYTORCH_CUDA_ALLOC_CONF" not in err and "Traceback" not in err
    assert f", out of memory {len(undone)};" in out
    if len(undone) == 1:  # the unit that went on says how far the run is, without it
        assert "; 1/2 units, 8/16 images, 1 left undone\n" in out
    store = ResultStore(tmp_path / "results")
    recorded = sorted(record.spec.eraser.name for record in store.records())
    assert recorded == sorted({"mock", "sd"} - set(undone))  # the unit that fit went on
    assert main(["run", "--erasers", "mock,sd", *common]) == 0  # with the memory it needs
    assert sorted(record.spec.eraser.name for record in store.records()) == ["mock", "sd"]


def test_a_robustness_units_record_keeps_its_attacks_seconds_apart_and_timings_show_them(
        tmp_path, capsys):
    # The recovery attack is an optimisation, no scorer: counted in the scoring, it read as
    # a scorer 57 times slower than drawing the images on the committed records, against
    # issue 8's 10%.
    results = tmp_path / "results"
    assert main(["run", "--erasers", "token_filter", "--tasks", "robustness", "--workers",
                 "1", "--no-report", "--results", str(results), "--cache",
                 str(tmp_path / "cache"), "--task-config", "robustness.radii=[0.2]",
                 "--task-config", "robustness.steps=3", "--task-config", "robustness.samples=4",
                 "--task-config", 'robustness.task_options={"images_per_class": 2, '
                 '"splits": [["circle"]]}']) == 0
    (record,) = ResultStore(results).records()
    timings = record.provenance.timings
    assert 0 < timings.attacking < timings.scoring
    capsys.readouterr()
    assert main(["timings", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "scoring drew" in line)
    assert "scoring drew   attacks   scoring share" in header


def test_a_units_record_keeps_the_batch_its_drawing_ended_at_and_timings_show_it(
        tmp_path, capsys, monkeypatch):
    # On a GPU images/s follows the batch, which out of memory halves: a unit drawn slowly
    # at batch 8 after running out at 64 read as a slow GPU.
    from erasebench.generate import Generator

    original = Generator.sample

    def with_room_for_two(self, prompts, conditioning=None):
        if len(prompts) > 2:
            raise torch.OutOfMemoryError(OUT_OF_MEMORY)
        return original(self, prompts, conditioning)

    monkeypatch.setattr(Generator, "sample", with_room_for_two)
    common = ["--model", "tiny", "--tasks", "mock", "--steps", "2", "--workers", "1",
              "--cache", str(tmp_path / "cache"), "--no-report", "--batch-size", "8"]
    for results in ("first", "again"):  # again: a results folder whose images are cached
        assert main(["run", "--erasers", "sd", "--results", str(tmp_path / results),
                     *common]) == 0
    (drawing,) = ResultStore(tmp_path / "first").records()
    (reading,) = ResultStore(tmp_path / "again").records()
    assert (drawing.provenance.timings.images_drawn, drawing.provenance.timings.batch) == (8, 2)
    assert (reading.provenance.timings.images_drawn, reading.provenance.timings.batch) == (0, None)
    assert "batch" not in json.loads(ResultStore(tmp_path / "again").path(
        reading.run_id).read_text())["provenance"]["timings"]
    monkeypatch.undo()  # memory enough: a batch of 64 asked for, 8 images drawn in one
    assert main(["run", "--erasers", "mock", "--results", str(tmp_path / "more"),
                 *common[:-1], "64"]) == 0
    assert ResultStore(tmp_path / "more").records()[0].provenance.timings.batch == 8
    capsys.readouterr()
    assert main(["timings", "--results", str(tmp_path / "first")]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines()
              if line.strip().startswith("sd ")]
    # images drawn, the seconds drawing them, images/s, then the batch
    assert re.search(r" 8 +[\d.]+ (ms|s) +[\d.]+ +2 ", row), row


@pytest.mark.parametrize("argv, where", [
    (["erase", "--eraser", "mock", "--model", "tiny", "--concept", "cat", "--out",
      "cat.safetensors"], "erasebench.testing.MockEraser.erase"),
    (["generate", "--model", "tiny", "--steps", "2", "--prompt", "a cat", "--seeds", "0-1",
      "--out", "images"], "erasebench.generate.Generator._sample_and_fit"),
])
def test_a_command_out_of_device_memory_is_one_line_and_exit_1(argv, where, tmp_path, capsys,
                                                                monkeypatch):
    # Outside a run (which leaves such units undone one by one) it was torch's traceback.
    monkeypatch.chdir(tmp_path)

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError(OUT_OF_MEMORY)

    monkeypatch.setattr(where, out_of_memory)
    assert main(argv) == 1
    assert capsys.readouterr().err.strip() == (
        "error: the device ran out of memory: CUDA out of memory. Tried to allocate 2.00 GiB. "
        "GPU 0 has a total capacity of 15.77 GiB of which 1.02 GiB is free. What was written "
        "before is kept; run the same command again on a device with more memory free (no "
        "other process on it).")
