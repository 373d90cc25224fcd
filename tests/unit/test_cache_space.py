import numpy as np
from PIL import Image

from erasebench import cache_space as space_module
from erasebench.cache import ImageCache
from erasebench.cache_space import CacheRoom, cache_space, free_bytes, png_sizes


def put(cache, key, height, width, noisy):
    pixels = (np.random.default_rng(len(key)).integers(0, 256, (height, width, 3))
              if noisy else np.zeros((height, width, 3)))
    cache.put(key, Image.fromarray(pixels.astype(np.uint8)), {})
    return cache._paths(key)[0].stat().st_size


def test_images_to_draw_are_sized_by_the_cached_pngs_of_their_size(tmp_path, monkeypatch):
    cache = ImageCache(tmp_path)
    # Noisy 16x16 images compress worse than flat ones; an 8 high, 16 wide one besides.
    noisy = [put(cache, f"{i:02x}" * 32, 16, 16, noisy=True) for i in range(3)]
    flat = put(cache, "ab" * 32, 16, 16, noisy=False)
    wide = put(cache, "cd" * 32, 8, 16, noisy=True)
    assert sorted(png_sizes(cache.root)[16, 16]) == sorted([*noisy, flat])
    assert png_sizes(cache.root)[8, 16] == [wide]
    assert sum(map(len, png_sizes(cache.root, sample=2).values())) == 2

    monkeypatch.setattr(space_module, "free_bytes", lambda path: 10_000)
    space = cache_space(cache.root, {(16, 16): 10, (8, 16): 5, (64, 64): 3})
    mean = (sum(noisy) + flat) / 4
    assert space.needed == 10 * mean + 5 * wide and space.unpriced == 3
    for free, short in ((int(space.needed) + 1, False), (int(space.needed) - 1, True)):
        monkeypatch.setattr(space_module, "free_bytes", lambda path, free=free: free)
        assert cache_space(cache.root, space.to_draw).short_of_room() == short
    line = space.line()
    assert line.startswith("18 images to draw, about ") and " for 15 of them (" in line
    assert "16x16: " in line and "each, the mean of 4 cached" in line
    assert line.endswith("64x64: none cached yet to size them by); 10.0 kB free on its disk")
    assert cache_space(cache.root, {(16, 16): 0}).line().startswith("no images to draw; ")
    # Erasures to make add their edits' bytes, beside the images'.
    monkeypatch.setattr(space_module, "free_bytes", lambda path: 10_000)
    with_edits = cache_space(cache.root, space.to_draw, edit_bytes=[3_000, 2_000])
    assert with_edits.needed == space.needed + 5_000
    assert "; 2 erasures to make, about 5.0 kB; 10.0 kB free on its disk" in with_edits.line()
    assert cache_space(cache.root, {}, edit_bytes=[4_000]).line() == (
        "no images to draw; 1 erasure to make, about 4.0 kB; 10.0 kB free on its disk")


def test_training_checkpoints_are_priced_twice_for_the_largest_one_per_process(
        tmp_path, monkeypatch):
    # Each process trains one erasure at a time, its checkpoint there twice while it is
    # rewritten: with 2 processes the 3,000 and 2,000 bytes ones, 10,000 in all.
    monkeypatch.setattr(space_module, "free_bytes", lambda path: 10_000)
    edits, checkpoints = [4_000, 1_000, 500], [3_000, 0, 2_000]  # the second keeps none
    for processes, expected in ((1, 6_000), (2, 10_000), (8, 10_000)):
        space = cache_space(tmp_path, {}, edit_bytes=edits, checkpoint_bytes=checkpoints,
                            processes=processes)
        assert space.checkpoints_needed == expected
        assert space.needed == 5_500 + expected
    assert space.short_of_room()  # 15,500 bytes against 10,000
    assert space.line() == (
        "no images to draw; 3 erasures to make, about 5.5 kB, and their trainings' "
        "checkpoints up to 10.0 kB while they are made; 10.0 kB free on its disk")
    one = cache_space(tmp_path, {}, edit_bytes=[4_000], checkpoint_bytes=[3_000])
    assert one.line() == ("no images to draw; 1 erasure to make, about 4.0 kB, and its "
                          "training's checkpoint up to 6.0 kB while it is made; 10.0 kB free "
                          "on its disk")
    untrained = cache_space(tmp_path, {}, edit_bytes=[4_000], checkpoint_bytes=[0])
    assert untrained.needed == 4_000 and "checkpoint" not in untrained.line()
    room = CacheRoom(tmp_path, processes=2)
    space = room.look({}, edits, checkpoints)
    assert space is not None and space.checkpoints_needed == 10_000


def test_an_empty_or_missing_cache_sizes_nothing_and_its_disk_is_found(tmp_path):
    missing = tmp_path / "not" / "yet" / "images"
    assert png_sizes(missing) == {}
    assert free_bytes(missing) == free_bytes(tmp_path) > 0
    space = cache_space(missing, {(32, 32): 7})
    assert (space.needed, space.unpriced) == (0, 7)
    assert space.line().startswith("7 images to draw (32x32: none cached yet to size them by); ")


def test_a_run_is_warned_once_and_a_fresh_cache_once_it_holds_an_image_of_the_size(
        tmp_path, monkeypatch):
    monkeypatch.setattr(space_module, "free_bytes", lambda path: 100)
    cache = ImageCache(tmp_path)
    room = CacheRoom(cache.root)
    # At the start a fresh cache prices nothing: no warning, and the watch goes on.
    assert room.note(cache_space(cache.root, {(16, 16): 10})) is None and room.watching
    assert room.look({(16, 16): 9}) is None and room.watching  # still none of its size
    put(cache, "ab" * 32, 16, 16, noisy=True)  # the first unit drew one: 9 more > 100 bytes
    space = room.look({(16, 16): 9})
    assert space is not None and space.needed > 100 and not room.watching
    assert room.look({(16, 16): 9}) is None  # warned once

    # Every image to draw priced and fitting: the watch ends without a warning.
    monkeypatch.setattr(space_module, "free_bytes", lambda path: 10**9)
    room = CacheRoom(cache.root)
    assert room.look({(16, 16): 9}) is None and not room.watching
    assert CacheRoom(tmp_path / "missing").look({(16, 16): 9}) is None  # not seen: no look
