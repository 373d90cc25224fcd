"""The CLI in a process of its own, started in half a second instead of five.

`python -m erasebench.cli` spends five seconds importing torch, diffusers and transformers
before it does anything, and the tests that kill a run and resume it start dozens of
runs. Here each is forked from one server process that imported all of that once
(multiprocessing's forkserver; the server runs no torch op, so forking it is safe): the
run is still a process of its own — its own memory, signal handlers and exit code, killed
alone — but it starts warm. Its environment and working folder are the test's at the
moment it starts, its stdout and stderr go to a file.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Sequence
from multiprocessing.process import BaseProcess
from pathlib import Path

import erasebench.cli

_CONTEXT = multiprocessing.get_context("forkserver")
# What a `run` imports, imported by the server before it forks. Names the server can
# import as it starts, with the interpreter's own sys.path: it is not given the tests'
# (Python 3.11's forkserver drops it), and a name it cannot import it skips in silence.
_CONTEXT.set_forkserver_preload([
    "torch", "erasebench.cli", "erasebench.runner", "erasebench.models",
    "diffusers.models.unets.unet_2d_condition", "diffusers.models.autoencoders.autoencoder_kl",
    "diffusers.schedulers.scheduling_ddim", "transformers.models.clip.modeling_clip"])


def start_cli(args: Sequence[str], output: Path,
              env: dict[str, str] | None = None) -> BaseProcess:
    """``erasebench <args>`` started in its own process, writing to ``output``; the
    environment is this process's unless ``env`` is given. ``exitcode`` is the CLI's exit
    status once it ends, ``-signal`` when a signal killed it."""
    process = _CONTEXT.Process(target=_run_cli, args=(
        list(args), dict(os.environ if env is None else env), os.getcwd(), str(output)))
    process.start()
    return process


def _run_cli(args: list[str], env: dict[str, str], cwd: str, output: str) -> None:
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)
    code = erasebench.cli.main(args)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


def exit_code(process: BaseProcess, timeout: float = 300) -> int:
    """``process``'s exit code once it ends; killed, and an error, past ``timeout`` seconds
    (as ``subprocess.run``'s timeout, so that a hung run does not outlive its test)."""
    process.join(timeout)
    if process.exitcode is None:
        process.kill()
        process.join()
        raise TimeoutError(f"the CLI run was still going after {timeout} s: killed")
    return process.exitcode
