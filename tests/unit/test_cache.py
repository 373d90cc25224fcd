import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from erasebench.cache import ImageCache
from erasebench.errors import UserError
from erasebench.image_sequences import CachedImages, CacheEntryLostError, ImageFiles


def _image(value: int) -> Image.Image:
    return Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8))


def test_a_slice_of_cached_images_is_read_on_the_cache_threads(tmp_path):
    cache = ImageCache(tmp_path)
    keys = [f"{i:064d}" for i in range(6)]
    for index, key in enumerate(keys):
        cache.put(key, _image(index), {})
    original, readers = cache.get, []
    cache.get = lambda key: readers.append(threading.current_thread().name) or original(key)
    images = CachedImages(cache, keys)[:]
    assert [np.asarray(image)[0, 0, 0] for image in images] == list(range(6))  # in order
    assert len(readers) == 6 and all(name.startswith("erasebench-cache") for name in readers)


def test_cached_images_read_by_index_slice_and_iteration_in_order(tmp_path, monkeypatch):
    import erasebench.image_sequences as image_sequences

    cache = ImageCache(tmp_path)
    keys = [f"{i:064d}" for i in range(5)]
    for index, key in enumerate(keys):
        cache.put(key, _image(10 * index), {})
    monkeypatch.setattr(image_sequences, "READ_CHUNK", 2)
    images = CachedImages(cache, [keys[3], *keys, keys[3]])  # a key may come twice
    values = [10 * i for i in (3, 0, 1, 2, 3, 4, 3)]

    assert len(images) == 7
    assert np.asarray(images[0])[0, 0, 0] == 30 and np.asarray(images[-1])[0, 0, 0] == 30
    assert [np.asarray(i)[0, 0, 0] for i in images[2:5]] == values[2:5]
    assert [np.asarray(i)[0, 0, 0] for i in images] == values


def test_a_cached_image_lost_after_it_was_drawn_is_a_clear_error(tmp_path):
    cache = ImageCache(tmp_path)
    cache.put("a" * 64, _image(1), {})
    cache.put("b" * 64, _image(2), {})
    images = CachedImages(cache, ["a" * 64, "b" * 64])
    damaged = cache.path_of("b" * 64)
    damaged.write_bytes(damaged.read_bytes()[:50])
    assert np.asarray(images[0])[0, 0, 0] == 1
    for read in (lambda: images[1], lambda: images[0:2], lambda: list(images)):
        with pytest.raises(CacheEntryLostError, match=f"{'b' * 64}.png.*run again"):
            read()
    assert cache.sound_keys(["a" * 64, "b" * 64]) == {"a" * 64}


def test_sound_keys_checks_the_checksum_without_decoding_and_drops_damaged_entries(
        tmp_path, monkeypatch):
    cache = ImageCache(tmp_path)
    for key, value in (("a" * 64, 1), ("b" * 64, 2), ("c" * 64, 3)):
        cache.put(key, _image(value), {})
    png = cache.path_of("b" * 64)
    altered = bytearray(png.read_bytes())
    altered[-20] ^= 0xFF
    png.write_bytes(bytes(altered))
    (tmp_path / "images" / ("c" * 2) / f"{'c' * 64}.json").write_text("not json")
    monkeypatch.setattr(Image, "open", lambda *a, **k: pytest.fail("decoded a PNG"))
    assert cache.sound_keys(["a" * 64, "b" * 64, "c" * 64, "d" * 64]) == {"a" * 64}
    assert not png.exists() and not cache.path_of("c" * 64).exists()


def test_background_writes_wait_when_too_many_images_are_waiting(tmp_path, monkeypatch):
    import erasebench.cache as cache_module

    monkeypatch.setattr(cache_module, "MAX_PENDING_WRITES", 3)
    cache = ImageCache(tmp_path)
    original_put, release = cache.put, threading.Event()
    started = []

    def slow_put(key, image, meta):  # a disk that stalls until released
        started.append(key)
        release.wait(timeout=20)
        original_put(key, image, meta)

    cache.put = slow_put
    keys = [f"{i:064d}" for i in range(5)]
    queued = []
    with cache.writing_in_background() as put:
        waiter = threading.Thread(target=lambda: [put(k, _image(1), {}) or queued.append(k)
                                                  for k in keys])
        waiter.start()
        waiter.join(timeout=2)
        assert queued == keys[:3]  # the fourth put waits for a write to finish
        release.set()
        waiter.join(timeout=20)
    assert queued == keys and all(cache.get(key) is not None for key in keys)


def test_image_files_are_read_as_rgb_when_used_and_a_bad_one_is_named(tmp_path):
    paths = []
    for value in (5, 6, 7):
        paths.append(tmp_path / f"{value}.png")
        _image(value).convert("L").save(paths[-1])
    files = ImageFiles(paths)
    paths[2].write_bytes(b"not a png")  # read when used, not when listed
    assert [np.asarray(image)[0, 0].tolist() for image in files[:2]] == [[5, 5, 5], [6, 6, 6]]
    with pytest.raises(UserError, match="cannot read the image .*7.png"):
        files[2]


def test_a_slice_reads_the_next_one_ahead_on_a_thread_of_its_own(tmp_path):
    cache = ImageCache(tmp_path)
    keys = [f"{i:064d}" for i in range(5)]
    for index, key in enumerate(keys):
        cache.put(key, _image(index), {})
    images = CachedImages(cache, keys)
    reads, read = [], images._read
    images._read = lambda wanted: reads.append(
        (len(wanted), threading.current_thread().name.split("_")[0])) or read(wanted)
    values = [[np.asarray(i)[0, 0, 0] for i in images[a:b]] for a, b in ((0, 2), (2, 4), (4, 5))]
    assert values == [[0, 1], [2, 3], [4]]
    # the first read on the caller's thread; the next slices read ahead, cut at the end
    assert reads == [(2, "MainThread"), (2, "erasebench-ahead"), (1, "erasebench-ahead")]
    reads.clear()
    assert [np.asarray(i)[0, 0, 0] for i in images[1:3]] == [1, 2]  # not the one read ahead
    assert reads[0] == (2, "MainThread")


def test_a_claim_has_one_holder_at_a_time_and_leaves_no_file_behind(tmp_path):
    cache, key = ImageCache(tmp_path), "ab" * 32
    claim = cache.claim(key)
    assert claim is not None and cache.claim(key) is None
    released = threading.Event()

    def release_soon():
        time.sleep(0.3)
        released.set()
        claim.release()

    threading.Thread(target=release_soon).start()
    waited = cache.claim(key, wait=True)  # blocks until the holder lets go
    assert released.is_set() and waited is not None
    waited.release()
    waited.release()  # releasing twice is harmless
    assert not list(tmp_path.rglob("*.claim"))
    assert cache.claim(key) is not None


def test_the_claims_of_a_killed_process_end_with_it(tmp_path):
    key = "cd" * 32
    code = ("import os, sys\n"
            "from erasebench.cache import ImageCache\n"
            "assert ImageCache(sys.argv[1]).claim(sys.argv[2]) is not None\n"
            "os._exit(0)  # no clean-up, as after SIGKILL: the kernel drops the lock\n")
    subprocess.run([sys.executable, "-c", code, str(tmp_path), key], check=True, timeout=120)
    assert list(tmp_path.rglob("*.claim"))  # its file is left, its lock is not
    assert ImageCache(tmp_path).claim(key) is not None
