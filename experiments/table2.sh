#!/usr/bin/env bash
# The other rows of the Rec-Denoiser paper's Table 2 (SASRec and SASRec+Denoiser come from
# experiments/denoiser.sh): BERT4Rec, SSE-PT and TiSASRec with and without the denoiser, and the
# baselines FPMC, GRU4Rec and Caser, on ML-1M (n=50), Beauty and Games (n=25), at the paper's
# denoiser settings (2 blocks, 2 heads, beta=0.01, gamma=0.001). TiSASRec needs timestamps and
# runs on beauty-time (the Beauty data with review times) only.
# Usage: RECDENOISER_DATA_DIR=../shared/data [EPOCHS=100] [THREADS=1] \
#        [VARIANTS="backbone denoiser"] bash experiments/table2.sh [OUT_DIR] [SEEDS] [DATASETS] [MODELS]
# GRU4Rec is slow on a CPU (a sequential recurrent scan, and 49 negatives scored per position):
# it gets GRU4REC_EPOCHS (default 30) epochs instead of EPOCHS.
# Runs already finished (results.json present) are skipped, so the script can be re-run to resume.
# VARIANTS (default "backbone denoiser") picks which of a self-attentive model's two runs to make,
# e.g. VARIANTS=denoiser to add the +Denoiser row next to a backbone trained earlier.
set -euo pipefail
out=${1:-runs/table2}
seeds=${2:-"1"}
datasets=${3:-"ml-1m beauty games"}
models=${4:-"fpmc gru4rec caser bert4rec ssept tisasrec"}
threads=${THREADS:-1}
epochs=${EPOCHS:-100}
variants=${VARIANTS:-"backbone denoiser"}
common=(--set train.eval_every=5 --set train.patience=4 --set train.progress=false
        --set train.num_threads="$threads" --set output_dir="$out")
attentive=(--set model.num_blocks=2 --set model.num_heads=2)
run() {  # run NAME EPOCHS CONFIG [--set ...]
  local name=$1 n_epochs=$2; shift 2
  if [ -f "$out/$name/results.json" ]; then echo "skip $name (done)"; return; fi
  echo "== $name: recdenoiser train $* ${common[*]} --set train.epochs=$n_epochs"
  recdenoiser -q train "$@" "${common[@]}" --set train.epochs="$n_epochs" --set name="$name" \
    || echo "FAILED $name"
}
for seed in $seeds; do
  for ds in $datasets; do
    if [ "$ds" = ml-1m ]; then n=50; dropout=0.2; else n=25; dropout=0.5; fi
    data=(--set data.dataset="$ds" --set data.max_len=$n --set seed="$seed")
    for model in $models; do
      case $model in
        fpmc|caser) run "$ds-$model-s$seed" "$epochs" "$model" "${data[@]}" ;;
        gru4rec) run "$ds-$model-s$seed" "${GRU4REC_EPOCHS:-30}" "$model" "${data[@]}" ;;
        bert4rec|ssept|tisasrec)
          if [ "$model" = tisasrec ]; then
            [ "$ds" = beauty ] || continue
            config=(tisasrec-beauty --set data.dataset=beauty-time --set data.max_len=$n
                    --set seed="$seed")
          elif [ "$model" = bert4rec ]; then
            config=(bert4rec-"$ds" "${data[@]}")
          else
            config=(ssept-ml-1m "${data[@]}" --set model.dropout=$dropout)
          fi
          for variant in $variants; do
            case $variant in
              backbone) run "$ds-$model-s$seed" "$epochs" "${config[@]}" "${attentive[@]}" ;;
              denoiser) run "$ds-$model-denoiser-s$seed" "$epochs" "${config[@]}" \
                          "${attentive[@]}" --set denoiser.enabled=true ;;
              *) echo "unknown variant $variant (backbone, denoiser)" >&2; exit 2 ;;
            esac
          done ;;
        *) echo "unknown model $model" >&2; exit 2 ;;
      esac
    done
  done
done
