"""Content-addressed image cache: PNG + JSON metadata, atomic writes, verified reads.

An image is keyed on everything it depends on (model fingerprint, prompt, negative
prompt, seed, guidance, steps, scheduler, size, precision) and nothing else, so images
are shared between tasks, erasers with no edit, and runs. The JSON sidecar is written
last and carries the PNG's sha256: an entry without it, or whose PNG does not match, is
treated as missing and regenerated.

Processes sharing the cache split the images they all need (:meth:`ImageCache.claim`).

A run's images are handed to its scorers as
:class:`~erasebench.image_sequences.CachedImages`, read from here when used, so that no
unit's images need fit in memory at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from PIL import Image

from erasebench.faults import checkpoint
from erasebench.io import atomic_write_bytes, atomic_write_json, canonical_json, sha256_bytes

# Bump when the sampling loop changes in a way that changes images. 2: network calls on CPU
# in chunks of a fixed row count (generate.call_in_chunks), which moves the odd pixel.
GENERATOR_VERSION = 2
# Threads that read and write images (ImageCache.sound_keys and writing_in_background, and
# the sequences of image_sequences).
CACHE_THREADS = min(4, os.cpu_count() or 1)
# Images writing_in_background lets wait for their writes before a put waits for one: the
# generator's memory stays bounded (100 MB at 512 px) when the disk is slower than the GPU.
MAX_PENDING_WRITES = 128
# How often a generator waiting for an image another process is drawing looks again
# (ImageCache.claim): a batch of 512 px images takes seconds.
CLAIM_POLL_SECONDS = 0.1


def io_threads() -> ThreadPoolExecutor:
    """A pool of CACHE_THREADS threads for reading or writing images (zlib, PNG decoding and
    hashing release the GIL)."""
    return ThreadPoolExecutor(CACHE_THREADS, thread_name_prefix="erasebench-cache")


def default_cache_dir() -> Path:
    return Path(os.environ.get("ERASEBENCH_CACHE", Path.home() / ".cache" / "erasebench"))


def image_key(fields: dict[str, Any]) -> str:
    payload = {"generator_version": GENERATOR_VERSION, **fields}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


class Claim:
    """One process's claim to make one cache entry (an image: :meth:`ImageCache.claim`; an
    erasure: ``Runner.edit``), until released."""

    def __init__(self, lock: FileLock | None) -> None:
        self._lock = lock  # None: nothing to claim (a generator without a cache)

    def release(self) -> None:
        if self._lock is None or not self._lock.is_locked:
            return
        # The file goes before the lock, so that claims do not pile up beside the images; a
        # process that was waiting on it, or opens the path anew, re-checks the entry first.
        with contextlib.suppress(OSError):
            Path(self._lock.lock_file).unlink()
        self._lock.release()


def claim_file(claim_path: Path, wait: bool = False) -> Claim | None:
    """A lock on ``claim_path``, held by one process at a time: None when another process
    holds it; ``wait`` blocks until it is free. A lock, not the file's existence, so that
    a killed process's claims end with it; whoever gets one checks the entry it claims
    before making it, since the last holder may have made it."""
    claim_path.parent.mkdir(parents=True, exist_ok=True)
    # thread_local=False: the background writer thread releases what the caller claimed
    lock = FileLock(str(claim_path), timeout=0, thread_local=False)
    while True:
        try:
            lock.acquire()
            return Claim(lock)
        except Timeout:
            if not wait:
                return None
        # Polled rather than a blocking acquire, which filelock refuses while another
        # instance in this process holds the file (threads sharing a cache, as in tests).
        time.sleep(CLAIM_POLL_SECONDS)


class ImageCache:
    """Images under ``root/images/<key[:2]>/<key>.png`` with a ``.json`` sidecar."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root) / "images"

    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self.root / key[:2]
        return folder / f"{key}.png", folder / f"{key}.json"

    def get(self, key: str) -> Image.Image | None:
        """The cached image, or None if absent, truncated or altered (then it is removed)."""
        data = self._checked_png(key)
        if data is None:
            return None
        try:
            image = Image.open(io.BytesIO(data))
            image.load()
        except (OSError, ValueError):
            self.discard(key)
            return None
        return image

    def present_keys(self, keys: Sequence[str]) -> set[str]:
        """Those of ``keys`` whose entries are complete (the sidecar, written last, is
        there), neither read nor checked: what ``erasebench run --dry-run --check-cache``
        counts; the generator checks an entry (:meth:`sound_keys`) before it uses it."""
        return {key for key in keys if self._paths(key)[1].is_file()}

    def _checked_png(self, key: str) -> bytes | None:
        """The entry's PNG bytes if they match its sidecar's checksum; None if the entry is
        absent, and None (the entry removed) if it is incomplete or altered."""
        png, sidecar = self._paths(key)
        if not sidecar.is_file():
            return None
        try:
            data = png.read_bytes()
            if sha256_bytes(data) == json.loads(sidecar.read_text())["sha256"]:
                return data
        except (OSError, ValueError, KeyError, TypeError):  # JSONDecodeError is a ValueError
            pass
        self.discard(key)
        return None

    def sound_keys(self, keys: Sequence[str]) -> set[str]:
        """Those of ``keys`` whose entries are complete and match their checksums, checked on
        CACHE_THREADS threads without decoding the PNGs; the damaged ones are removed. What
        the generator asks before drawing: a damaged entry is drawn again, not read later."""
        with io_threads() as pool:
            checked = pool.map(self._checked_png, keys)
            return {key for key, data in zip(keys, checked, strict=True) if data is not None}

    def claim(self, key: str, wait: bool = False) -> Claim | None:
        """The right to draw ``key``'s image (:func:`claim_file`, on a file beside the
        entry), so that processes sharing this cache (units that ask for the same images, on
        Ray actors or --workers) split those images instead of each drawing them all. Whoever
        gets a claim checks the entry (:meth:`sound_keys`) before drawing."""
        return claim_file(self._paths(key)[0].with_suffix(".claim"), wait)

    def put(self, key: str, image: Image.Image, meta: dict[str, Any]) -> None:
        png, sidecar = self._paths(key)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data = buffer.getvalue()
        atomic_write_bytes(png, data)
        checkpoint("cache.png_written")
        atomic_write_json(sidecar, {**meta, "key": key, "sha256": sha256_bytes(data)})

    @contextlib.contextmanager
    def writing_in_background(self) -> Iterator[Callable[..., None]]:
        """A ``put`` that returns at once; the entry is written on one of CACHE_THREADS, and
        then ``put``'s optional ``then`` is called, whether the write succeeded or not (the
        generator releases the image's claim so).

        Why: encoding a 512 px PNG takes about 50 ms of one core, a fifth of the time a GPU
        at 4 images/s spends drawing the image; written in line, the GPU would wait for it.
        zlib releases the GIL, so the writes run while the caller samples the next batch.
        Leaving the block waits for every write, also when it is left by an exception (what
        was drawn is kept); then, if it was left normally, the first failed write raises.
        A process killed before a write finished loses that entry only: every write is
        atomic and an entry without its sidecar reads as missing. When MAX_PENDING_WRITES
        images wait to be written (a disk slower than the GPU), a put waits for one write to
        finish, so that the images waiting never fill the memory.
        """
        pending: list[Future[None]] = []
        unfinished: list[Future[None]] = []

        def put_then(key: str, image: Image.Image, meta: dict[str, Any],
                     then: Callable[[], None]) -> None:
            try:
                self.put(key, image, meta)
            finally:
                then()

        def put(key: str, image: Image.Image, meta: dict[str, Any],
                then: Callable[[], None] = lambda: None) -> None:
            unfinished[:] = [write for write in unfinished if not write.done()]
            if len(unfinished) >= MAX_PENDING_WRITES:
                wait(unfinished, return_when=FIRST_COMPLETED)
            write = pool.submit(put_then, key, image, meta, then)
            pending.append(write)
            unfinished.append(write)

        with io_threads() as pool:
            yield put
        for write in pending:
            write.result()

    def discard(self, key: str) -> None:
        for path in self._paths(key):
            path.unlink(missing_ok=True)

    def path_of(self, key: str) -> Path:
        return self._paths(key)[0]
