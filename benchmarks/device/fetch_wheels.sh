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
