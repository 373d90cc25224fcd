import shlex

import pytest
import typer

from erasebench.cli import app
from erasebench.commands import generate_command
from erasebench.registry import TASKS


@pytest.mark.parametrize("name", TASKS.names())
def test_the_generate_command_prompts_prints_draws_with_the_tasks_model_and_sampler(
        name, tmp_path):
    # `prompts` printed no --model for a task on SD v1.4, and `generate`'s own default is
    # the miniature world's model: the printed command drew Imagenette's prompts with it.
    task = TASKS.get(name)({})
    words = shlex.split(generate_command(task, tmp_path / "prompts.csv"))
    assert words[:2] == ["erasebench", "generate"]
    generate = typer.main.get_command(app).commands["generate"]  # type: ignore[attr-defined]
    given = generate.make_context("generate", words[2:]).params
    settings = task.generation()
    assert given["model"] == task.default_model
    assert (given["scheduler"], given["steps"]) == (settings.scheduler, settings.steps)
    assert given["prompts"] == tmp_path / "prompts.csv"
