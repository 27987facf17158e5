#!/usr/bin/env bash
# GPU checks on a lent machine (no pycocotools/PyAV/supervision there: carried as cp312 wheels in .whl,
# a CCP photo in gpucheck/): predictor batch throughput and the video engine at full frame rate.
# Run from the repo root: OUT=dir bash bench/gpu_check.sh
set -uo pipefail
OUT=${OUT:-out}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
mkdir -p ../shared/data/ccp/photos && cp gpucheck/*.jpg ../shared/data/ccp/photos/ 2>/dev/null
nvidia-smi -L
timeout 120 python3 bench/bench_gpu.py --batch 8 --iters 10 --profile 3 2>&1 | tee "$OUT/gpu_batch.log"
timeout 150 python3 bench/bench_video.py --device cuda --seconds 15 --batch-size 8 2>&1 | tee "$OUT/gpu_video.log"
