#!/usr/bin/env bash
# The GPU path in one go, on a machine with a CUDA GPU and this package's environment:
#   bash benchmarks/gpu_check.sh            (writes gpu_check.log, or $OUT/gpu_check.log where OUT is set)
# 1. the tests that compare hardware=gpu with the CPU, and the accelerator checks;
# 2. task-model training and the default alignment on hardware=gpu (the same commands as on the CPU);
# 3. the default suite, to see that it passes with this torch build.
# About 10 minutes on one H200 with 16 cores.
set -uo pipefail
cd "$(dirname "$0")/.."
log="${OUT:-.}/gpu_check.log"
export PYTHONUNBUFFERED=1 WANDB_MODE=offline
{
  python -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name(0))"
  echo "+ GPU tests"
  python -m pytest -q -p no:cacheprovider tests/integration/test_gpu.py tests/unit/test_accelerator.py -rs
  echo "+ training speed, hardware=gpu"
  python benchmarks/training_speed.py --models gru transformer --seeds 0 hardware=gpu
  echo "+ alignment speed, hardware=gpu"
  python benchmarks/alignment_speed.py --parts fresh default hardware=gpu
  echo "+ default suite"
  python -m pytest -q -p no:cacheprovider -x
} 2>&1 | tee "$log"
