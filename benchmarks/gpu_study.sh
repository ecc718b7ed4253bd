#!/usr/bin/env bash
# The peers table of issue 21 on one GPU: every row of `study.py run --experiment peers` (tvdim's methods on a timm
# resnet18 beside lightly's SimCLR / BYOL / VICReg and open_clip's CLIP through its own trainer) at 64 px, batch 64,
# 4x the CPU table's steps (800), seed 0, clean captions, and tvdim at the val-chosen lr, then the report. Needs the
# peers extra (pip install -e ".[peers]") and RSICD under DATA (default ../shared/data).
# NOT YET RUN on a GPU (no GPU was lent when it was written): its duration (aimed at under 8 min on an H100) is
# unmeasured; the first run on a GPU should time it and record the device name with the numbers.
# Usage: [DATA=../shared/data] [OUT=benchmarks/out/gpu_study] bash benchmarks/gpu_study.sh
set -euo pipefail
DATA=${DATA:-../shared/data}
OUT=${OUT:-benchmarks/out/gpu_study}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
$PY -c "import torch; print('device:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
start=$(date +%s)
$PY benchmarks/study.py run --experiment peers --data "$DATA" --out "$OUT" --seeds 0 --noise-levels 0 \
  --size 64 --steps 800 --batch 64 --warmup 200 --workers 8 --device cuda --set model.backbone=resnet18
# the tvdim configuration chosen on RSICD val (lr 5e-4; docs/results.md), which the report sets against every peer row
$PY benchmarks/study.py run --experiment peers-ablation --only "tvdim lr=5e-4" --data "$DATA" --out "$OUT" --seeds 0 \
  --size 64 --steps 800 --batch 64 --warmup 200 --workers 8 --device cuda --set model.backbone=resnet18
$PY benchmarks/study.py report --results "$OUT/results.jsonl" --out "$OUT/report"
echo "gpu_study: $(( $(date +%s) - start )) s"
