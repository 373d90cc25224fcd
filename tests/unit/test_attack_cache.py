"""The attack cache keeps what an attack learnt, exactly, under everything it depends on,
and takes a damaged or foreign file for missing."""

import errno

import torch
from PIL import Image

from erasebench.attack_cache import AttackCache, image_digest

FIELDS = {"attack": "recovery", "texts": ["a red circle"], "radius": 0.2, "steps": 50}


def _learnt():
    return {"delta": torch.randn(77, 32), "soft": torch.zeros(0, 32),
            "losses": torch.tensor([0.5, 0.25, 1 / 3], dtype=torch.float64)}


def test_what_is_kept_is_read_back_bit_for_bit_under_its_fields_alone(tmp_path):
    cache = AttackCache(tmp_path / "attacks")
    learnt = _learnt()
    assert cache.get(FIELDS) is None
    assert cache.put(FIELDS, learnt)
    held = cache.get({**FIELDS})
    assert held is not None and set(held) == set(learnt)
    for name, tensor in learnt.items():
        assert held[name].dtype == tensor.dtype and torch.equal(held[name], tensor), name
    assert held["losses"].tolist() == [0.5, 0.25, 1 / 3]
    assert cache.get({**FIELDS, "radius": 0.3}) is None
    assert cache.get({**FIELDS, "texts": ["a red square"]}) is None


def test_a_damaged_or_foreign_file_reads_as_missing(tmp_path):
    cache = AttackCache(tmp_path)
    cache.put(FIELDS, _learnt())
    path = cache.path(FIELDS)
    path.write_bytes(path.read_bytes()[:-100])  # cut short
    assert cache.get(FIELDS) is None
    # A file at the key's name holding another attack's fields (a hash collision, a file
    # copied by hand) is not taken for this attack's.
    other = {**FIELDS, "radius": 0.3}
    cache.put(other, _learnt())
    cache.path(other).replace(path)
    assert cache.get(FIELDS) is None
    cache.put(FIELDS, _learnt())  # made again, kept over it
    assert cache.get(FIELDS) is not None


def test_a_write_that_fails_keeps_nothing_and_says_so(tmp_path, monkeypatch):
    def disk_full(tensors, filename, metadata=None):
        raise OSError(errno.ENOSPC, "No space left on device")

    import safetensors.torch

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    cache = AttackCache(tmp_path)
    assert cache.put(FIELDS, _learnt()) is False
    assert cache.get(FIELDS) is None
    assert [p.name for p in tmp_path.iterdir()] == []  # no temp file left


def test_images_are_keyed_by_their_pixels_size_and_mode():
    red = Image.new("RGB", (4, 4), (255, 0, 0))
    same = Image.new("RGB", (4, 4), (255, 0, 0))
    one_pixel = red.copy()
    one_pixel.putpixel((3, 3), (254, 0, 0))
    assert image_digest([red]) == image_digest([same])
    assert image_digest([red]) != image_digest([one_pixel])
    assert image_digest([red, one_pixel]) != image_digest([one_pixel, red])
    assert image_digest([red]) != image_digest([red.convert("RGBA")])
    assert image_digest([Image.new("L", (2, 8))]) != image_digest([Image.new("L", (4, 4))])


def test_the_attacks_held_are_counted_by_the_unit_they_were_made_for(tmp_path):
    # What a run's time left and --dry-run --check-cache read: no key is at hand there
    # (it needs the edit's weights and the references' pixels), the unit's run id is.
    cache = AttackCache(tmp_path / "attacks")
    assert cache.held_by_unit() == {}  # no folder yet
    cache.put(FIELDS, _learnt(), unit="a1", seconds=12.5, made_as="v1")
    cache.put({**FIELDS, "radius": 0.3}, _learnt(), unit="a1", seconds=30.0, made_as="v1")
    cache.put({**FIELDS, "radius": 0.1}, _learnt(), unit="b2", seconds=7.25, made_as="v1")
    cache.put({**FIELDS, "radius": 0.25}, _learnt(), unit="b2", seconds=2.0, made_as="v2")
    cache.put({**FIELDS, "radius": 0.4}, _learnt())  # no unit named: not counted
    # Made before entries said what they were made as: not counted.
    cache.put({**FIELDS, "radius": 0.6}, _learnt(), unit="b2", seconds=3.0)
    damaged = {**FIELDS, "radius": 0.5}
    cache.put(damaged, _learnt(), unit="b2", seconds=1.0, made_as="v1")
    cache.path(damaged).write_bytes(b"\x10")  # cut short: read as missing, made again
    (tmp_path / "attacks" / "notes.txt").write_text("not an attack")
    held = cache.held_by_unit()
    assert {unit: (h.count, h.seconds) for unit, h in held.items()} == {
        ("a1", "v1"): (2, 42.5), ("b2", "v1"): (1, 7.25), ("b2", "v2"): (1, 2.0)}
    # The unit and seconds are no part of the key: the attack reads back under its fields.
    assert cache.get(FIELDS) is not None
