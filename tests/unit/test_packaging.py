"""The installed layout: bench/, tasks/, baselines/ under the one `erasebench` namespace."""

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[2]
MAPPING = {"bench": "erasebench", "tasks": "erasebench.tasks", "baselines": "erasebench.baselines"}


def test_every_source_package_is_listed_for_installation():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    found = set()
    for folder, name in MAPPING.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *parts)))
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"


def test_no_generic_top_level_modules_are_installed():
    import erasebench.baselines
    import erasebench.tasks

    assert Path(erasebench.tasks.__file__).parent == ROOT / "tasks"
    assert Path(erasebench.baselines.__file__).parent == ROOT / "baselines"
