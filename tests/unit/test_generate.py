import contextlib
import threading
import time
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from erasebench import generate, memory
from erasebench.cache import ImageCache
from erasebench.errors import UserError
from erasebench.generate import Generator, NonFiniteImageError, weights_cast
from erasebench.specs import GenerationSpec, PromptSpec
from erasebench.testing import TracingCompileBackend

PROMPTS = [
    PromptSpec(text="a cat", seed=1),
    PromptSpec(text="a dog", seed=2, guidance=3.0),
    PromptSpec(text="a red circle", seed=3, negative="blurry"),
    PromptSpec(text="a cat", seed=4),
    PromptSpec(text="", seed=5, guidance=1.0),
]


def _arrays(images):
    return np.stack([np.asarray(image) for image in images])


@pytest.mark.parametrize("scheduler", ["ddim", "lms", "pndm", "dpm"])
def test_batch_size_and_order_never_change_an_image(tiny, scheduler):
    settings = GenerationSpec(scheduler=scheduler, steps=6)
    one = _arrays(Generator(tiny, settings, batch_size=1, progress=False).images(PROMPTS))
    four = Generator(tiny, settings, batch_size=4, progress=False).images(PROMPTS[::-1])
    assert one.shape == (5, 32, 32, 3)
    assert np.array_equal(one, _arrays(four)[::-1])


