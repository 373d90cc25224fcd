#!/usr/bin/env bash
# Every GPU check of the open issues, on a lent GPU machine (a bare image with
# PyTorch but without diffusers & co., no network): installs the carried wheels and this
# tree, then runs, each step under its own time limit so that what finished comes back
# even when a later step runs long:
#   env         the card, the packages, cuDNN, the attention kernel torch picks for
#               each of SD v1.4's attention shapes, the plugins found
#   generation  benchmarks/generation.py: images/s, share of the FLOP ceiling, speed-up over
#               the per-image fp32 loop, scorer shares (issue 8)
#   erasers     benchmarks/erasers.py: seconds per step and peak memory per eraser (4, 5, 8)
#   gpu_tests   python -m pytest -m gpu: every GPU path on SD v1.4's full-size architecture
#   profile     benchmarks/unet_profile.py: one guided UNet call's kernel time by kind of
#               work (convolution, matrix product, attention...) and each kind's TFLOP/s,
#               eager and compiled (issue 8)
#   variants    generation.py --variants at batch 64: the generator's own --compile (weights
#               as they are) and compile with channels_last weights and cuDNN's
#               convolution benchmarking, against its default (fp16, weights cast), and
#               the VAE decode eager and compiled (issue 8)
#   frozen      benchmarks/frozen_weights.py: the erasers' frozen weights held in bf16 while
#               they train against autocast casting them at every call: operations and ms
#               per UNet call, seconds per ESD-x and AP step, the same edit (issue 8)
# One log per step lands in $OUT. Here, first: bash benchmarks/device/fetch_wheels.sh; then
# the device tool's run, carry [".whl"], in calls of at most 10 minutes on the warm machine
# (benchmarks/README.md says which steps are still open and how to split them).
# Rehearsal on a CPU (the same script, the tiny model, GPU tests skipped):
#   PYTHON=/path/to/python3.12 MODEL=tiny DEVICE=cpu OUT=/tmp/out bash benchmarks/device/check.sh
# Step limits (seconds) can be set: LIMIT_GENERATION=... etc.; STEPS=name,name runs a subset;
# GPU_TESTS="path::test ..." a subset of the GPU tests; *_ARGS add to a script's arguments.
set -uo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
OUT=${OUT:-/tmp/erasebench-device}
MODEL=${MODEL:-sd-v1-random}
DEVICE=${DEVICE:-cuda}
SITE=${SITE:-/tmp/erasebench-site}
STEPS=${STEPS:-env,generation,erasers,gpu_tests,profile,variants,frozen}
mkdir -p "$OUT"
export PYTHONPATH="$SITE" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

install() {
    # --no-deps: the image's own torch, transformers, numpy... stay; only what it lacks is added.
    "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target "$SITE" .whl/*.whl &&
    "$PYTHON" -m pip install --quiet --no-index --no-deps --no-build-isolation --no-compile \
        --no-cache-dir --upgrade --target "$SITE" .
}

step() {  # step NAME LIMIT COMMAND...: runs unless STEPS leaves it out; log in $OUT/NAME.log
    local name=$1 limit=$2 began status
    shift 2
    [[ ",$STEPS," == *",$name,"* ]] || return 0
    echo "=== $name (at most ${limit} s)"
    began=$SECONDS
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
    status=${PIPESTATUS[0]}
    [[ $status == 0 ]] || failed=1
    summary+=("$name: exit $status after $((SECONDS - began)) s$([[ $status == 124 ]] && echo ', cut at its limit')")
    echo "=== ${summary[-1]}"
}
summary=()
failed=0  # the script's exit status: 1 when any step failed or was cut

compgen -G ".whl/*.whl" >/dev/null || {
    echo "no wheels in .whl/: run benchmarks/device/fetch_wheels.sh first and carry [\".whl\"]"
    exit 3
}
start=$SECONDS
install 2>&1 | tee "$OUT/install.log"
[[ ${PIPESTATUS[0]} == 0 ]] || { echo "install failed: see install.log"; exit 3; }
echo "=== installed in $((SECONDS - start)) s"
step env "${LIMIT_ENV:-40}" bash -c "nvidia-smi 2>&1 | head -20; \
    '$PYTHON' benchmarks/device/environment.py"
step generation "${LIMIT_GENERATION:-180}" "$PYTHON" benchmarks/generation.py --model "$MODEL" \
    --device "$DEVICE" ${GENERATION_ARGS:-}
step erasers "${LIMIT_ERASERS:-170}" "$PYTHON" benchmarks/erasers.py --model "$MODEL" \
    --device "$DEVICE" --short 1 --long 3 ${ERASERS_ARGS:-}
step gpu_tests "${LIMIT_GPU_TESTS:-200}" "$PYTHON" -m pytest -m gpu -v --durations=0 \
    -p no:cacheprovider ${GPU_TESTS:-tests}
step profile "${LIMIT_PROFILE:-200}" "$PYTHON" benchmarks/unet_profile.py --model "$MODEL" \
    --device "$DEVICE" ${PROFILE_ARGS:-}
step variants "${LIMIT_VARIANTS:-360}" "$PYTHON" benchmarks/generation.py --model "$MODEL" \
    --device "$DEVICE" --no-peers --no-scorers --no-cache --images 64 --batch-size 64 \
    --compile-decode \
    --variants ${VARIANTS:-fp16+compile,fp16+channels_last+cudnn_benchmark+compile} \
    ${VARIANTS_ARGS:-}
step frozen "${LIMIT_FROZEN:-150}" "$PYTHON" benchmarks/frozen_weights.py --model "$MODEL" \
    --device "$DEVICE" ${FROZEN_ARGS:-}
# The reply shows only the output's tail: repeat what matters where it will be seen.
echo "=== summary, $((SECONDS - start)) s in all"
printf '%s\n' "${summary[@]}"
for name in generation erasers profile variants frozen; do
    [[ -f "$OUT/$name.log" ]] && { echo "--- $name"; grep -E '^(model |FLOPs |\|)|: one guided' "$OUT/$name.log"; }
done
[[ -f "$OUT/gpu_tests.log" ]] && grep -E '^(FAILED|ERROR) |^=+ .* in [0-9.]+s' "$OUT/gpu_tests.log" | tail -20
exit $failed
