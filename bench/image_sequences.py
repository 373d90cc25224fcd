"""Images read when used: a unit's images as a sequence that decodes a slice at a time.

A unit of a full reproduction has thousands of 512 px images: COCO-30k's 30,000 take about
30 GB decoded (Pillow keeps 4 bytes a pixel), and FID to the original model reads as many
again. So neither the runner nor ``erasebench score`` holds them: the generator returns
:class:`CachedImages` (its images in the image cache) and ``erasebench score`` reads a folder
as :class:`ImageFiles`. Indexing reads one image; a slice reads its images on the cache's
threads, and the next slice of its length ahead; iterating reads READ_CHUNK at a time. Nothing
is kept, so every use decodes again: a scorer goes through the images once per pass, a slice
at a time.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Generic, TypeVar, overload

from PIL import Image

from erasebench.cache import ImageCache, io_threads
from erasebench.errors import UserError

# Images read at once when iterated: enough to keep the cache's threads busy, few enough
# (64 MB at 512 px) not to matter.
READ_CHUNK = 64
# Whether slices read the next slice ahead (ImagesReadWhenUsed); benchmarks/unit_memory.py
# turns it off to measure what it gains.
READ_AHEAD = True

Item = TypeVar("Item")


class ImagesReadWhenUsed(Sequence[Image.Image], Generic[Item]):
    """A sequence of images named by ``items`` (cache keys, paths), each read by
    :meth:`_read_one`, a slice's on the cache's threads.

    Slices read ahead: after ``[a:b]`` the next slice of the same length, ``[b:2b-a]``, is
    read on a thread of its own, so that a scorer's next batch is decoded while it scores
    this one (on the GPU, or in preprocessing that releases the GIL). One slice ahead at
    most; a slice that is not the one read ahead is read there and then.
    """

    def __init__(self, items: Sequence[Item]) -> None:
        self.items = list(items)
        self._ahead: tuple[int, int, Future[list[Image.Image]]] | None = None
        self._ahead_thread: ThreadPoolExecutor | None = None

    def _read_one(self, item: Item) -> Image.Image:
        raise NotImplementedError

    def _read(self, items: list[Item]) -> list[Image.Image]:
        if len(items) == 1:  # one image: no threads to start
            return [self._read_one(items[0])]
        with io_threads() as pool:
            return list(pool.map(self._read_one, items))

    def __len__(self) -> int:
        return len(self.items)

    @overload
    def __getitem__(self, index: int) -> Image.Image: ...
    @overload
    def __getitem__(self, index: slice) -> list[Image.Image]: ...
    def __getitem__(self, index: int | slice) -> Image.Image | list[Image.Image]:
        if not isinstance(index, slice):
            return self._read_one(self.items[index])
        start, stop, step = index.indices(len(self.items))
        if step != 1 or stop <= start:
            return self._read(self.items[index])
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[:2] == (start, stop):
            images = ahead[2].result()  # raises what the read raised
        else:
            images = self._read(self.items[start:stop])
        if READ_AHEAD and stop < len(self.items):
            self._read_ahead(stop, min(len(self.items), 2 * stop - start))
        return images

    def _read_ahead(self, start: int, stop: int) -> None:
        if self._ahead_thread is None:
            self._ahead_thread = ThreadPoolExecutor(1, thread_name_prefix="erasebench-ahead")
            weakref.finalize(self, self._ahead_thread.shutdown, wait=False)
        self._ahead = (start, stop, self._ahead_thread.submit(self._read, self.items[start:stop]))

    def __iter__(self) -> Iterator[Image.Image]:
        for start in range(0, len(self.items), READ_CHUNK):
            yield from self[start : start + READ_CHUNK]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.items)} images)"


class CacheEntryLostError(UserError):
    """An image the generator had in the cache was gone or damaged when read back."""


class CachedImages(ImagesReadWhenUsed[str]):
    """The images of cache ``keys``, in order, each checked against its checksum when read."""

    def __init__(self, cache: ImageCache, keys: Sequence[str]) -> None:
        super().__init__(keys)
        self.cache = cache

    def _read_one(self, key: str) -> Image.Image:
        image = self.cache.get(key)
        if image is None:
            raise CacheEntryLostError(
                f"image cache entry {self.cache.path_of(key)} was there when its images were "
                "drawn but is now missing or damaged (was the cache cleared or moved while "
                "this ran? a failing disk?); run again: what is missing is drawn again")
        return image


class ImageFiles(ImagesReadWhenUsed[Path]):
    """The image files at ``paths``, in order, as RGB."""

    def _read_one(self, path: Path) -> Image.Image:
        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        except OSError as error:
            raise UserError(f"cannot read the image {path}: {error}") from None
