"""Which code a process runs: the git commit of erasebench's source, and a digest of the
changes to it not committed yet.

A record names the code it came from (``erasebench.results.Provenance``), and the Ray
backend checks that every node runs the driver's (``erasebench.ray_backend``). A commit
alone says nothing of an edit made and not committed: rows from a patched eraser would
name the same commit as the published ones, and a node with a local patch would pass the
check. So the source folders' uncommitted changes (tracked files changed or removed, and
new files git does not ignore; markdown left out, which changes no number) are hashed
too: equal digests, equal code.
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

# The import packages whose folders hold erasebench's source (pyproject.toml's package-dir).
SOURCE_PACKAGES = ("erasebench", "erasebench.tasks", "erasebench.baselines")
# Documentation changes no number.
IGNORED = (":(exclude,glob)**/*.md",)


@dataclass(frozen=True)
class CodeVersion:
    sha: str = ""  # the commit; "" outside a git checkout
    changes: str = ""  # a digest of the uncommitted changes to the source; "" when none

    def short(self, length: int = 10) -> str:
        """``1a2b3c4d5e``, ``1a2b3c4d5e with changes 9f8e7d6c``, or "" with no commit."""
        if not self.sha:
            return ""
        return self.sha[:length] + (f" with changes {self.changes[:8]}" if self.changes else "")


@functools.cache
def code_version() -> CodeVersion:
    """The code this process runs, read once (``Runner`` reads it as it starts): a record
    names the code its process started with, not an edit or commit made while the run
    went on."""
    return read_code_version(source_folders())


def source_folders() -> list[Path]:
    folders = []
    for name in SOURCE_PACKAGES:
        spec = find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            folders += [Path(location) for location in spec.submodule_search_locations]
    return folders


def read_code_version(folders: Sequence[Path]) -> CodeVersion:
    """The commit of the git checkout holding ``folders`` and the digest of their
    uncommitted changes; an empty version where git is missing or the folders are not
    tracked in a checkout (an installed copy, even one inside another project's
    checkout)."""
    if not folders:
        return CodeVersion()
    where = folders[0]
    tracked = _git(where, "ls-files", "--", *map(str, folders))
    sha = _git(where, "rev-parse", "HEAD")
    if not tracked or not sha:
        return CodeVersion()
    paths = ["--", *map(str, folders), *IGNORED]
    diff = _git(where, "diff", "HEAD", "--binary", "--no-ext-diff", "--no-color", *paths)
    new = _git(where, "ls-files", "-z", "--others", "--exclude-standard", "--full-name",
               *paths)
    if not diff and not new:
        return CodeVersion(sha.decode().strip())
    digest = hashlib.sha256(diff)
    root = Path(_git(where, "rev-parse", "--show-toplevel").decode().strip())
    for name in sorted(filter(None, new.split(b"\0"))):
        digest.update(b"\0new " + name + b"\0")
        digest.update(_read(root / name.decode()))
    return CodeVersion(sha.decode().strip(), digest.hexdigest()[:16])


def _git(where: Path, *args: str) -> bytes:
    """What ``git args`` prints (bytes: a binary diff is hashed as it is), run in
    ``where``; empty where it fails."""
    try:
        result = subprocess.run(["git", *args], capture_output=True, cwd=where, timeout=10,
                                check=False)
    except (OSError, subprocess.SubprocessError):
        return b""
    return result.stdout if result.returncode == 0 else b""


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # removed since git listed it
        return b""
