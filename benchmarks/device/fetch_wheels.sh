#!/usr/bin/env bash
# Downloads, here, the wheels a lent GPU machine lacks (requirements.txt) into .whl/ at the
# repository root (git ignores it), for its Python 3.12 on x86-64.
# Then: the device tool's run with carry [".whl"] and command "bash benchmarks/device/check.sh".
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .whl
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d .whl -r benchmarks/device/requirements.txt
echo "$(ls .whl | wc -l) wheels, $(du -sh .whl | cut -f1) in .whl/"
# What travels to the machine (the tree git sees, ignored files aside, and .whl) must stay
# under the tool's 64 MiB.
tree=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- | tail -1 | cut -f1)
wheels=$(du -sb .whl | cut -f1)
total=$(( (tree + wheels) / 1048576 ))
echo "the call carries ${total} MiB (tree $((tree / 1048576)) MiB + wheels $((wheels / 1048576)) MiB) of 64 MiB"
(( total < 64 )) || { echo "over the device tool's 64 MiB: carry less"; exit 1; }
