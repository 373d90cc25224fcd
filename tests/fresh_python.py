"""Code run in a Python interpreter of its own: what it imports (and what its exit does)
is its alone, not the test process's, which has imported everything already."""

from __future__ import annotations

import subprocess
import sys


def fresh_python(*lines: str) -> subprocess.CompletedProcess[str]:
    """``lines`` run as a program in a new interpreter; its stderr in the failure when it
    does not exit 0."""
    result = subprocess.run([sys.executable, "-c", "\n".join(lines)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    return result
