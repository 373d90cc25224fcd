"""Nothing is unpickled: every torch.load in the package passes weights_only=True, and the
one third-party loader that would unpickle (torch-fidelity's) runs with torch's
tensors-only switch on."""

import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).parents[2]


def _call(text: str, opening: int) -> str:
    """The text of the call whose opening parenthesis is at ``opening``."""
    depth = 0
    for index in range(opening, len(text)):
        depth += {"(": 1, ")": -1}.get(text[index], 0)
        if depth == 0:
            return text[opening: index + 1]
    return text[opening:]


def test_every_torch_load_is_weights_only():
    calls = 0
    for folder in ("bench", "tasks", "baselines"):
        for path in (ROOT / folder).rglob("*.py"):
            code = re.sub(r"#.*|\"\"\"[\s\S]*?\"\"\"", "", path.read_text())  # no comments
            for match in re.finditer(r"torch\.load\(", code):
                call = _call(code, match.end() - 1)
                calls += 1
                assert "weights_only=True" in call, f"{path}: {call}"
            assert "pickle" not in code, path
    assert calls >= 2  # ResNet-50 and AlexNet (torchvision's own format)


def test_the_fid_extractor_cannot_unpickle_objects(tmp_path, monkeypatch):
    """A .pth holding a pickled object (not just tensors) is refused."""
    from erasebench.scorers.fid import FrechetDistance

    class Payload:
        def __reduce__(self):
            return (print, ("unpickled!",))

    path = tmp_path / "inception.pth"
    torch.save({"weight": Payload()}, path)
    with pytest.raises(Exception, match="(?i)weights.only|unsupported|global"):
        FrechetDistance(weights_path=path).metric()
