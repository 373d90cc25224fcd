import pytest
from fresh_python import fresh_python

from erasebench.errors import DuplicateNameError, PluginImportError, UnknownNameError
from erasebench.registry import ERASERS, TASKS, Registry


def test_in_tree_plugins_come_through_entry_points():
    fresh = Registry("eraser", "erasebench.erasers")
    assert {"sd", "mock"} <= set(fresh.names())
    assert isinstance(fresh._entries["sd"], str)  # still lazy until asked for
    assert fresh.get("sd").__name__ == "OriginalModel"
    assert "mock" in Registry("task", "erasebench.tasks").names()


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(UnknownNameError) as caught:
        ERASERS.get("no-such-eraser")
    message = str(caught.value)
    assert "no-such-eraser" in message and "sd" in message and "mock" in message


def test_duplicate_name_is_an_error():
    registry = Registry("eraser", "erasebench.erasers")

    @registry.register("twin")
    class First:
        pass

    with pytest.raises(DuplicateNameError, match="twin"):

        @registry.register("twin")
        class Second:
            pass


def test_a_decorated_class_replaces_its_own_entry_point():
    registry = Registry("eraser", "erasebench.erasers")
    registry._add("sd", "erasebench.baselines.sd:OriginalModel")
    from erasebench.baselines.sd import OriginalModel

    registry._add("sd", OriginalModel)  # same target: no error
    assert registry.get("sd") is OriginalModel
    with pytest.raises(DuplicateNameError):
        registry._add("sd", "somewhere.else:Other")


def test_a_broken_plugin_is_reported_by_name_and_others_still_load():
    registry = Registry("task", "erasebench.tasks")
    registry._add("broken", "erasebench_no_such_module:Task")
    with pytest.raises(PluginImportError, match="broken.*erasebench_no_such_module"):
        registry.get("broken")
    assert registry.get("mock").__name__ == "MockTask"


def test_listing_names_imports_no_torch():
    result = fresh_python(
        "import sys",
        "from erasebench.cli import main",
        "assert main(['list']) == 0",
        "heavy = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]",
        "assert not heavy, heavy")
    assert "sd" in result.stdout and "mock" in result.stdout


def test_loading_every_plugin_leaves_the_heavy_imports_to_the_work():
    # torchmetrics' import takes ~3 s (torchvision, torch._dynamo, scipy.signal, BERT) and
    # diffusers' ~2 s: a plugin importing either at load time makes every run and dry run
    # wait for it; they belong in the code that scores or loads a model.
    result = fresh_python(
        "import sys",
        "from erasebench.registry import ERASERS, TASKS",
        "for registry in (TASKS, ERASERS):",
        "    for name in registry.names():",
        "        registry.get(name)",
        "heavy = [m for m in ('torchmetrics', 'diffusers', 'transformers') if m in sys.modules]",
        "print(len(TASKS.names()), len(ERASERS.names()), ','.join(heavy) or '-')")
    tasks, erasers, heavy = result.stdout.split()
    assert int(tasks) >= 8 and int(erasers) >= 10 and heavy == "-"


def test_registries_are_distinct():
    assert ERASERS.kind == "eraser" and TASKS.kind == "task"
