import threading

import numpy as np
from PIL import Image

from erasebench.cache import ImageCache


def _image(value: int) -> Image.Image:
    return Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8))


def test_get_many_returns_the_sound_entries_and_drops_the_damaged_one(tmp_path):
    cache = ImageCache(tmp_path)
    for key, value in (("a" * 64, 10), ("b" * 64, 20), ("c" * 64, 30)):
        cache.put(key, _image(value), {})
    damaged = cache.path_of("b" * 64)
    damaged.write_bytes(damaged.read_bytes()[:50])
    found = cache.get_many(["a" * 64, "b" * 64, "c" * 64, "d" * 64])
    assert sorted(found) == ["a" * 64, "c" * 64]
    assert np.asarray(found["c" * 64])[0, 0, 0] == 30
    assert not damaged.exists()  # removed, to be drawn again


def test_get_many_reads_on_the_cache_threads(tmp_path):
    cache = ImageCache(tmp_path)
    keys = [f"{i:064d}" for i in range(6)]
    for index, key in enumerate(keys):
        cache.put(key, _image(index), {})
    original, readers = cache.get, []
    cache.get = lambda key: readers.append(threading.current_thread().name) or original(key)
    assert list(cache.get_many(keys)) == keys  # in the order asked for
    assert len(readers) == 6 and all(name.startswith("erasebench-cache") for name in readers)
