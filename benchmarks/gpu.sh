#!/usr/bin/env bash
# All GPU benchmarks in one short script (about 3-4 minutes on one modern GPU), for a brief lease
# on an accelerator machine. Prints Markdown to paste into docs/benchmarks.md.
# Usage: RECDENOISER_DATA_DIR=../shared/data bash benchmarks/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python}
"$py" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"
"$py" benchmarks/train_speed.py --device cuda --dataset games --epochs 3 \
  --cases sasrec,sasrec-bf16,denoiser-arm,denoiser-arm-jac-every4,denoiser-input,bert4rec
"$py" benchmarks/train_speed.py --device cuda --dataset ml-1m --epochs 3 \
  --cases sasrec,sasrec-bf16,denoiser-arm,bert4rec
"$py" benchmarks/eval_speed.py --device cuda --dataset games --repeats 3
"$py" benchmarks/eval_speed.py --device cuda --dataset ml-1m --repeats 3
