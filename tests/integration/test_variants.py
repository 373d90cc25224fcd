"""Two configurations of one eraser, or two option sets of one task, in one results folder
are reported apart, never averaged into a number nobody ran."""

import re

import pandas as pd

from erasebench.cli import main
from erasebench.results import ResultStore, load_results
from erasebench.variants import differing, find_variants


def test_differing_names_only_the_keys_that_vary():
    settings = [{"a": 1, "b": 2}, {"a": 1, "b": 3}, {"a": 1}]
    assert differing(settings) == ["b=2", "b=3", ""]
    assert differing([{"x": [1, 2]}, {"x": []}]) == ["x=[1,2]", "x=[]"]
    assert differing([{"a": 1}]) == [""]
    long_a, long_b = {"x": "y" * 50 + "a"}, {"x": "y" * 50 + "b"}  # alike when cut
    labels = differing([long_a, long_b])
    assert len(set(labels)) == 2 and all(label.startswith('x="yyy') for label in labels)


def _run(root, *extra):
    return main(["run", "--model", "tiny", "--tasks", "mock", "--steps", "2",
                 "--results", str(root / "results"), "--cache", str(root / "cache"),
                 "--workers", "1", "--no-report", *extra])


def test_configurations_get_rows_of_their_own(tmp_path, capsys):
    assert _run(tmp_path, "--erasers", "sd,mock") == 0
    assert _run(tmp_path, "--erasers", "mock", "--eraser-config", "mock.strength=0.25") == 0
    assert _run(tmp_path, "--erasers", "sd", "--task-config", "images_per_concept=2") == 0
    board = tmp_path / "leaderboard.md"
    assert main(["report", "--results", str(tmp_path / "results"), "--out", str(board)]) == 0
    text = board.read_text()
    main_table = text.split("## mock")[1].split("<details>")[0]
    erasers = [line.split(" | ")[0].strip("| ") for line in main_table.splitlines()
               if line.startswith("| ") and not line.startswith("| eraser")]
    assert erasers == ["mock [strength=0.25]", "mock [strength=1.0]", "sd",
                       "sd [mock: images_per_concept=2]"]
    # each row is its own runs' mean: the half-strength edit moves the images less
    rows = load_results(tmp_path / "results")
    mock = rows[(rows.eraser == "mock") & (rows.metric == "change_erase")]
    by_strength = dict(zip(mock.config_hash, mock.value, strict=True))
    assert len(by_strength) == 2 and len(set(by_strength.values())) == 2
    for value in by_strength.values():
        assert f"| {value:.4g} |" in main_table or f"| **{value:.4g}** |" in main_table
    # provenance counts each configuration's own images: 4 + 4 by default, 2 + 2 here
    provenance = text.split("Provenance")[1]
    assert "| sd [mock: images_per_concept=2] |" in provenance
    assert [line.split(" | ")[5] for line in provenance.splitlines()
            if line.startswith("| sd")] == ["8", "4"]
    reported = pd.read_parquet(tmp_path / "results" / "metrics.parquet")
    assert set(reported.eraser) == set(erasers)


def test_rows_drawn_otherwise_than_the_task_draws_get_rows_of_their_own_and_no_rank(
        tmp_path, capsys):
    # `run --precision bf16` (or `--steps 10`, for a quick look) beside a run drawn as the
    # task draws was averaged into the same eraser's row: a number nobody ran.
    results = ["--results", str(tmp_path / "results"), "--cache", str(tmp_path / "cache")]
    common = ["run", "--model", "tiny", "--tasks", "mock", *results, "--workers", "1",
              "--no-report"]
    assert main([*common, "--erasers", "sd,mock"]) == 0  # as the task draws (4 steps)
    assert main([*common, "--erasers", "mock", "--precision", "bf16"]) == 0
    board = tmp_path / "leaderboard.md"
    assert main(["report", "--results", str(tmp_path / "results"), "--out", str(board)]) == 0
    main_table = board.read_text().split("## mock")[1].split("<details>")[0]
    erasers = [line.split(" | ")[0].strip("| ") for line in main_table.splitlines()
               if line.startswith("| ") and not line.startswith("| eraser")]
    assert erasers == ["mock", 'mock [generation: precision="bf16"]', "sd"]
    records = ResultStore(tmp_path / "results").records()
    half = {r.run_id for r in records if r.spec.generation.precision == "bf16"}
    assert half and find_variants(records).other_protocol == half  # not ranked
    capsys.readouterr()
    assert main(["timings", "--results", str(tmp_path / "results")]) == 0  # timed apart too
    lines = capsys.readouterr().out.splitlines()
    timed = [re.split(r"\s{2,}", line.strip())[0] for line in lines
             if re.search(r"\s{2}mock\s{2}", line)]  # the eraser column, of the task's rows
    assert timed == ["mock", 'mock [generation: precision="bf16"]', "sd"]
    # Every run drawn alike, if not as the task draws (the tests' --steps 2): plain names
    assert _run(tmp_path / "alike", "--erasers", "sd,mock") == 0
    labels = find_variants(ResultStore(tmp_path / "alike" / "results").records()).labels
    assert set(labels.values()) == {""}


