#!/usr/bin/env bash
# Robustness at one noise level: SASRec, SASRec+Denoiser at the paper's settings, and
# SASRec+Denoiser with the settings the clean validation check favoured (beta=1e-3, residual
# Jacobian; experiments/denoiser_check.sh) on Beauty (n=25, L=2, H=2) with a fraction RATIO of
# every training history replaced by random items (validation and test targets untouched).
# Usage: RECDENOISER_DATA_DIR=../shared/data [EPOCHS=50] bash experiments/noise_check.sh [OUT_DIR] [RATIO] [SEED]
set -euo pipefail
out=${1:-runs/noise-check}
ratio=${2:-0.2}
seed=${3:-1}
common=(sasrec-beauty --set data.max_len=25 --set data.noise_ratio="$ratio" --set seed="$seed"
        --set model.num_blocks=2 --set model.num_heads=2 --set train.epochs="${EPOCHS:-50}"
        --set train.eval_every=5 --set train.patience=4 --set train.progress=false
        --set train.num_threads="${THREADS:-1}" --set output_dir="$out")
for variant in sasrec denoiser denoiser-tuned; do
  name="beauty-noise$ratio-$variant-s$seed"
  [ -f "$out/$name/results.json" ] && { echo "skip $name (done)"; continue; }
  case $variant in
    sasrec) extra=() ;;
    denoiser) extra=(--set denoiser.enabled=true) ;;
    denoiser-tuned) extra=(--set denoiser.enabled=true --set denoiser.beta=0.001
                           --set denoiser.jacobian_target=residual) ;;
  esac
  echo "== $name: recdenoiser train ${common[*]} ${extra[*]}"
  recdenoiser -q train "${common[@]}" "${extra[@]}" --set name="$name" || echo "FAILED $name"
done
