#!/usr/bin/env bash
# GPU check (meant to take < 8 min on one H100): a smoke test of every method in bf16 (a few steps, checkpoint, resume,
# evaluate) and the throughput benchmark at the configurations of issue 10 (px:ndf:n_rkhs:depth:batch). Prints
# images/s, MFU, peak memory and the device name; figures land in $OUT (default benchmarks/out).
# Usage: [AMDIM_REF=/path/to/amdim-public] bash benchmarks/gpu_check.sh
# AMDIM_REF: a local checkout of github.com/Philip-Bachman/amdim-public (not part of this repository); with it the
# throughput table gains the rows amdim-ref / amdim-ref-tuned (the original code); unset, they are skipped.
set -euo pipefail
OUT=${OUT:-benchmarks/out}
mkdir -p "$OUT"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
$PY -c "import torch; print('device:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
SMOKE=$(mktemp -d)
COMMON="train.device=cuda train.precision=bf16 model.image_size=64 model.ndf=64 model.n_rkhs=512 model.n_depth=2 \
train.batch_size=128 train.ckpt_every=10 train.log_every=5 train.progress=false data.synth_train=2048 \
data.synth_test=512 data.workers=4 optim.warmup_steps=5"
for m in amdim tvdim tvdim-nce clip supervised; do
  $PY -m tvdim.cli pretrain --method "$m" --out "$SMOKE/$m" $COMMON train.steps=20
  tail -n 2 "$SMOKE/$m/metrics.jsonl" | head -n 1
done
$PY -m tvdim.cli pretrain --out "$SMOKE/tvdim" --resume latest $COMMON train.steps=30   # resume 20 -> 30
$PY -m tvdim.cli evaluate "$SMOKE/tvdim/checkpoints/last.pt" --device cuda --out "$OUT/gpu_eval"
REF_ARGS=()
if [[ -n "${AMDIM_REF:-}" ]]; then
  REF_ARGS=(--amdim-ref "$AMDIM_REF")
else
  echo "AMDIM_REF unset: the amdim-ref rows are skipped"
fi
$PY benchmarks/throughput.py --device cuda \
  --configs 32:128:1024:3:256,64:128:1024:3:256,128:128:1024:3:128,128:192:1536:8:128 \
  --variants baseline,amdim,tvdim,amdim-ref,amdim-ref-tuned ${REF_ARGS[@]+"${REF_ARGS[@]}"} \
  --text-dim 256 --steps 10 --warmup 3 --out "$OUT/throughput_gpu.json"
# Batched views on the GPU vs the per-image path of a loader worker (issue 10), synthetic images (seconds)
$PY benchmarks/augment_throughput.py --data synthetic --device cuda --batch 256 --n 256 \
  --out "$OUT/augment_throughput_gpu.json"
# End-to-end pretraining rate on RSICD (issue 10): the real trainer against the synthetic-input step, 4 and 8
# data-loader workers, AMDIM-size encoder in bf16 (about 2 minutes). Needs the RSICD shards under $DATA.
DATA=${DATA:-../shared/data}
E2E="--data $DATA --method tvdim --workers 4,8 --ndf 128 --n-rkhs 1024 --n-depth 3 --text-dim 256 --device cuda \
--precision bf16 --steps 60 --log-every 10 --bench-steps 20 --warmup 5"
$PY benchmarks/e2e.py $E2E --size 64 --batch 256 --out "$OUT/e2e_gpu_64.json"
$PY benchmarks/e2e.py $E2E --size 128 --batch 128 --out "$OUT/e2e_gpu_128.json"
echo "gpu_check.sh: ${SECONDS}s in all"
