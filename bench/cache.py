"""Content-addressed image cache: PNG + JSON metadata, atomic writes, verified reads.

An image is keyed on everything it depends on (model fingerprint, prompt, negative
prompt, seed, guidance, steps, scheduler, size, precision) and nothing else, so images
are shared between tasks, erasers with no edit, and runs. The JSON sidecar is written
last and carries the PNG's sha256: an entry without it, or whose PNG does not match, is
treated as missing and regenerated.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from PIL import Image

from erasebench.faults import checkpoint
from erasebench.io import atomic_write_bytes, atomic_write_json, canonical_json, sha256_bytes

# Bump when the sampling loop changes in a way that changes images.
GENERATOR_VERSION = 1
# Threads that read and write cache entries (ImageCache.get_many, writing_in_background).
CACHE_THREADS = min(4, os.cpu_count() or 1)


def _cache_threads() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(CACHE_THREADS, thread_name_prefix="erasebench-cache")


def default_cache_dir() -> Path:
    return Path(os.environ.get("ERASEBENCH_CACHE", Path.home() / ".cache" / "erasebench"))


def image_key(fields: dict[str, Any]) -> str:
    payload = {"generator_version": GENERATOR_VERSION, **fields}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


class ImageCache:
    """Images under ``root/images/<key[:2]>/<key>.png`` with a ``.json`` sidecar."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root) / "images"

    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self.root / key[:2]
        return folder / f"{key}.png", folder / f"{key}.json"

    def get(self, key: str) -> Image.Image | None:
        """The cached image, or None if absent, truncated or altered (then it is removed)."""
        png, sidecar = self._paths(key)
        if not sidecar.is_file():
            return None
        try:
            meta = json.loads(sidecar.read_text())
            data = png.read_bytes()
            if sha256_bytes(data) != meta["sha256"]:
                raise ValueError("checksum mismatch")
            image = Image.open(io.BytesIO(data))
            image.load()
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            self.discard(key)
            return None
        return image

    def get_many(self, keys: Sequence[str]) -> dict[str, Image.Image]:
        """:meth:`get` of each key, on CACHE_THREADS threads (PNG decoding and hashing
        release the GIL): the found ones by key. A run that reuses thousands of cached
        images (the original model's, shared by every eraser's unit) reads them this way."""
        with _cache_threads() as pool:
            images = pool.map(self.get, keys)
            return {key: image for key, image in zip(keys, images, strict=True)
                    if image is not None}

    def put(self, key: str, image: Image.Image, meta: dict[str, Any]) -> None:
        png, sidecar = self._paths(key)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data = buffer.getvalue()
        atomic_write_bytes(png, data)
        checkpoint("cache.png_written")
        atomic_write_json(sidecar, {**meta, "key": key, "sha256": sha256_bytes(data)})

    @contextlib.contextmanager
    def writing_in_background(self) -> Iterator[Callable[[str, Image.Image, dict[str, Any]], None]]:
        """A ``put`` that returns at once; the entry is written on one of CACHE_THREADS.

        Why: encoding a 512 px PNG takes about 50 ms of one core, a fifth of the time a GPU
        at 4 images/s spends drawing the image; written in line, the GPU would wait for it.
        zlib releases the GIL, so the writes run while the caller samples the next batch.
        Leaving the block waits for every write, also when it is left by an exception (what
        was drawn is kept); then, if it was left normally, the first failed write raises.
        A process killed before a write finished loses that entry only: every write is
        atomic and an entry without its sidecar reads as missing.
        """
        pending: list[Future[None]] = []
        with _cache_threads() as pool:
            yield lambda key, image, meta: pending.append(pool.submit(self.put, key, image, meta))
        for write in pending:
            write.result()

    def discard(self, key: str) -> None:
        for path in self._paths(key):
            path.unlink(missing_ok=True)

    def path_of(self, key: str) -> Path:
        return self._paths(key)[0]
