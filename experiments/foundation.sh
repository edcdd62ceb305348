#!/usr/bin/env bash
# SASRec on the real ML-1M, Games and Beauty files (the runs behind docs/results.md, in order).
# Usage: RECDENOISER_DATA_DIR=../shared/data bash experiments/foundation.sh [OUT_DIR]
# Each run writes OUT_DIR/NAME/{results.json,run.log,...}; results.json holds the wall time.
# One torch thread per run lets several runs share the machine without OpenMP threads spinning
# against each other (results do not depend on it beyond floating-point summation order).
set -euo pipefail
out=${1:-runs/foundation}
run() {
  local name=$1; shift
  if [ -f "$out/$name/results.json" ]; then echo "skip $name (done)"; return; fi
  echo "== $name: recdenoiser train $*"
  recdenoiser -q train "$@" --set output_dir="$out" --set name="$name" --set train.progress=false
}
run sasrec-ml-1m-bce   sasrec-ml-1m
run sasrec-ml-1m-ce    sasrec-ml-1m --set model.loss=softmax --set train.epochs=60 \
  --set train.eval_every=5 --set train.num_threads=1
run sasrec-ml-1m-bce-sasrecnorm sasrec-ml-1m --set model.norm=sasrec --set train.num_threads=1
run sasrec-games-bce   sasrec-games --set train.num_threads=1
run sasrec-beauty-bce  sasrec-beauty --set train.num_threads=1