def test_on_cpu_every_network_call_has_one_row_count_whatever_the_batch(tiny):
    """On one thread (a run's CPU workers), batches of 40 images (80 UNet rows) and of 3
    gave images differing in 7 values of 122,880 on this project's machine when each call
    took the whole batch; each network's calls now take cpu_call_rows rows, so no kernel
    choice can differ."""
    rows: dict[str, list[int]] = {"text_encoder": [], "unet": [], "vae decoder": []}
    hooks = [module.register_forward_pre_hook(
        lambda module, args, kwargs, name=name: rows[name].append(
            (args[0] if args else next(iter(kwargs.values()))).shape[0]),
        with_kwargs=True)
        for name, module in [("text_encoder", tiny.text_encoder), ("unet", tiny.unet),
                             ("vae decoder", tiny.vae.decoder)]]
    settings = GenerationSpec(steps=2)
    prompts = [PromptSpec(text=f"a cat number {seed % 9}", seed=seed) for seed in range(40)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        whole = _arrays(Generator(tiny, settings, batch_size=40, progress=False).images(prompts))
        assert len(rows["unet"]) == 5 * settings.steps  # 80 rows in calls of 16
        threes = _arrays(Generator(tiny, settings, batch_size=3, progress=False).images(prompts))
    finally:
        torch.set_num_threads(threads)
        for hook in hooks:
            hook.remove()
    assert {name: set(counts) for name, counts in rows.items()} == {
        name: {generate.cpu_call_rows(tiny, name.split()[0])} for name in rows}
    np.testing.assert_array_equal(whole, threes)


def test_cpu_rows_cover_a_fixed_count_of_latent_positions_and_at_least_eight():
    def model(native_size, latent_size):
        return SimpleNamespace(native_size=native_size,
                               unet=SimpleNamespace(config=SimpleNamespace(sample_size=latent_size)))

    def rows(model):
        return [generate.cpu_call_rows(model, name) for name in ("text_encoder", "unet", "vae")]

    assert rows(model(32, 8)) == [16, 64, 32]  # the miniature world's: 4096 / 64, 2048 / 64
    assert rows(model(32, 16)) == [16, 16, 8]  # the tiny test model's: 4096 / 256, 2048 / 256
    assert rows(model(512, 64)) == [8, 8, 8]  # SD v1's: one row covers 4096 positions
    assert rows(model(96, 24)) == [8, 8, 8]  # 4096 // 576 = 7 and 2048 // 576 = 3: at least 8
    assert rows(model(32, (8, 4))) == [16, 128, 64]  # a (height, width) sample size


def test_seed_prompt_and_guidance_each_change_the_image(tiny):
    generator = Generator(tiny, GenerationSpec(steps=4), progress=False)
    base, *others = _arrays(generator.images([
        PromptSpec(text="a cat", seed=1), PromptSpec(text="a cat", seed=2),
        PromptSpec(text="a dog", seed=1), PromptSpec(text="a cat", seed=1, guidance=2.0),
    ]))
    for other in others:
        assert not np.array_equal(base, other)


def test_cached_images_are_reused_and_a_truncated_png_is_regenerated(tiny, tmp_path):
    cache = ImageCache(tmp_path)
    generator = Generator(tiny, GenerationSpec(steps=4), cache, progress=False)
    first = _arrays(generator.images(PROMPTS[:2]))
    key = generator.keys(PROMPTS[:1])[0]
    png = cache.path_of(key)
    png.write_bytes(png.read_bytes()[:100])  # truncated: a crash mid-write, a bad disk
    assert cache.get(key) is None  # detected by the checksum
    calls = []
    original = generator.sample
    generator.sample = lambda prompts, conditioning=None: (calls.append(len(prompts))
                                                           or original(prompts, conditioning))
    again = _arrays(generator.images(PROMPTS[:2]))
    assert calls == [1]  # only the damaged one was generated again
    assert np.array_equal(first, again)
    assert cache.get(key) is not None


def test_with_a_cache_the_images_are_read_from_it_when_used(tiny, tmp_path):
    cache = ImageCache(tmp_path)
    generator = Generator(tiny, GenerationSpec(steps=2), cache, batch_size=2, progress=False)
    images = generator.images(PROMPTS[:3])
    without_cache = Generator(tiny, GenerationSpec(steps=2), batch_size=2, progress=False)
    assert np.array_equal(_arrays(images), _arrays(without_cache.images(PROMPTS[:3])))
    # nothing of them is held: an entry changed afterwards is what the sequence gives
    replacement = Image.fromarray(np.zeros_like(np.asarray(images[1])))
    cache.put(generator.keys(PROMPTS[1:2])[0], replacement, {})
    assert not np.asarray(images[1]).any() and np.asarray(images[0]).any()


def test_a_batch_is_written_to_the_cache_while_the_next_one_is_sampled(tiny, tmp_path):
    cache = ImageCache(tmp_path)
    generator = Generator(tiny, GenerationSpec(steps=2), cache, batch_size=2, progress=False)
    sampled, next_batch_began = [], threading.Event()
    original_sample, original_put = generator.sample, cache.put

    def sample(prompts, conditioning=None):
        if sampled:
            next_batch_began.set()
        sampled.append(len(prompts))
        return original_sample(prompts, conditioning)

    waited = []

    def put(key, image, meta):  # written inline, the first batch's puts would time out here
        waited.append((threading.current_thread().name, next_batch_began.wait(timeout=20)))
        original_put(key, image, meta)

    generator.sample, cache.put = sample, put
    images = generator.images(PROMPTS[:4])
    assert sampled == [2, 2]
    assert all(began for _, began in waited[:2])
    assert all(name.startswith("erasebench-cache") for name, _ in waited)
    # every entry is complete once images() returns, and holds the image it returned
    for key, image in zip(generator.keys(PROMPTS[:4]), images, strict=True):
        assert np.array_equal(np.asarray(cache.get(key)), np.asarray(image))


def test_a_failed_cache_write_is_raised_and_the_other_entries_are_kept(tiny, tmp_path):
    cache = ImageCache(tmp_path)
    generator = Generator(tiny, GenerationSpec(steps=2), cache, batch_size=2, progress=False)
    keys = generator.keys(PROMPTS[:4])
    original_put = cache.put

    def put(key, image, meta):
        if key == keys[1]:
            raise OSError(28, "No space left on device")
        original_put(key, image, meta)

    cache.put = put
    with pytest.raises(OSError, match="No space"):
        generator.images(PROMPTS[:4])
    assert [cache.get(key) is not None for key in keys] == [True, False, True, True]


def test_images_drawn_before_a_failing_batch_are_cached(tiny, tmp_path):
    cache = ImageCache(tmp_path)
    generator = Generator(tiny, GenerationSpec(steps=2), cache, batch_size=2, progress=False)
    original_sample, drawn = generator.sample, []

    def sample(prompts, conditioning=None):
        if drawn:
            raise RuntimeError("the second batch failed")
        drawn.extend(prompts)
        return original_sample(prompts, conditioning)

    generator.sample = sample
    with pytest.raises(RuntimeError, match="second batch"):
        generator.images(PROMPTS[:4])
    cached = [prompt for prompt, key in zip(PROMPTS[:4], generator.keys(PROMPTS[:4]),
                                            strict=True) if cache.get(key) is not None]
    assert len(drawn) == 2 and sorted(cached, key=PROMPTS.index) == \
        sorted(drawn, key=PROMPTS.index)


def test_cache_key_covers_every_setting(tiny):
    prompt = [PromptSpec(text="a cat", seed=1)]
    base = Generator(tiny, GenerationSpec()).keys(prompt)
    for change in [{"steps": 49}, {"guidance": 7.0}, {"scheduler": "lms"}, {"height": 64},
                   {"precision": "bf16"}]:
        assert Generator(tiny, GenerationSpec(**change)).keys(prompt) != base
    assert Generator(tiny, GenerationSpec(), batch_size=3).keys(prompt) == base


def test_auto_precision_is_fp16_on_a_gpu_and_fp32_elsewhere():
    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    assert [generate.resolved_precision_name("auto", d) for d in (cuda, cpu)] == ["fp16", "fp32"]
    assert generate.resolve_precision("auto", cuda) == torch.float16
    assert [generate.resolve_precision(p, cuda) for p in ("fp32", "bf16")] == \
        [torch.float32, torch.bfloat16]


def test_non_finite_images_are_reported_and_not_cached(tiny, tmp_path):
    cache = ImageCache(tmp_path)
    generator = Generator(tiny, GenerationSpec(steps=2), cache, progress=False)
    weight = tiny.vae.decoder.conv_out.bias
    saved = weight.detach().clone()
    with torch.no_grad():
        weight.fill_(float("nan"))
    try:
        with pytest.raises(NonFiniteImageError, match="a cat"):
            generator.images(PROMPTS[:1])
    finally:
        with torch.no_grad():
            weight.copy_(saved)
    assert not list(tmp_path.rglob("*.png"))


def with_room_for(generator, images):
    """``generator``'s sampling runs out of memory on more than ``images`` images; returns
    the batch sizes it is called with."""
    original, sizes = generator.sample, []

    def sample_with_little_memory(prompts, conditioning=None):
        sizes.append(len(prompts))
        if len(prompts) > images:
            raise torch.OutOfMemoryError("simulated")
        return original(prompts, conditioning)

    generator.sample = sample_with_little_memory
    return sizes


def test_out_of_memory_halves_the_batch_and_loses_nothing(tiny, tmp_path):
    generator = Generator(tiny, GenerationSpec(steps=2), ImageCache(tmp_path), batch_size=5,
                          progress=False)
    sizes = with_room_for(generator, 2)
    images = generator.images(PROMPTS)
    assert sizes[:3] == [5, 2, 2] and generator.batch_size == 2
    reference = Generator(tiny, GenerationSpec(steps=2), batch_size=1, progress=False)
    assert np.array_equal(_arrays(images), _arrays(reference.images(PROMPTS)))


def test_fitting_batch_by_hand():
    assert memory.fitting_batch(10e9, 1e9) == 8  # 0.8 x 10 GB holds 8 images of 1 GB
    assert memory.fitting_batch(20e9, 1e9) == 16  # 16 fit, 32 would not
    assert memory.fitting_batch(80e9, 1e9) == 64  # the cap
    assert memory.fitting_batch(1e9, 2e9) == 1  # never below one
    assert memory.fitting_batch(5e9, 0.0) == memory.MAX_BATCH


def images_take_1500_bytes_each(monkeypatch, free: float) -> None:
    """The memory a batch takes and the free memory, faked: the probe batch of 2 peaks at
    3000 bytes, and ``free`` bytes are free."""
    @contextlib.contextmanager
    def two_images_take_3000_bytes(device):
        peak = memory.Peak()
        yield peak
        peak.bytes = 3000.0

    monkeypatch.setattr(memory, "measure_peak", two_images_take_3000_bytes)
    monkeypatch.setattr(memory, "free_bytes", lambda device: free)


def test_the_batch_is_fitted_to_the_memory_the_first_batch_took(tiny, monkeypatch):
    images_take_1500_bytes_each(monkeypatch, free=12000.0)  # 0.8 x 12000 / 1500 = 6.4
    generator = Generator(tiny, GenerationSpec(steps=2), fit_batch=True, progress=False)
    assert generator.batch_size == memory.PROBE_BATCH == 2
    original, sizes = generator.sample, []

    def recording(prompts, conditioning=None):
        sizes.append(len(prompts))
        return original(prompts, conditioning)

    generator.sample = recording
    images = generator.images(PROMPTS)
    assert sizes == [2, 3] and generator.batch_size == 4 and not generator.fit_batch
    reference = Generator(tiny, GenerationSpec(steps=2), batch_size=1, progress=False)
    assert np.array_equal(_arrays(images), _arrays(reference.images(PROMPTS)))
    # on a CPU nothing is measured: the model's default batch
    assert Generator(tiny, GenerationSpec()).fit_batch is False


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_a_gpu_the_first_batch_sets_the_batch_size(tiny):
    model = tiny.to("cuda")
    try:  # the tiny model is not SD-sized, so fitting is asked for; measured for real
        generator = Generator(model, GenerationSpec(steps=2), progress=False, fit_batch=True)
        assert generator.batch_size == memory.PROBE_BATCH
        generator.images([PromptSpec(text="a cat", seed=seed) for seed in range(6)])
        assert not generator.fit_batch and generator.batch_size == memory.MAX_BATCH
    finally:
        tiny.to("cpu")


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_on_gpu_is_close_to_fp32_and_batch_invariant(tiny, precision):
    model = tiny.to("cuda")
    try:
        half = Generator(model, GenerationSpec(steps=4, precision=precision), progress=False)
        single = Generator(model, GenerationSpec(steps=4, precision=precision), batch_size=1,
                           progress=False)
        full = Generator(model, GenerationSpec(steps=4, precision="fp32"), progress=False)
        a, b, c = (_arrays(g.images(PROMPTS)).astype(int) for g in (half, single, full))
        assert np.abs(a - b).mean() < 1.0  # GPU kernels may differ by batch in the last bits
        assert np.abs(a - c).mean() < 4.0
    finally:
        tiny.to("cpu")


@pytest.mark.gpu
def test_compiled_sampling_on_gpu_is_close_to_eager_and_follows_edits(tiny):
    model = tiny.to("cuda")  # inductor itself, not the tests' tracing backend
    settings = GenerationSpec(steps=4, precision="fp16")
    eager = Generator(model, settings, progress=False)
    compiled = Generator(model, settings, batch_size=len(PROMPTS), progress=False, compile=True)
    torch._dynamo.reset()
    try:
        plain, fast = (_arrays(g.images(PROMPTS)).astype(int) for g in (eager, compiled))
        assert np.abs(plain - fast).mean() < 1.0  # kernels differ in the last bits only
        weight = model.unet.conv_in.weight
        saved = weight.detach().clone()
        with torch.no_grad():
            weight.mul_(-1.0)
        try:
            edited, edited_eager = (_arrays(g.images(PROMPTS)).astype(int)
                                    for g in (compiled, eager))
        finally:
            with torch.no_grad():
                weight.copy_(saved)
        assert np.abs(edited - edited_eager).mean() < 1.0
        assert np.abs(edited - fast).mean() > 1
    finally:
        tiny.to("cpu")
        tiny.discard_compiled_unet()


def test_half_precision_samples_with_cast_weights_and_keeps_the_fp32_masters(tiny):
    full = _arrays(Generator(tiny, GenerationSpec(steps=4), progress=False).images(PROMPTS))
    seen = []
    hook = tiny.unet.register_forward_pre_hook(
        lambda module, args: seen.append((module.conv_in.weight.dtype, args[0].dtype)))
    try:
        half = _arrays(Generator(tiny, GenerationSpec(steps=4, precision="bf16"),
                                 progress=False).images(PROMPTS))
    finally:
        hook.remove()
    assert set(seen) == {(torch.bfloat16, torch.bfloat16)}  # weights and inputs, no autocast
    assert all(p.dtype == torch.float32 for p in tiny.unet.parameters())
    difference = np.abs(half.astype(int) - full.astype(int))
    assert 0 < difference.mean() < 4.0  # bf16 rounding, not a different image
    # (the conftest guard checks that the weights came back bit for bit)


def test_cast_weights_come_back_exactly_even_when_the_block_fails(tiny):
    before = {name: p.detach().clone() for name, p in tiny.unet.named_parameters()}
    with pytest.raises(RuntimeError, match="out of memory"), \
            weights_cast([tiny.unet], torch.float16):
        assert tiny.unet.dtype == torch.float16
        raise RuntimeError("CUDA out of memory")
    for name, parameter in tiny.unet.named_parameters():
        assert torch.equal(parameter, before[name]), name


def test_the_compiled_unet_is_compiled_once_and_follows_edits(tiny, monkeypatch):
    backend = TracingCompileBackend()
    monkeypatch.setattr(generate, "COMPILE_BACKEND", backend)
    settings = GenerationSpec(steps=3, precision="bf16")  # weights swapped for copies per batch
    other = [PromptSpec(text="a red circle", seed=seed) for seed in range(len(PROMPTS))]
    eager = _arrays(Generator(tiny, settings, progress=False).images(PROMPTS))
    torch._dynamo.reset()
    torch._dynamo.utils.warn_once_cache.clear()  # dynamo warns once per process
    try:
        full = len(PROMPTS)  # a batch smaller than the batch size runs eager
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            first = _arrays(Generator(tiny, settings, batch_size=full, progress=False,
                                      compile=True).images(PROMPTS))
        # diffusers' cached torch-version checks, traced exactly, raise no alarm
        assert not [w for w in warned if "lru_cache" in str(w.message)]
        second = Generator(tiny, settings, batch_size=full, progress=False,
                           compile=True)  # a later work unit
        second.images(other)
        assert len(backend.graphs) == 1, "one compile for both generators and both batches"
        assert backend.calls == [2 * settings.steps]
        np.testing.assert_array_equal(first, eager)
        # An edit written into the weights in place, as EditedModel.apply does:
        weight = tiny.unet.conv_in.weight
        saved = weight.detach().clone()
        with torch.no_grad():
            weight.mul_(-1.0)
        try:
            edited = _arrays(second.images(PROMPTS))
            edited_eager = _arrays(Generator(tiny, settings, progress=False).images(PROMPTS))
        finally:
            with torch.no_grad():
                weight.copy_(saved)
        assert len(backend.graphs) == 1, "an edit does not recompile"
        assert backend.calls == [3 * settings.steps]
        np.testing.assert_array_equal(edited, edited_eager)  # no stale weights in the graph
        assert np.abs(edited.astype(int) - eager.astype(int)).mean() > 1
    finally:
        tiny.discard_compiled_unet()


def test_only_full_batches_run_compiled_each_on_a_static_graph(tiny, monkeypatch):
    images_take_1500_bytes_each(monkeypatch, free=15000.0)  # 0.8 x 15000 / 1500 = 8
    backend = TracingCompileBackend()
    monkeypatch.setattr(generate, "COMPILE_BACKEND", backend)
    settings = GenerationSpec(steps=2)
    prompts = [PromptSpec(text="a cat", seed=seed) for seed in range(21)]  # 2, 8, 8 and 3
    torch._dynamo.reset()
    try:
        generator = Generator(tiny, settings, fit_batch=True, progress=False, compile=True)
        images = _arrays(generator.images(prompts))
        assert generator.batch_size == 8
        # The two full batches ran one graph, static, and no other batch did; the probe
        # batch and the last one ran eager. Compiling the probe first made dynamo compile
        # the next size with a symbolic batch, which every full batch then ran, without
        # inductor's channels-last convolutions. (On a GPU the graph takes a full batch's
        # 16 rows; on a CPU every UNet call takes the same padded rows, cpu_call_rows.)
        assert len(backend.graphs) == 1 and backend.calls == [2 * settings.steps]
        shapes = [tuple(x.shape) for x in backend.inputs[0] if isinstance(x, torch.Tensor)]
        assert (generate.cpu_call_rows(tiny, "unet"), 4, 16, 16) in shapes
        assert not [x for x in backend.inputs[0] if isinstance(x, torch.SymInt)]
    finally:
        tiny.discard_compiled_unet()
    eager = Generator(tiny, settings, batch_size=1, progress=False)
    np.testing.assert_array_equal(images, _arrays(eager.images(prompts)))


def test_the_compile_options_reach_the_backend_and_new_ones_compile_anew(tiny, monkeypatch):
    backend = TracingCompileBackend()
    monkeypatch.setattr(generate, "COMPILE_BACKEND", backend)
    settings = GenerationSpec(steps=2)
    torch._dynamo.reset()
    try:
        for options in ({}, {"epilogue_fusion": False}, {"epilogue_fusion": False}):
            monkeypatch.setattr(generate, "COMPILE_OPTIONS", options)
            Generator(tiny, settings, batch_size=2, progress=False,
                      compile=True).images(PROMPTS[:2])
        assert backend.options == [None, {"epilogue_fusion": False}]
        tiny.discard_compiled_unet()  # as after a change of the weights' layout
        Generator(tiny, settings, batch_size=2, progress=False,
                  compile=True).images(PROMPTS[:2])
        assert len(backend.graphs) == 3, "compiled anew"
    finally:
        tiny.discard_compiled_unet()


def test_a_failed_compile_is_one_clear_error_and_nothing_is_cached(tiny, tmp_path,
                                                                    monkeypatch):
    def no_compiler(graph_module, example_inputs):
        raise RuntimeError("no working C compiler found\nmany more lines")

    monkeypatch.setattr(generate, "COMPILE_BACKEND", no_compiler)
    torch._dynamo.reset()
    cache = ImageCache(tmp_path)
    try:
        with pytest.raises(UserError, match=r"could not compile the UNet \(RuntimeError: no "
                                            r"working C compiler found\); run without --compile"):
            Generator(tiny, GenerationSpec(steps=2), cache, batch_size=len(PROMPTS),
                      progress=False, compile=True).images(PROMPTS)
    finally:
        tiny.discard_compiled_unet()
    assert not list(tmp_path.rglob("*.png"))


def test_compiling_on_a_torch_that_bakes_weights_in_is_refused(tiny, monkeypatch):
    monkeypatch.setattr(torch._dynamo.config, "inline_inbuilt_nn_modules", False)
    with pytest.raises(UserError, match="torch >= 2.5"):  # at once, before any eager batch
        Generator(tiny, GenerationSpec(steps=2), progress=False, compile=True)


def test_each_distinct_text_of_a_batch_is_encoded_once(tiny, monkeypatch):
    encoded: list[list[str]] = []
    original = tiny.token_ids
    monkeypatch.setattr(tiny, "token_ids", lambda texts: encoded.append(list(texts)) or
                        original(texts))
    prompts = [PromptSpec(text=text, seed=seed) for text in ("a cat", "a dog")
               for seed in range(3)]
    Generator(tiny, GenerationSpec(steps=2), batch_size=6, progress=False).images(prompts)
    assert encoded == [["", "a cat", "a dog"]]  # 6 prompts and 6 empty negatives: 3 texts


def test_prompts_that_give_the_same_image_are_generated_once(tiny):
    generator = Generator(tiny, GenerationSpec(steps=2), progress=False)
    original, sampled = generator.sample, []
    generator.sample = lambda prompts, conditioning=None: (sampled.extend(prompts)
                                                           or original(prompts, conditioning))
    same = PromptSpec(text="a cat", seed=1, group="preserve", label="cat")  # group: not drawn
    images = generator.images([PROMPTS[0], PROMPTS[1], same])
    assert len(sampled) == 2
    assert np.array_equal(np.asarray(images[0]), np.asarray(images[2]))


def test_images_from_conditioning_equal_the_prompts_own_encodings(tiny):
    from erasebench.generate import Generator
    from erasebench.specs import GenerationSpec, PromptSpec

    prompts = [PromptSpec(text="a cat", seed=1), PromptSpec(text="a dog", seed=2, guidance=3.0)]
    generator = Generator(tiny, GenerationSpec(steps=2), batch_size=1, progress=False)
    direct = generator.images(prompts)
    conditioning = tiny.encode_text([p.text for p in prompts])
    drawn = generator.images_from_conditioning(prompts, conditioning)
    assert [d.tobytes() for d in drawn] == [d.tobytes() for d in direct]
    swapped = generator.images_from_conditioning(prompts, conditioning.flip(0))
    assert swapped[0].tobytes() != direct[0].tobytes()


def test_images_from_conditioning_fit_the_batch_when_nothing_was_drawn_yet(tiny, monkeypatch):
    images_take_1500_bytes_each(monkeypatch, free=12000.0)  # 0.8 x 12000 / 1500 = 6.4
    generator = Generator(tiny, GenerationSpec(steps=2), fit_batch=True, progress=False)
    original, sizes = generator.sample, []

    def recording(prompts, conditioning=None):
        sizes.append(len(prompts))
        return original(prompts, conditioning)

    generator.sample = recording
    prompts = [PromptSpec(text="a cat", seed=seed) for seed in range(7)]
    drawn = generator.images_from_conditioning(prompts,
                                               tiny.encode_text([p.text for p in prompts]))
    assert sizes == [2, 4, 1] and generator.batch_size == 4  # not batches of 2 throughout
    reference = Generator(tiny, GenerationSpec(steps=2), batch_size=1, progress=False)
    assert [d.tobytes() for d in drawn] == [d.tobytes() for d in reference.images(prompts)]


def test_images_from_conditioning_halve_the_batch_out_of_memory_and_lose_nothing(tiny):
    # The robustness task's attacked images: out of memory ended the unit at any batch.
    generator = Generator(tiny, GenerationSpec(steps=2), batch_size=5, progress=False)
    sizes = with_room_for(generator, 2)
    prompts = [PromptSpec(text="a cat", seed=seed) for seed in range(5)]
    drawn = generator.images_from_conditioning(prompts,
                                               tiny.encode_text([p.text for p in prompts]))
    assert sizes == [5, 2, 2, 1] and generator.batch_size == 2
    reference = Generator(tiny, GenerationSpec(steps=2), batch_size=1, progress=False)
    assert [d.tobytes() for d in drawn] == [d.tobytes() for d in reference.images(prompts)]
    with_room_for(generator, 0)
    with pytest.raises(torch.OutOfMemoryError):  # a batch of one that does not fit
        generator.images_from_conditioning(prompts[:1], tiny.encode_text(["a cat"]))


def test_generators_sharing_a_cache_split_the_images_they_both_need(tiny, tmp_path):
    # As two processes (Ray actors, --workers) running units that prompt alike at once.
    prompts = [PromptSpec(text=f"shape {index % 3}", seed=index) for index in range(24)]
    start, drawn, results, errors = threading.Barrier(2), {}, {}, []

    def draw(name):
        try:
            generator = Generator(tiny, GenerationSpec(steps=2), ImageCache(tmp_path),
                                  batch_size=4, progress=False)
            original = generator.sample

            def sample(batch, conditioning=None):
                drawn[name] = drawn.get(name, 0) + len(batch)
                time.sleep(0.05)  # a batch takes long enough for the other to claim one
                return original(batch, conditioning)

            generator.sample = sample
            start.wait(timeout=60)
            results[name] = _arrays(generator.images(prompts))
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=draw, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    counts = [drawn.get(name, 0) for name in ("a", "b")]
    assert sum(counts) == len(prompts) and min(counts) > 0  # each drew some, none twice
    reference = _arrays(Generator(tiny, GenerationSpec(steps=2), progress=False).images(prompts))
    assert np.array_equal(results["a"], reference) and np.array_equal(results["b"], reference)
    assert not list(tmp_path.rglob("*.claim"))


def test_drawing_for_another_process_leaves_its_claimed_images_and_waits_for_none(tiny,
                                                                                 tmp_path):
    # A process with no unit left helps one another process runs (Runner.help): it draws
    # only what nobody has drawn or claimed, returns at once, and the owner then draws the
    # rest and gets the same images as drawing all of them alone.
    prompts = [PromptSpec(text=f"shape {index % 3}", seed=index) for index in range(10)]
    cache = ImageCache(tmp_path)
    owner = Generator(tiny, GenerationSpec(steps=2), cache, batch_size=4, progress=False)
    keys = owner.keys(prompts)
    owner.images(prompts[:2])  # drawn before the helper came
    claimed = [cache.claim(key) for key in keys[2:5]]  # the owner's batch in flight
    helper = Generator(tiny, GenerationSpec(steps=2), cache, batch_size=4, progress=False)
    started = time.monotonic()
    assert helper.draw_unclaimed(prompts) == 5  # images 5 to 9, in batches of 4 and 1
    assert time.monotonic() - started < 30  # it did not wait for the claimed three
    assert cache.present_keys(keys) == set(keys[:2]) | set(keys[5:])
    for claim in claimed:
        claim.release()
    assert helper.draw_unclaimed(prompts) == 3  # released unwritten: now the helper's
    assert owner.drawn == 2
    images = _arrays(owner.images(prompts))
    assert owner.drawn == 2  # everything else was drawn by the helper
    reference = _arrays(Generator(tiny, GenerationSpec(steps=2), progress=False).images(prompts))
    assert np.array_equal(images, reference)
    assert not list(tmp_path.rglob("*.claim"))
    with pytest.raises(ValueError, match="image cache"):
        Generator(tiny, GenerationSpec(steps=2), progress=False).draw_unclaimed(prompts)


def test_the_seconds_spent_waiting_for_images_another_process_draws_are_counted(tiny,
                                                                                tmp_path):
    # Kept apart in a unit's timings (UnitTimings.images_awaited), so that its images/s is
    # its own process's pace when helpers (Runner.help) drew some of its images.
    prompts = [PromptSpec(text="a cat", seed=seed) for seed in range(2)]
    cache = ImageCache(tmp_path)
    owner = Generator(tiny, GenerationSpec(steps=2), cache, batch_size=4, progress=False)
    claimed = [cache.claim(key) for key in owner.keys(prompts)]  # another process draws both
    releasing = threading.Timer(1.0, lambda: [claim.release() for claim in claimed])
    releasing.start()
    owner.images(prompts)  # waits for the first, then draws both: released unwritten
    releasing.join()
    assert owner.drawn == 2 and 0.9 <= owner.awaited < 30
    waited = owner.awaited
    owner.images(prompts)  # in the cache now: nothing to wait for
    assert (owner.drawn, owner.awaited) == (2, waited)
