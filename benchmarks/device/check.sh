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
#   attack      benchmarks/recovery_attack.py: the robustness task's recovery attack, seconds
#               per Adam step in fp32 (as before) and in the erasers' bf16, and the task's
#               default attack per eraser projected from it (issue 8)
# One log per step lands in $OUT. Here, first: bash benchmarks/device/fetch_wheels.sh; then
# the device tool's run, carry [".whl"], in calls of at most 10 minutes on the warm machine
# (benchmarks/README.md says which steps are still open and how to split them).
# Rehearsal on a CPU (the same script, the tiny model, GPU tests skipped):
#   PYTHON=/path/to/python3.12 MODEL=tiny DEVICE=cpu OUT=/tmp/out bash benchmarks/device/check.sh
# Step limits (seconds) can be set: LIMIT_GENERATION=... etc.; STEPS=name,name runs those
# steps in that order; GPU_TESTS="path::test ..." a subset of the GPU tests; *_ARGS add to a
# script's arguments. BUDGET=seconds bounds the whole call (install included): each step's
# limit is cut to what is left of it less RESERVE (15 s, for the summary), and a step with
# less than MIN_STEP (30 s) left is skipped, so that the summary comes back before the
# device tool's own time limit ends the call (set BUDGET a little under its timeout_s).
set -uo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
OUT=${OUT:-/tmp/erasebench-device}
MODEL=${MODEL:-sd-v1-random}
DEVICE=${DEVICE:-cuda}
SITE=${SITE:-/tmp/erasebench-site}
WHEELS=${WHEELS:-.whl}
ALL_STEPS=env,generation,erasers,gpu_tests,profile,variants,frozen,attack
STEPS=${STEPS:-$ALL_STEPS}
BUDGET=${BUDGET:-}
RESERVE=${RESERVE:-15}
MIN_STEP=${MIN_STEP:-30}
for name in ${STEPS//,/ }; do  # a misspelt step would otherwise be left out unseen
    [[ ",$ALL_STEPS," == *",$name,"* ]] ||
        { echo "no step '$name' (STEPS=$STEPS); the steps: $ALL_STEPS"; exit 3; }
done
[[ -z $BUDGET || $BUDGET =~ ^[0-9]+$ ]] || { echo "BUDGET=$BUDGET: seconds, a whole number"; exit 3; }
mkdir -p "$OUT"
export PYTHONPATH="$SITE" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

install() {
    # --no-deps: the image's own torch, transformers, numpy... stay; only what it lacks is added.
    "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target "$SITE" "$WHEELS"/*.whl &&
    "$PYTHON" -m pip install --quiet --no-index --no-deps --no-build-isolation --no-compile \
        --no-cache-dir --upgrade --target "$SITE" .
}

step() {  # step NAME LIMIT COMMAND...: runs it, within what is left of BUDGET; log in $OUT/NAME.log
    local name=$1 limit=$2 began status left
    shift 2
    if [[ -n $BUDGET ]]; then
        left=$((BUDGET - SECONDS - RESERVE))
        if (( left < MIN_STEP )); then
            summary+=("$name: skipped, ${left} s of the budget left")
            failed=1
            echo "=== ${summary[-1]}"
            return 0
        fi
        (( limit <= left )) || limit=$left
    fi
    echo "=== $name (at most ${limit} s)"
    began=$SECONDS
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
    status=${PIPESTATUS[0]}
    [[ $status == 0 ]] || failed=1
    summary+=("$name: exit $status after $((SECONDS - began)) s$([[ $status == 124 ]] && echo ', cut at its limit')")
    echo "=== ${summary[-1]}"
}
run_step() {  # the step NAME's command, under its limit
    case $1 in
    env) step env "${LIMIT_ENV:-40}" bash -c "nvidia-smi 2>&1 | head -20; \
        '$PYTHON' benchmarks/device/environment.py" ;;
    generation) step generation "${LIMIT_GENERATION:-180}" "$PYTHON" benchmarks/generation.py \
        --model "$MODEL" --device "$DEVICE" ${GENERATION_ARGS:-} ;;
    erasers) step erasers "${LIMIT_ERASERS:-170}" "$PYTHON" benchmarks/erasers.py \
        --model "$MODEL" --device "$DEVICE" --short 1 --long 3 ${ERASERS_ARGS:-} ;;
    gpu_tests) step gpu_tests "${LIMIT_GPU_TESTS:-200}" "$PYTHON" -m pytest -m gpu -v \
        --durations=0 -p no:cacheprovider ${GPU_TESTS:-tests} ;;
    profile) step profile "${LIMIT_PROFILE:-200}" "$PYTHON" benchmarks/unet_profile.py \
        --model "$MODEL" --device "$DEVICE" ${PROFILE_ARGS:-} ;;
    variants) step variants "${LIMIT_VARIANTS:-360}" "$PYTHON" benchmarks/generation.py \
        --model "$MODEL" --device "$DEVICE" --no-peers --no-scorers --no-cache --images 64 \
        --batch-size 64 --compile-decode \
        --variants ${VARIANTS:-fp16+compile,fp16+channels_last+cudnn_benchmark+compile} \
        ${VARIANTS_ARGS:-} ;;
    frozen) step frozen "${LIMIT_FROZEN:-150}" "$PYTHON" benchmarks/frozen_weights.py \
        --model "$MODEL" --device "$DEVICE" ${FROZEN_ARGS:-} ;;
    attack) step attack "${LIMIT_ATTACK:-120}" "$PYTHON" benchmarks/recovery_attack.py \
        --model "$MODEL" --device "$DEVICE" ${ATTACK_ARGS:-} ;;
    esac
}
summary=()
failed=0  # the script's exit status: 1 when any step failed or was cut

compgen -G "$WHEELS/*.whl" >/dev/null || {
    echo "no wheels in $WHEELS/: run benchmarks/device/fetch_wheels.sh first and carry [\".whl\"]"
    exit 3
}
start=$SECONDS
install 2>&1 | tee "$OUT/install.log"
[[ ${PIPESTATUS[0]} == 0 ]] || { echo "install failed: see install.log"; exit 3; }
echo "=== installed in $((SECONDS - start)) s"
for name in ${STEPS//,/ }; do
    run_step "$name"
done
# The reply shows only the output's tail: repeat what matters where it will be seen.
echo "=== summary, $((SECONDS - start)) s in all"
printf '%s\n' "${summary[@]}"
for name in generation erasers profile variants frozen attack; do
    [[ -f "$OUT/$name.log" ]] && { echo "--- $name"; grep -E '^(model |FLOPs |\||speed-up)|: one guided' "$OUT/$name.log"; }
done
[[ -f "$OUT/gpu_tests.log" ]] && grep -E '^(FAILED|ERROR) |^=+ .* in [0-9.]+s' "$OUT/gpu_tests.log" | tail -20
exit $failed
