"""Where each scorer's weight file lives, whether it is there, and what to do when it is not.

A :class:`WeightFile` names one file a scorer reads, the folder convention it follows
(torch hub's ``$TORCH_HOME/hub/checkpoints``, the Hugging Face cache, a package's own
data) and where it comes from. ``erasebench weights`` lists them per task; a scorer calls
:meth:`WeightFile.ensure` on first use, which downloads when there is network and otherwise
raises a :class:`MissingWeightsError` naming the file, the folder and the option that
takes an explicit path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from erasebench.errors import UserError, short_reason
from erasebench.io import sha256_file

_DIGESTS: dict[tuple[str, int, int], str] = {}


class MissingWeightsError(UserError):
    """A weight file is not there and could not be fetched; ``failure`` says why in a few
    words ("download failed: URLError: ..."), the message also what to do."""

    def __init__(self, message: str, failure: str) -> None:
        super().__init__(message)
        self.failure = failure


def file_digest(path: str | os.PathLike[str], length: int = 16) -> str:
    """A file's sha256 prefix, computed once per process and file version (weights are
    hundreds of MB and every scored unit records the hash)."""
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_file(path)
    return _DIGESTS[key][:length]


def torch_hub_file(name: str) -> Path:
    """``$TORCH_HOME/hub/checkpoints/<name>``, where torchvision and torch hub keep weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def download_to(url: str) -> Callable[[Path], Path]:
    def download(path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(path), progress=True)
        return path

    return download


@dataclass(frozen=True)
class WeightFile:
    """One weight file a scorer needs.

    ``fetch`` downloads it and returns where it landed, normally ``path`` (None: nothing to
    download, e.g. a package's own file); ``where`` says in words which folder convention
    ``path`` follows, and ``option`` which task option takes an explicit path instead.
    """

    scorer: str
    path: Path
    source: str
    where: str
    option: str = ""
    fetch: Callable[[Path], Path] | None = None

    @classmethod
    def torch_hub(cls, scorer: str, url: str, option: str,
                  path: str | Path | None = None) -> WeightFile:
        """A file torch hub downloads from ``url`` into ``$TORCH_HOME/hub/checkpoints``
        (or ``path`` when given)."""
        return cls(scorer=scorer, path=Path(path) if path else torch_hub_file(Path(url).name),
                   source=url, where="$TORCH_HOME/hub/checkpoints/, torch hub's cache",
                   option=option, fetch=download_to(url))

    def present(self) -> bool:
        return self.path.is_file()

    def ensure(self) -> Path:
        """The file's path, downloading it first if it is missing and there is network."""
        if self.present():
            return self.path
        failure = "no way to download it"
        if self.fetch is not None:
            try:
                fetched = self.fetch(self.path)
                if fetched.is_file():
                    return fetched
                failure = f"the download left no file at {fetched}"
            except Exception as error:  # no network, proxy, DNS: all mean "put the file there"
                failure = f"download failed: {short_reason(error)}"
        explicit = f", or give its path with the task option {self.option!r}" if self.option \
            else ""
        raise MissingWeightsError(
            f"{self.scorer} weights not found at {self.path} ({failure}). Get {self.source} "
            f"and put it there ({self.where}){explicit}. `erasebench weights` lists every "
            "file a task needs", failure)

    def version(self) -> str:
        """``sha256:<prefix>`` of the file, or ``missing``."""
        return f"sha256:{file_digest(self.path)}" if self.present() else "missing"