def test_a_run_drawn_otherwise_than_its_task_draws_says_so_before_the_work(tmp_path, capsys):
    assert _run(tmp_path, "--erasers", "sd") == 0  # the tests' --steps 2: the mock task's 4
    out = " ".join(capsys.readouterr().out.split())
    assert ("work unit (1 to do, asking for 8 images; 1 process); results in "
            f"{tmp_path / 'results'}/ note: drawn otherwise than the tasks draw their own "
            "(mock: steps 2 (the task's 4)). The leaderboard compares these rows with no "
            "published numbers, and beside rows drawn as the task draws names them "
            "[generation: …], unranked (else it says how under the task's table).") in out
    assert main(["run", "--model", "tiny", "--tasks", "mock", "--erasers", "sd", "--results",
                 str(tmp_path / "own"), "--cache", str(tmp_path / "cache"), "--workers", "1",
                 "--no-report"]) == 0
    assert "drawn otherwise" not in capsys.readouterr().out


def test_eraser_config_errors_are_clear(tmp_path, capsys):
    assert _run(tmp_path, "--erasers", "mock", "--eraser-config", "nope.strength=1") == 2
    assert "unknown eraser 'nope'" in capsys.readouterr().err
    assert _run(tmp_path, "--erasers", "mock", "--eraser-config", "mock.bogus=1") == 2
    assert "bogus" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_an_unscoped_setting_goes_to_the_selected_erasers_that_have_it(tmp_path, capsys):
    # `-e sd,mock --eraser-config strength=...` was refused: sd, the original model that
    # every default run has, takes no setting, so a KEY for "every selected eraser" could
    # not be given in a run with it.
    assert _run(tmp_path, "--erasers", "sd,mock", "--eraser-config", "strength=0.25") == 0
    configs = {record.spec.eraser.name: record.spec.eraser.config
               for record in ResultStore(tmp_path / "results").records()}
    assert configs["sd"] == {} and configs["mock"]["strength"] == 0.25
    # A key none of them has is still a typo, refused before any work.
    other = tmp_path / "other"
    other.mkdir()
    assert _run(other, "--erasers", "sd,mock", "--eraser-config", "strenght=1") == 2
    err = capsys.readouterr().err
    assert "--eraser-config strenght=...: no selected eraser has the option 'strenght'" in err
    assert "sd: (none); mock: strength" in err
    assert not (other / "results").exists()


def test_published_numbers_meet_only_rows_run_with_the_tasks_own_protocol(tmp_path, capsys):
    # A quick run (the tests' --steps 2; the mock task draws with 4) stood beside the
    # papers' numbers as their reproduction, its difference read as the eraser's.
    def run_and_report(root, *options):
        assert main(["run", "--model", "tiny", "--tasks", "mock", "--results",
                     str(root / "results"), "--cache", str(tmp_path / "cache"), "--workers",
                     "1", "--no-report", *options]) == 0
        (root / "results" / "reported").mkdir(exist_ok=True)
        (root / "results" / "reported" / "paper.csv").write_text(
            "task,model,eraser,metric,mean,std,source\n"
            "mock,tiny,mock,change_erase,0.5,,Someone 2024\n"
            "mock,tiny,sd,change_erase,0,,Someone 2024\n")
        board = root / "leaderboard.md"
        assert main(["report", "--results", str(root / "results"), "--out", str(board)]) == 0
        return board.read_text().split("**Reported vs reproduced**")[1]

    compared = run_and_report(tmp_path / "protocol", "--erasers", "mock")
    assert "| mock | 0.5 → " in compared and "| mock | 0.5 → – |" not in compared
    assert "Not compared" not in compared  # (sd, not run: "sd | 0 → –")
    quick = run_and_report(tmp_path / "quick", "--erasers", "mock", "--steps", "2")
    assert "| mock | 0.5 → – |" in quick
    assert ("Not compared, as run otherwise than the task's protocol (its default options "
            "and generation settings): mock.") in quick
    # Other task options, drawn as the task draws: not its protocol either
    options = run_and_report(tmp_path / "options", "--erasers", "sd", "--task-config",
                             "images_per_concept=2")
    assert "| sd | 0 → – |" in options
    assert "(its default options and generation settings): sd." in options


def test_a_section_run_wholly_otherwise_says_how_under_its_table(tmp_path, capsys):
    # A quick run (`--steps 2`; the mock task draws with 4) or one under other task options,
    # alone in its section, kept plain names: its leaderboard read like the task's protocol,
    # and only the run's console said otherwise.
    def section(root, *options, erasers="sd,mock"):
        assert main(["run", "--model", "tiny", "--tasks", "mock", "--erasers", erasers,
                     "--results", str(root / "results"), "--cache", str(tmp_path / "cache"),
                     "--workers", "1", "--no-report", *options]) == 0
        board = root / "leaderboard.md"
        assert main(["report", "--results", str(root / "results"), "--out", str(board)]) == 0
        return board.read_text().split("## mock")[1].split("<details>")[0]

    quick = section(tmp_path / "quick", "--steps", "2")
    assert ("Not the task's protocol (its default options and the generation settings it "
            "draws with): mock, sd: steps 2 (the task's 4).") in quick
    options = section(tmp_path / "options", "--task-config", "images_per_concept=2")
    assert ": mock, sd: images_per_concept 2 (the task's 4)." in options
    both = section(tmp_path / "both", "--steps", "2", "--task-config", "images_per_concept=2")
    assert ": mock, sd: images_per_concept 2 (the task's 4), steps 2 (the task's 4)." in both
    assert "Not the task's protocol" not in section(tmp_path / "protocol")
    # Beside a run with the protocol, rows run otherwise are named by their labels instead.
    beside = section(tmp_path / "protocol", "--steps", "2", erasers="sd")
    assert "| sd [generation: steps=2] |" in beside and "Not the task's protocol" not in beside
