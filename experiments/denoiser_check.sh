#!/usr/bin/env bash
# Validation-only investigation of SASRec+Denoiser on Beauty at the paper's settings (n=25, L=2,
# H=2, seed 1, 40 epochs): which part helps or hurts. Compare the validation NDCG@10 of each run
# (validation.csv, or `python experiments/summarize.py check OUT_DIR`); the test split is never
# used to choose. The runs are deterministic and the learning rate is constant, so SASRec and the
# full denoiser (variants `sasrec`, `full`) at epoch 40 can equally be read from the validation.csv
# of the 100-epoch seed-1 runs of experiments/denoiser.sh.
# Usage: RECDENOISER_DATA_DIR=../shared/data bash experiments/denoiser_check.sh [OUT_DIR] [VARIANTS]
set -euo pipefail
out=${1:-runs/denoiser-check}
variants=${2:-"masks jacobian masks-sequence masks-beta1e-3 jacobian-gamma1e-4"}
common=(sasrec-beauty --set data.max_len=25 --set seed=1 --set model.num_blocks=2
        --set model.num_heads=2 --set train.eval_every=5 --set train.patience=4
        --set train.progress=false --set train.num_threads=1 --set train.epochs=40
        --set output_dir="$out")
on=(--set denoiser.enabled=true)
masks=("${on[@]}" --set denoiser.jacobian=false)
jac=("${on[@]}" --set denoiser.masks=false)
for variant in $variants; do
  [ -f "$out/$variant/results.json" ] && { echo "skip $variant (done)"; continue; }
  case $variant in
    sasrec) extra=() ;;
    full) extra=("${on[@]}") ;;                       # beta=0.01, gamma=0.001 (paper)
    masks) extra=("${masks[@]}") ;;                   # masks only, beta=0.01
    jacobian) extra=("${jac[@]}") ;;                  # Jacobian only, gamma=0.001
    masks-beta1e-3) extra=("${masks[@]}" --set denoiser.beta=0.001) ;;
    masks-beta1e-4) extra=("${masks[@]}" --set denoiser.beta=0.0001) ;;
    masks-sequence) extra=("${masks[@]}" --set denoiser.mask_sampling=sequence) ;;
    jacobian-gamma1e-4) extra=("${jac[@]}" --set denoiser.gamma=0.0001) ;;
    jacobian-residual) extra=("${jac[@]}" --set denoiser.jacobian_target=residual) ;;
    full-residual-beta1e-3) extra=("${on[@]}" --set denoiser.jacobian_target=residual
                                   --set denoiser.beta=0.001) ;;
    *) echo "unknown variant $variant" >&2; exit 2 ;;
  esac
  echo "== $variant: recdenoiser train ${common[*]} ${extra[*]}"
  recdenoiser -q train "${common[@]}" "${extra[@]}" --set name="$variant" || echo "FAILED $variant"
done
