"""The benchmark scripts run end to end on the tiny model on CPU, so a broken script is found
here rather than in the minutes a lent GPU machine gives (their numbers mean something only
there: benchmarks/README.md)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
import torch

from erasebench import generate
from erasebench.testing import TracingCompileBackend

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run_script(name: str, argv: list[str], monkeypatch: pytest.MonkeyPatch,
               capsys: pytest.CaptureFixture[str]) -> str:
    monkeypatch.setattr(sys, "argv", [name, *argv])
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # as `python benchmarks/NAME` has it
    runpy.run_path(str(BENCHMARKS / name), run_name="__main__")
    return capsys.readouterr().out


def table_rows(output: str) -> dict[str, list[str]]:
    """Markdown table rows by their first cell (header and rule lines left out)."""
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and not set(cells[0]) <= {"-"}:
            rows[cells[0]] = cells[1:]
    return rows


def test_generation_measures_ours_the_peers_loop_and_each_variant(monkeypatch, capsys):
    default_attention_order = torch._C._get_sdp_priority_order()
    backend = TracingCompileBackend()  # inductor's C++ builds would take minutes here
    monkeypatch.setattr(generate, "COMPILE_BACKEND", backend)
    torch._dynamo.reset()
    try:
        output = run_script("generation.py", [
            "--model", "tiny", "--device", "cpu", "--images", "2", "--peer-images", "1",
            "--steps", "2", "--batch-size", "2", "--no-scorers", "--compile-decode",
            "--variants", "fp32,bf16+channels_last+cudnn_benchmark,fp32+tuned,"
            "fp32+cudnn_attention+fused_qkv"], monkeypatch, capsys)
    finally:
        torch._dynamo.reset()
    rows = table_rows(output)
    ours = rows["ours: images/s (batch 2, auto)"]
    assert float(ours[0]) > 0
    assert float(rows["ours writing each image to the image cache: images/s"][0]) > 0
    assert float(rows["VAE decode: ms per image"][0]) > 0
    assert rows["VAE decode: share of ours' time per image"][0].endswith("%")
    assert float(rows["VAE decode compiled: ms per image"][0]) > 0
    assert rows["VAE decode compiled: share of ours' time per image"][0].endswith("%")
    assert rows["with the cache, as a share of ours without it"][0].endswith("%")
    assert float(rows["peers' per-image fp32 loop: images/s"][0]) > 0
    assert rows["speed-up over the per-image loop"][0].endswith("x")
    for variant in ("fp32", "bf16+channels_last+cudnn_benchmark", "fp32+tuned",
                    "fp32+cudnn_attention+fused_qkv"):
        batch, rate, relative = rows[variant][:3]
        assert batch == "2" and float(rate) > 0 and relative.endswith("x")
    # the decode's compile took the generator's options (none); the tuned variant's reached
    # its compile, once, and were then set back
    assert backend.options == [None, {"conv_1x1_as_mm": True, "coordinate_descent_tuning": True,
                                "epilogue_fusion": False}]
    assert generate.COMPILE_OPTIONS == {} and not torch.backends.cudnn.benchmark
    assert torch._C._get_sdp_priority_order() == default_attention_order  # cuDNN's last again


def test_generation_refuses_an_unknown_variant_before_building_anything(monkeypatch, capsys):
    with pytest.raises(SystemExit, match="unknown variant 'fp8'"):
        run_script("generation.py", ["--model", "no-such-model", "--variants", "fp16,fp8"],
                   monkeypatch, capsys)


def test_erasers_reports_every_eraser_asked_for(monkeypatch, capsys):
    output = run_script("erasers.py", [
        "--model", "tiny", "--device", "cpu", "--erasers", "uce,esd_x",
        "--short", "1", "--long", "2"], monkeypatch, capsys)
    rows = table_rows(output)
    assert rows["uce"][0] == rows["uce, 10 concepts"][0] == "(closed form)"
    per_step, fixed, full, memory = rows["esd_x"]
    float(per_step), float(fixed)  # numbers (their sign is the timer's noise at one step apart)
    assert full.endswith("(1000 steps)")  # ESD's paper default, projected
    assert float(memory) > 0


def test_frozen_weights_counts_times_and_compares_both_ways(monkeypatch, capsys):
    from erasebench import training_precision

    # The script turns bf16 autocast on for a CPU; set back after the test.
    monkeypatch.setattr(training_precision, "autocast_dtype", training_precision.autocast_dtype)
    selected = training_precision.frozen_layer_weights
    output = run_script("frozen_weights.py", [
        "--model", "tiny", "--device", "cpu", "--sets", "esd_x,esd_u", "--erasers", "esd_x",
        "--calls", "1"], monkeypatch, capsys)
    # "before" set back after each erasure
    assert training_precision.frozen_layer_weights is selected
    per_call, per_step = (table_rows(table) for table in output.split("\n\n"))
    frozen, before, now, _, _, speed_up, difference = per_call["esd_x"]
    assert frozen.startswith("122 (")  # the tiny UNet's layer weights outside attn2
    assert per_call["esd_u"][0].startswith("26 (")  # attn2's, time embedding's, conv_out's
    operations = [int(text.split()[0]) for text in (before, now)]
    casts = [int(text.split("(")[1].split()[0]) for text in (before, now)]
    assert operations[0] - operations[1] == casts[0] - casts[1] > 0  # only casts left out
    assert difference == "0" and speed_up.endswith("x")
    seconds_before, seconds_now, _, _, _, same = per_step["esd_x"]
    assert float(seconds_before) != 0 and float(seconds_now) != 0 and same == "yes"


def test_reproduction_hours_prices_the_plan_in_order_on_each_gpu_count(monkeypatch, capsys):
    # sd's and the mock eraser's unit of the mock task, 8 images each at 1 image/s, the
    # mock erasure 1 minute: 76 s on one GPU. On two the mock unit alone, 68 s, with the
    # other GPU idle; with it helping draw the mock unit's images once its erasure is
    # made, 64 s.
    output = run_script("reproduction_hours.py", [
        "--tasks", "mock", "--erasers", "sd,mock", "--images-per-second", "1",
        "--erasure-minutes", "mock=1", "--gpus", "1,2,100"], monkeypatch, capsys)
    assert output.startswith("2 units, 16 images to draw, 1 erasures")
    rows = table_rows(output)
    one, two, helped = (f"{seconds / 3600:#.3g}" for seconds in (76, 68, 64))
    assert rows["1"] == [one] * 5 + ["1.00", "1.00"]
    # plan's order and longest first with idle GPUs idle, then helping, before and with a
    # pace, an even share, helping's gain and the fresh run against an even share
    assert rows["2"] == [two, two, helped, helped, f"{38 / 3600:#.3g}", f"{68 / 64:.2f}",
                         f"{64 / 38:.2f}"]
    # On 100 the 98 GPUs left draw sd's images with it, then wait with the mock unit's for
    # its erasure, and all 100 draw its 8 images: 60.08 s.
    hundred = f"{60.08 / 3600:#.3g}"
    assert rows["100"][:4] == [two, two, hundred, hundred]


def test_report_intervals_times_both_ways_on_the_plans_per_image_values(monkeypatch, capsys):
    # I2P's first 200 prompts (4 NER rates each) and 4 rows of each artist's 5 images
    # (CLIP and LPIPS, erased and retained: 5 units), for sd and uce
    output = run_script("report_intervals.py", [
        "--tasks", "i2p_nudity,artist", "--erasers", "sd,uce",
        "--task-config", "i2p_nudity.limit=200", "artist.limit_per_artist=4"],
        monkeypatch, capsys)
    assert output.startswith("12 units, 12 with per-image values: 48 metric rows, 3,600 "
                             "per-image values")
    rows = table_rows(output)
    before, now = (rows[way] for way in rows if way.startswith(("by index", "by value")))
    assert before[0] == now[0] == "16"  # 4 rates and 4 artist metrics for each eraser
    assert "x as fast" in output.splitlines()[-1]
    with pytest.raises(SystemExit) as stopped:
        run_script("report_intervals.py", ["--tasks", "imagenet"], monkeypatch, capsys)
    assert stopped.value.code == 2
    assert "unknown task 'imagenet'; valid tasks:" in capsys.readouterr().err


def test_helping_times_the_same_units_with_idle_processes_idle_and_helping(tmp_path):
    # In a process of its own: its processes are spawned, and find their function by the
    # script's module, which runpy's __main__ in this process is not.
    import json
    import subprocess

    run = subprocess.run(
        [sys.executable, str(BENCHMARKS / "helping.py"), "--erasers", "sd,mock,uce",
         "--tasks", "mock", "--task-options", json.dumps({"images_per_concept": 6})],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("3 units on 2 processes (cpu); 36 images asked for")
    rows = table_rows(run.stdout)
    assert rows["idle"][2:] == ["3", "0"]  # every unit run once, nothing drawn for others
    assert rows["help"][2] == "3"
    for mode in ("idle", "help"):
        assert 0 < float(rows[mode][1]) <= float(rows[mode][0])  # units' time within all
    assert "rows equal" in run.stdout


def test_image_cache_measures_each_way_of_writing_and_reading(monkeypatch, capsys):
    output = run_script("image_cache.py", ["--rate", "400", "--images", "8", "--batch-size",
                                           "4", "--size", "64"], monkeypatch, capsys)
    rows = table_rows(output)
    for way in ("none", "written in line", "written in the background", "one after another",
                "on the cache's threads"):
        rate, share = rows[way]
        assert float(rate) > 0 and share.endswith("%")


def test_cpu_call_rows_times_each_network_and_finds_fixed_rows_batch_independent(
        monkeypatch, capsys):
    output = run_script("cpu_call_rows.py", ["--model", "tiny", "--rows", "4,16", "--images",
                                              "6", "--batch-size", "6", "--repeats", "1",
                                              "--compare", "6"], monkeypatch, capsys)
    rows = table_rows(output)
    for count in ("4", "16"):
        assert len(rows[count]) == 3 and all(float(cell.split()[0]) > 0 for cell in rows[count])
    for cell in rows["16"][:2]:  # the tiny model's text encoder and UNet take 16 rows
        assert cell == f"{float(cell.split()[0]):.2f} (fixed)"
    fixed = next(way for way in rows if way.startswith("fixed rows"))
    assert fixed == "fixed rows (16, 16, 8)"
    for way in ("whole batch", fixed):
        rate, ratio, _ = rows[way]
        assert float(rate) > 0 and ratio.endswith("x")
    assert rows[fixed][2] == "0"
    assert generate.call_in_chunks.__name__ == "call_in_chunks"  # the script put it back


def test_unit_memory_measures_each_way_of_holding_the_images(monkeypatch, capsys):
    output = run_script("unit_memory.py", ["--rate", "400", "--images", "8", "--size", "64",
                                           "--scorer-ms", "1"], monkeypatch, capsys)
    rows = table_rows(output)
    assert rows.pop("images")[0] == "peak memory rise (MB)"  # the header
    assert len(rows) == 3
    for way, (rise, per_image, seconds) in rows.items():
        assert "failed" not in rise, way
        float(rise), float(per_image)  # numbers; at 8 small images, noise
        assert float(seconds) > 0
    assert output.count("less memory than held") == 2


def test_unet_profile_splits_the_unet_time_by_kind_and_counts_its_flops(monkeypatch, capsys):
    backend = TracingCompileBackend()
    monkeypatch.setattr(generate, "COMPILE_BACKEND", backend)
    torch._dynamo.reset()
    try:
        output = run_script("unet_profile.py", [
            "--model", "tiny", "--device", "cpu", "--batch", "2", "--calls", "1", "--top", "4"],
            monkeypatch, capsys)
    finally:
        torch._dynamo.reset()
    assert len(backend.graphs) == 1  # the compiled mode went through the generator's compile
    for mode in ("eager", "compiled"):
        section = output.split(f"\n{mode}: one guided UNet call")[1].split("\n\n")[0]
        rows = table_rows(section)
        shares = [float(rows[kind][1].rstrip("%")) for kind in rows if kind not in ("kind", "all")]
        assert sum(shares) == pytest.approx(100, abs=0.5)
        assert float(rows["convolution"][0]) > 0 and float(rows["convolution"][2]) > 0
        assert float(rows["matrix product"][2]) > 0  # TFLOP per call, counted
        assert float(rows["attention"][2]) > 0  # the CPU's kernel too
        assert float(rows["all"][3]) > 0  # TFLOP/s
    assert output.count("| `aten::") == 2 * 4  # the top 4 operators of each mode


@pytest.mark.parametrize(("kernel", "kind"), [
    # names as an H100's profiles show them (cuDNN, cuBLAS, FlashAttention, inductor, aten)
    ("sm90_xmma_fprop_implicit_gemm_f16f16_f16f32_f32_nhwckrsc_nhwc_tilesize128x256x64",
     "convolution"),
    ("nvjet_hsh_256x128_64x4_1x2_h_bz_coopA_NNT", "matrix product"),
    ("sm90_xmma_gemm_f16f16_f16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1",
     "matrix product"),
    ("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128, 64, 4>>",
     "attention"),
    ("cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_3", "attention"),
    ("triton_red_fused_convolution_native_group_norm_12", "normalisation and reductions"),
    ("void at::native::(anonymous namespace)::RowwiseMomentsCUDAKernel<c10::Half, float>",
     "normalisation and reductions"),
    ("triton_poi_fused_add_silu_3", "elementwise and copies"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<c10::Half>>",
     "elementwise and copies"),
    ("aten::mkldnn_convolution", "convolution"),
    ("aten::addmm", "matrix product"),
    ("some_new_kernel", "other"),
])
def test_unet_profile_reads_the_kind_of_work_off_a_kernel_name(kernel, kind, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from unet_profile import kind_of

    assert kind_of(kernel) == kind


def test_recovery_attack_times_a_step_in_fp32_and_in_the_erasers_precision(monkeypatch,
                                                                           capsys):
    from erasebench import training_precision

    # The script turns bf16 autocast on for a CPU; set back after the test.
    monkeypatch.setattr(training_precision, "autocast_dtype", training_precision.autocast_dtype)
    output = run_script("recovery_attack.py", [
        "--model", "tiny", "--device", "cpu", "--samples", "4", "--prompts", "2",
        "--short", "1", "--long", "2"], monkeypatch, capsys)
    rows = table_rows(output)
    assert list(rows) == ["precision", "fp32", "auto"]
    for precision in ("fp32", "auto"):
        step, fixed, per_pass, peak, loss, task = rows[precision]
        assert float(step) >= 0 and float(fixed) >= 0 and float(peak) > 0
        assert per_pass == "4"  # all the samples in one pass: a CPU does not run out
        assert float(loss) > 0  # the nudged keys move the edited model's predictions
        assert task.endswith(" min")
    assert "autocast to torch.bfloat16" in output


@pytest.mark.parametrize("name, argv, message", [
    ("frozen_weights.py", ["--erasers", "esd_x,nope"], "unknown eraser 'nope'; valid erasers:"),
    ("frozen_weights.py", ["--sets", "esdx"], "unknown eraser 'esdx'"),
    ("erasers.py", ["--erasers", "uce,esd"], "unknown eraser 'esd'"),
    ("generation.py", ["--device", "gpu"], "--device 'gpu' is not a device"),
    ("unet_profile.py", ["--device", "cuda:1"], "--device cuda:1: torch sees no GPU"),
    ("recovery_attack.py", ["--short", "2", "--long", "2"],
     "--long (2) must be more steps than --short (2)"),
])
def test_a_bad_argument_stops_a_script_before_it_builds_anything(name, argv, message,
                                                                  monkeypatch, capsys):
    # On a lent GPU a typo found minutes in, after rows were timed, costs those minutes.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    built = []
    monkeypatch.setattr("erasebench.models.load_model", lambda *a, **k: built.append(a))
    with pytest.raises(SystemExit) as stopped:
        run_script(name, ["--model", "tiny", *argv], monkeypatch, capsys)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err
    assert not built
