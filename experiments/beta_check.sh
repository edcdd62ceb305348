#!/usr/bin/env bash
# Validation-only look at the L0 weight: SASRec+Denoiser on Beauty (paper settings n=25, L=2, H=2)
# for 40 epochs with beta in {1e-3, 1e-4} (beta=1e-2 and SASRec come from experiments/denoiser.sh).
# Compare validation NDCG@10 in each run's validation.csv; the test split is not used to choose.
# Usage: RECDENOISER_DATA_DIR=../shared/data bash experiments/beta_check.sh [OUT_DIR]
set -euo pipefail
out=${1:-runs/beta}
for beta in 0.001 0.0001; do
  recdenoiser -q train sasrec-beauty --set data.max_len=25 --set seed=1 \
    --set model.num_blocks=2 --set model.num_heads=2 --set train.eval_every=5 \
    --set train.patience=4 --set train.progress=false --set train.num_threads=1 \
    --set train.epochs=40 --set denoiser.enabled=true --set denoiser.beta=$beta \
    --set output_dir="$out" --set name="beauty-denoiser-beta$beta-s1"
done
