#!/usr/bin/env bash
# Quality check of length-bucketed batches: SASRec on Games for the same 20 epochs with and without
# bucketing (same seed); compare validation and test Hit@10 / NDCG@10 in results.json.
# Usage: RECDENOISER_DATA_DIR=../shared/data bash experiments/bucketing_check.sh [OUT_DIR]
set -euo pipefail
out=${1:-runs/bucketing}
for bucket in true false; do
  recdenoiser -q train sasrec-games --set train.epochs=20 --set train.eval_every=20 \
    --set train.bucket_by_length=$bucket --set train.progress=false --set train.num_threads=1 \
    --set output_dir="$out" --set name="games-bucket-$bucket-20ep"
done
