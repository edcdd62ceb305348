#!/usr/bin/env bash
# SASRec vs SASRec+Denoiser (positional masks, input-dependent masks) at the Rec-Denoiser paper's
# settings: n=50 on ML-1M, n=25 on Beauty and Games, 2 blocks, 2 heads; beta=0.01, gamma=0.001.
# Variant denoiser-tuned (not run by default): beta=0.001 and the Jacobian of the residual branch
# (J - I), the settings the validation-only check (denoiser_check.sh) favoured.
# Usage: RECDENOISER_DATA_DIR=../shared/data [EPOCHS=200] [THREADS=1] \
#        bash experiments/denoiser.sh [OUT_DIR] [SEEDS] [DATASETS] [VARIANTS]
# Runs already finished (results.json present) are skipped, so the script can be re-run to resume.
set -euo pipefail
out=${1:-runs/denoiser}
seeds=${2:-"1 2 3"}
datasets=${3:-"beauty games ml-1m"}
variants=${4:-"sasrec denoiser denoiser-input"}
threads=${THREADS:-1}
epochs=${EPOCHS:-200}
common=(--set train.epochs="$epochs" --set model.num_blocks=2 --set model.num_heads=2 --set train.eval_every=5
        --set train.patience=4 --set train.progress=false --set train.num_threads="$threads"
        --set output_dir="$out")
run() {
  local name=$1; shift
  if [ -f "$out/$name/results.json" ]; then echo "skip $name (done)"; return; fi
  echo "== $name: recdenoiser train $* ${common[*]}"
  recdenoiser -q train "$@" "${common[@]}" --set name="$name" || echo "FAILED $name"
}
for seed in $seeds; do
  for ds in $datasets; do
    if [ "$ds" = ml-1m ]; then n=50; else n=25; fi
    base=(sasrec-"$ds" --set data.max_len=$n --set seed="$seed")
    for variant in $variants; do
      case $variant in
        sasrec) run "$ds-sasrec-s$seed" "${base[@]}" ;;
        denoiser) run "$ds-denoiser-s$seed" "${base[@]}" --set denoiser.enabled=true ;;
        denoiser-input) run "$ds-denoiser-input-s$seed" "${base[@]}" --set denoiser.enabled=true \
          --set denoiser.mask_kind=input_dependent ;;
        denoiser-tuned) run "$ds-denoiser-tuned-s$seed" "${base[@]}" --set denoiser.enabled=true \
          --set denoiser.beta=0.001 --set denoiser.jacobian_target=residual ;;
        *) echo "unknown variant $variant" >&2; exit 2 ;;
      esac
    done
  done
done
