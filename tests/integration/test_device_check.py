"""benchmarks/device/check.sh, the one call on a lent GPU machine, run here with a stand-in
Python that prints what it was asked to run: its steps run in the order asked, a misspelt
step is refused before anything runs, and a time budget cuts the steps so that the summary
comes back before the device tool's own limit would end the call."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

CHECK = Path(__file__).resolve().parents[2] / "benchmarks" / "device" / "check.sh"

# Installs nothing (pip's calls succeed); any other call prints its arguments, then sleeps
# for FAKE_SECONDS, as a step's script would run.
FAKE_PYTHON = """#!/usr/bin/env bash
case "$*" in *"pip install"*) exit 0 ;; esac
echo "ran: $*"
exec sleep "${FAKE_SECONDS:-0}"
"""


def run_check(tmp_path: Path, **settings: str) -> tuple[subprocess.CompletedProcess[str], float]:
    wheels = tmp_path / "wheels"
    wheels.mkdir(exist_ok=True)
    (wheels / "stand_in-0-py3-none-any.whl").write_bytes(b"")
    python = tmp_path / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    env = {**os.environ, "PYTHON": str(python), "WHEELS": str(wheels),
           "OUT": str(tmp_path / "out"), "SITE": str(tmp_path / "site"), **settings}
    began = time.monotonic()
    done = subprocess.run(["bash", str(CHECK)], env=env, capture_output=True, text=True,
                          timeout=120)
    return done, time.monotonic() - began


def test_steps_run_in_the_order_named(tmp_path: Path) -> None:
    done, _ = run_check(tmp_path, STEPS="frozen,variants")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.index("=== frozen") < done.stdout.index("=== variants")
    assert "benchmarks/frozen_weights.py" in (tmp_path / "out" / "frozen.log").read_text()
    variants = (tmp_path / "out" / "variants.log").read_text()
    assert "--batch-size 64" in variants and "--compile-decode" in variants
    assert not (tmp_path / "out" / "env.log").exists()  # not asked for


def test_a_misspelt_step_is_refused_before_anything_runs(tmp_path: Path) -> None:
    done, _ = run_check(tmp_path, STEPS="env,varients")
    assert done.returncode == 3
    assert "no step 'varients'" in done.stdout
    assert "env,generation,erasers,gpu_tests,profile,variants,frozen" in done.stdout
    assert not (tmp_path / "out" / "install.log").exists()


def test_a_budget_that_is_not_seconds_is_refused(tmp_path: Path) -> None:
    done, _ = run_check(tmp_path, STEPS="env", BUDGET="9m")
    assert done.returncode == 3
    assert "BUDGET=9m" in done.stdout


def test_the_budget_cuts_the_step_that_would_overrun_and_skips_those_after_it(
        tmp_path: Path) -> None:
    # Each step would take a minute; the budget leaves the first about 6 s (8 less the
    # 2 kept for the summary), and the second less than the 3 a step needs to start.
    done, seconds = run_check(tmp_path, STEPS="profile,frozen", FAKE_SECONDS="60",
                              BUDGET="8", RESERVE="2", MIN_STEP="3")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "profile: exit 124" in done.stdout and "cut at its limit" in done.stdout
    assert "frozen: skipped" in done.stdout
    assert "=== summary" in done.stdout
    assert not (tmp_path / "out" / "frozen.log").exists()
    assert seconds < 8 + 3  # within the budget, not the step's minute


@pytest.mark.parametrize("budget", ["", "600"])
def test_steps_that_fit_the_budget_run_under_their_own_limits(tmp_path: Path,
                                                              budget: str) -> None:
    done, _ = run_check(tmp_path, STEPS="env,frozen", BUDGET=budget)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "=== env (at most 40 s)" in done.stdout
    assert "=== frozen (at most 150 s)" in done.stdout
