"""The code a record names: a commit, and a digest of the changes not committed to it."""

import shutil
import subprocess
from pathlib import Path

import pytest

from erasebench.code_version import CodeVersion, read_code_version, source_folders

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(where, *args):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          cwd=where, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def checkout(tmp_path):
    """A git checkout with a source folder (a module, data and a README) and another."""
    root = tmp_path / "checkout"
    (root / "pkg" / "data").mkdir(parents=True)
    (root / "other").mkdir()
    (root / "pkg" / "eraser.py").write_text("STEPS = 1000\n")
    (root / "pkg" / "data" / "prompts.csv").write_text("prompt\na cat\n")
    (root / "pkg" / "README.md").write_text("# pkg\n")
    (root / "other" / "notes.py").write_text("x = 1\n")
    (root / ".gitignore").write_text("*.log\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "first")
    return root


def test_a_clean_checkout_is_its_commit_and_each_change_to_the_source_its_own_digest(
        checkout):
    folders = [checkout / "pkg"]
    sha = git(checkout, "rev-parse", "HEAD").strip()
    assert read_code_version(folders) == CodeVersion(sha, "")
    assert read_code_version(folders).short() == sha[:10]

    eraser = checkout / "pkg" / "eraser.py"
    eraser.write_text("STEPS = 500\n")
    patched = read_code_version(folders)
    assert patched.sha == sha and len(patched.changes) == 16
    assert patched.short() == f"{sha[:10]} with changes {patched.changes[:8]}"
    assert read_code_version(folders) == patched  # the same changes, the same digest
    eraser.write_text("STEPS = 200\n")
    assert read_code_version(folders).changes not in ("", patched.changes)
    eraser.write_text("STEPS = 1000\n")  # undone
    assert read_code_version(folders).changes == ""

    (checkout / "pkg" / "data" / "prompts.csv").unlink()  # data is source too
    removed = read_code_version(folders).changes
    assert removed not in ("", patched.changes)
    git(checkout, "checkout", "--", ".")

    new = checkout / "pkg" / "new_eraser.py"  # a new file git does not ignore
    new.write_text("STEPS = 1\n")
    added = read_code_version(folders).changes
    assert added != ""
    new.write_text("STEPS = 2\n")  # its content counts, not only its name
    assert read_code_version(folders).changes not in ("", added)
    new.unlink()
    assert read_code_version(folders).changes == ""


def test_what_changes_no_number_or_lies_outside_the_source_is_not_a_change(checkout):
    folders = [checkout / "pkg"]
    (checkout / "pkg" / "README.md").write_text("# pkg, documented\n")
    (checkout / "pkg" / "run.log").write_text("ignored by git\n")
    (checkout / "other" / "notes.py").write_text("x = 2\n")
    (checkout / "scratch.py").write_text("y = 1\n")
    assert read_code_version(folders).changes == ""
    assert read_code_version([checkout / "pkg", checkout / "other"]).changes != ""


def test_a_copy_outside_a_checkout_or_untracked_in_one_names_no_code(checkout, tmp_path):
    copy = tmp_path / "site-packages" / "pkg"
    shutil.copytree(checkout / "pkg", copy)
    assert read_code_version([copy]) == CodeVersion()
    # an installed copy inside another project's checkout is not that project's code
    inside = checkout / "venv" / "pkg"
    shutil.copytree(checkout / "pkg", inside)
    assert read_code_version([inside]) == CodeVersion()
    assert CodeVersion().short() == ""


def test_the_source_folders_are_erasebenchs_three_packages():
    import erasebench
    import erasebench.baselines
    import erasebench.tasks

    assert source_folders() == [Path(package.__file__).parent for package in
                                (erasebench, erasebench.tasks, erasebench.baselines)]


def test_ray_nodes_with_the_same_commit_and_other_uncommitted_changes_differ(monkeypatch):
    from erasebench import __version__
    from erasebench import code_version as code
    from erasebench.ray_backend import code_identity

    identities = []
    for changes in ("", "9f8e7d6c" * 2, "0123abcd" * 2):
        code.code_version.cache_clear()
        monkeypatch.setattr(code, "read_code_version",
                            lambda folders, changes=changes: CodeVersion("1a" * 20, changes))
        identities.append(code_identity())
    code.code_version.cache_clear()
    assert identities[:2] == [f"erasebench {__version__} at 1a1a1a1a1a1a",
                              f"erasebench {__version__} at 1a1a1a1a1a1a with changes 9f8e7d6c"]
    assert len(set(identities)) == 3
