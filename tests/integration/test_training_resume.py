"""A run killed in the middle of an eraser's training resumes it from its checkpoint, and
one killed between a unit's attacks on its model makes only those it had not made; each
records exactly the rows of a run never interrupted."""

import os
import re

import pandas as pd
from cli_processes import exit_code, start_cli

from erasebench.cli import main
from erasebench.edits import EditedModel
from erasebench.faults import ENVIRONMENT_VARIABLE
from erasebench.results import ResultStore, load_results

STABLE = ["eraser", "config_hash", "request", "task", "metric", "split", "seed", "value",
          "run_id"]


def _args(root, *more):
    return ["run", "--model", "tiny", "--erasers", "esd_x", "--tasks", "mock",
            "--task-config", "images_per_concept=2", "--steps", "3", "--batch-size", "2",
            "--eraser-config", "iterations=6", "--results", str(root / "results"),
            "--cache", str(root / "cache"), "--workers", "1", "--no-report", *more]


def test_a_run_killed_during_training_resumes_it_from_its_checkpoint(tmp_path, capsys):
    assert main(_args(tmp_path / "whole")) == 0
    whole = load_results(tmp_path / "whole" / "results")[STABLE]
    training = tmp_path / "cache" / "edits" / "training"
    assert not (tmp_path / "whole" / "cache" / "edits" / "training").exists(), (
        "no checkpoint in a training shorter than --checkpoint-every")
    capsys.readouterr()

    log = tmp_path / "killed.log"
    env = {**os.environ, ENVIRONMENT_VARIABLE: "train.step:4"}
    killed = start_cli(_args(tmp_path, "--checkpoint-every", "0"), log, env)
    assert exit_code(killed) == -9, log.read_text()[-2000:]
    assert len(list(training.glob("esd_x-*.loop-0.safetensors"))) == 1

    assert main(_args(tmp_path, "--dry-run", "--check-cache")) == 0
    said = capsys.readouterr().out
    assert "0 of their 1 erasures, 1 more begun (its training resumes from a checkpoint)" in said
    assert "training checkpoints:" not in said
    # Planned with another learning rate, the checkpoint is no erasure's to resume from.
    assert main(_args(tmp_path, "--eraser-config", "lr=2e-5", "--dry-run", "--check-cache")) == 0
    said = capsys.readouterr().out
    assert "more begun" not in said
    assert "  training checkpoints: 1 file, " in said and (
        f"in {training} that no erasure of these units resumes from") in said
    assert main(_args(tmp_path)) == 0
    said = capsys.readouterr().out
    assert "esd_x training: resumed at step 5 of 6 from its checkpoint" in said
    assert "[training]" in said
    pd.testing.assert_frame_equal(load_results(tmp_path / "results")[STABLE], whole)
    assert list(training.iterdir()) == [], "the checkpoints go once the erasure is made"


def test_erase_killed_during_training_resumes_and_writes_the_edit_of_a_whole_one(tmp_path,
                                                                                capsys):
    def erase(out, *more):
        return ["erase", "-e", "esd_x", "--concept", "cat", "--model", "tiny", "--config",
                "iterations=6", "--out", str(out), *more]

    assert main(erase(tmp_path / "whole.safetensors")) == 0
    out = tmp_path / "edit.safetensors"
    log = tmp_path / "killed.log"
    killed = start_cli(erase(out, "--checkpoint-every", "0"), log,
                       {**os.environ, ENVIRONMENT_VARIABLE: "train.step:2"})
    assert exit_code(killed) == -9, log.read_text()[-2000:]
    assert not out.exists() and len(list(tmp_path.glob(".edit-*.training.loop-0.safetensors"))) == 1
    capsys.readouterr()

    assert main(erase(out)) == 0
    assert "esd_x training: resumed at step 3 of 6 from its checkpoint" in capsys.readouterr().out
    whole, resumed = EditedModel.load(tmp_path / "whole.safetensors"), EditedModel.load(out)
    assert resumed.digest == whole.digest
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "edit.safetensors", "killed.log", "whole.safetensors"], "its checkpoints are gone"


