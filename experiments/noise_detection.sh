#!/usr/bin/env bash
# Noise detection: train SASRec+Denoiser (positional and input-dependent masks) on Beauty with 20%
# of the training items replaced, then measure how well the learned masks single out the
# injected items (ROC-AUC, precision@k) with `recdenoiser noise-report`.
# Usage: RECDENOISER_DATA_DIR=../shared/data [EPOCHS=200] bash experiments/noise_detection.sh [OUT_DIR] [RATIO]
set -euo pipefail
out=${1:-runs/noise-detection}
ratio=${2:-0.2}
threads=${THREADS:-1}
epochs=${EPOCHS:-200}
for kind in positional input_dependent; do
  name="beauty-noise$ratio-$kind"
  if [ ! -f "$out/$name/results.json" ]; then
    recdenoiser -q train sasrec-beauty --set data.max_len=25 --set data.noise_ratio="$ratio" \
      --set model.num_blocks=2 --set model.num_heads=2 --set denoiser.enabled=true \
      --set train.epochs="$epochs" \
      --set denoiser.mask_kind="$kind" --set train.eval_every=5 --set train.patience=4 \
      --set train.progress=false --set train.num_threads="$threads" \
      --set output_dir="$out" --set name="$name"
  fi
  echo "== $name"
  recdenoiser -q noise-report "$out/$name" --json | tee "$out/$name/noise_report.json"
done
