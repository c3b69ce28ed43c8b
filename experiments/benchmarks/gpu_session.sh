#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md that a CPU cannot give, in one command sized for a short
# lease of a GPU (about 10 minutes of commands; compiling a training step there takes 15-45 s):
#
#   bash experiments/benchmarks/gpu_session.sh [RESULTS_DIR] [TAG]
#
# 0. the GPU-only tests: cuDNN's flash attention against the reference, and the automatic
#    choice of it for a bfloat16 Transformer, forward and gradients;
# 1. where the first call of the LSTM training step goes, seqjax beside Flax, with XLA's GEMM
#    autotuning on (default) and off (the suspect for the 33-46 s against Flax's 14-20 s);
# 2. the Transformer training step at nanoGPT's GPU size against PyTorch: float32 (the
#    written-out attention), then bfloat16 (attention "auto": cuDNN's flash attention);
# 3. the recurrent training steps in bfloat16 against Flax and PyTorch's autocast;
# 4. greedy decoding of 256 and 4096 tokens with the sliding KV cache.
# Each step has its own time limit, so one that overruns costs only itself; each writes
# RESULTS_DIR/NAME_TAG.json (default: experiments/benchmarks/results, TAG the GPU's name).
# Needs the project installed with its test extra (pip install -e ".[test]") and PyTorch.
set -u
results=${1:-experiments/benchmarks/results}
tag=${2:-$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr -cs 'A-Za-z0-9' '_' | tr 'A-Z' 'a-z' | sed 's/_$//')}
tag=${tag:-gpu}
mkdir -p "$results"

step() {  # step SECONDS NAME COMMAND...: run COMMAND with a time limit, say how it ended
  local limit=$1 name=$2
  shift 2
  echo "== $name ($(date -u +%H:%M:%S), limit ${limit} s): $*"
  timeout "$limit" "$@"
  echo "== $name: exit $?"
}

step 60 gpu_tests python -m pytest -q -n 4 -p no:cacheprovider tests/test_attention.py \
  tests/test_transformer_lm.py -k "cudnn or auto_attention"
step 150 compile_time python -m experiments.benchmarks.compile_time --models lstm:32x128x64x256 \
  --contenders seqjax,flax --variants ",--xla_gpu_autotune_level=0" --top 25 \
  --out "$results/compile_time_$tag.json"
step 100 transformer_float32 python -m experiments.benchmarks.transformer --sizes nanogpt_gpu \
  --modes train --repeats 10 --out "$results/transformer_float32_$tag.json"
step 100 transformer_bfloat16 python -m experiments.benchmarks.transformer --sizes nanogpt_gpu \
  --modes train --repeats 10 --dtype bfloat16 --out "$results/transformer_bfloat16_$tag.json"
step 120 recurrent_bfloat16 python -m experiments.benchmarks.recurrent --cells lstm,gru \
  --shapes 32x128x64x256 --modes train --repeats 5 --dtype bfloat16 \
  --out "$results/recurrent_bfloat16_$tag.json"
step 70 decode_speed python -m experiments.benchmarks.decode_speed --num-tokens 256,4096 \
  --repeats 3 --out "$results/decode_speed_sliding_$tag.json"