def test_erase_says_which_checkpoints_beside_its_out_are_another_erasures(tmp_path, capsys):
    # A stopped erase to the same --out with other settings left these; this one never
    # resumes them, and they stay (an erase with those settings may yet resume them).
    out = tmp_path / "edit[1].safetensors"  # glob characters in the name are plain here
    stray = [tmp_path / ".edit[1]-0123456789abcdef.training.loop-0.safetensors",
             tmp_path / "..edit[1]-0123456789abcdef.training.loop-1.safetensors.k3j2.tmp"]
    for path, size in zip(stray, (3_000_000, 500_000), strict=True):
        path.write_bytes(b"x" * size)
    (tmp_path / ".other-0123456789abcdef.training.loop-0.safetensors").write_bytes(b"x")
    assert main(["erase", "-e", "mock", "--concept", "cat", "--model", "tiny", "--out",
                 str(out)]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert (f"note: 2 files beside {out} (3.5 MB: {stray[1].name}, {stray[0].name}) hold the "
            "checkpoints of another erasure's training to this --out") in said
    assert all(path.exists() for path in stray)
    assert main(["erase", "-e", "mock", "--concept", "cat", "--model", "tiny", "--out",
                 str(tmp_path / "clean.safetensors")]) == 0
    assert "note:" not in capsys.readouterr().out


def _attack_args(root, results="results"):
    return ["run", "--erasers", "token_filter", "--tasks", "robustness", "--workers", "1",
            "--no-report", "--results", str(root / results), "--cache", str(root / "cache"),
            "--task-config", "robustness.radii=[0.1, 0.2]", "--task-config",
            "robustness.steps=3", "--task-config", "robustness.samples=4", "--task-config",
            'robustness.task_options={"images_per_class": 2, "splits": [["circle"]]}']


def test_a_run_killed_between_a_units_attacks_makes_only_those_it_had_not(tmp_path, capsys,
                                                                          attacks_made):
    # On SD each recovery attack of a robustness unit takes minutes of a GPU (one per
    # erased class and radius); a unit stopped after some made them all again.
    assert main(_attack_args(tmp_path / "whole")) == 0
    whole = load_results(tmp_path / "whole" / "results")[STABLE]
    (record,) = ResultStore(tmp_path / "whole" / "results").records()
    assert record.provenance.timings.attacks_read is None
    # Each radius's attacked images of the class's 2 prompts, apart from the references.
    assert record.provenance.timings.attacked_drawn == 2 * 2
    log = tmp_path / "killed.log"
    killed = start_cli(_attack_args(tmp_path), log,
                       {**os.environ, ENVIRONMENT_VARIABLE: "attack.kept:1"})
    assert exit_code(killed) == -9, log.read_text()[-2000:]
    assert len(list((tmp_path / "cache" / "attacks").glob("*.safetensors"))) == 1
    capsys.readouterr()
    # The plan counts it, and the time it took, as held for the unit (the time left
    # takes it off the unit's price).
    assert main([*_attack_args(tmp_path), "--dry-run", "--check-cache"]) == 0
    held = re.search(r"in the caches: .*, 1 attack on their edited models \((\d+) s of "
                     r"making it\)", capsys.readouterr().out)
    assert held is not None

    attacks_made.clear()  # those of the whole run
    assert main(_attack_args(tmp_path)) == 0
    assert attacks_made == [0.2], "the attack at 0.1 was kept before the kill"
    said = capsys.readouterr().out
    assert "s attacking the model (1 attack read from the attack cache)" in said
    assert ", 1 attack on their edited models (" in said  # the run's start line
    pd.testing.assert_frame_equal(load_results(tmp_path / "results")[STABLE], whole)
    (record,) = ResultStore(tmp_path / "results").records()
    assert record.provenance.timings.attacks_read == 1
    # Another results folder on the same cache (or the unit scored again) makes none.
    assert main(_attack_args(tmp_path, results="again")) == 0
    assert attacks_made == [0.2]
    assert "(2 attacks read from the attack cache)" in capsys.readouterr().out
    pd.testing.assert_frame_equal(load_results(tmp_path / "again")[STABLE], whole)
