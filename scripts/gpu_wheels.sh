#!/usr/bin/env bash
# Download the wheels scripts/gpu_check.py needs on the GPU machine (Python 3.12, no index there) into .whl/ (ignored
# by git; name it in the device tool's `carry`). About 45 MB; the machine already has torch, lightning, transformers,
# peft, torchmetrics, pyyaml, pyarrow, pandas and huggingface_hub.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d .whl \
    "bitsandbytes==$(python3 -c 'import bitsandbytes; print(bitsandbytes.__version__)' 2>/dev/null || echo 0.50.2)" \
    jsonargparse docstring_parser typeshed_client datasets dill multiprocess
ls -la .whl
