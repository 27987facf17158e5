#!/usr/bin/env bash
# Train the shipped model on a lent GPU machine (Python 3.12, torch/torchvision preinstalled,
# no pycocotools, no internet). Needs, carried beside the repo:
#   packs/ccp448      `closetai prepare ../shared/data/ccp --out packs/ccp448 --short-side 448 --quality 80`
#   packs/backbone    converted ImageNet backbone (python scripts/export_backbone.py)
#   .whl              pycocotools cp312 wheel
# Usage: OUT=dir TIME_BUDGET=400 bash scripts/gpu_train.sh
set -euo pipefail
OUT=${OUT:-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
export CLOSETAI_BACKBONE_WEIGHTS=packs/backbone/lite2_tv_fp16.pt
nvidia-smi -L || true
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
python3 -m closetai train packs/ccp448 --out "$OUT/closetai-ccp15.pt" --time-budget "${TIME_BUDGET:-400}" \
  --epochs 1000 --batch-size "${BATCH:-16}" --lr "${LR:-0.02}" --workers 12 --eval-every "${EVAL_EVERY:-6}" \
  --checkpoint-dir /tmp/ckpt --quiet 2>&1 | tee "$OUT/train.log"
cp /tmp/ckpt/train_log.jsonl "$OUT/" || true
# The device tool returns files of at most 16 MiB: hand the model back in parts.
# Join here with: cat OUT/model.part.* > models/closetai-ccp15.pt
(cd "$OUT" && split -b 12M closetai-ccp15.pt model.part. && rm closetai-ccp15.pt && ls -la)
