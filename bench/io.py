"""Atomic, checksummed file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from erasebench.faults import checkpoint

if TYPE_CHECKING:  # torch is imported where used: the CLI starts without it
    import torch

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read the process umask (the only way is to set it and set it back)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Calls ``write(tmp_path)`` then renames the temp file over ``path``.

    The temp file lives in the target's folder so the rename is atomic on POSIX; it is
    fsynced first so that a crash after the rename cannot leave an empty file behind.
    If ``write`` raises (disk full, a bug), the previous file at ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
        checkpoint("io.before_rename")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal strings (and hashes)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def atomic_write_json(path: str | os.PathLike[str], value: Any) -> Path:
    text = json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    return atomic_write_bytes(path, text.encode())


def read_safetensors(path: str | os.PathLike[str]
                     ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Every tensor of the safetensors file at ``path``, and its metadata; raises what
    safetensors raises for a missing or damaged file (several types)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        return {name: handle.get_tensor(name) for name in handle.keys()}, metadata  # noqa: SIM118


def utc_timestamp() -> str:
    """Now, in UTC, to the second, as the files erasebench writes date themselves."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
