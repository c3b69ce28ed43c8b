#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md that a CPU cannot give, in one command sized for a short
# lease of a GPU (its steps' limits add up to 9 min 40 s, under the 10 a lent GPU allows one command;
# compiling a training step there takes 15-45 s):
#
#   bash experiments/benchmarks/gpu_session.sh [RESULTS_DIR] [TAG]
#   STEPS="transformer_float32" bash experiments/benchmarks/gpu_session.sh   # other steps
#   REHEARSAL=1 bash experiments/benchmarks/gpu_session.sh /tmp/rehearsal cpu  # tiny sizes, any machine
#
# gpu_tests            the GPU-only tests: cuDNN's flash attention against the reference, and the
#                      automatic choice of it for a bfloat16 Transformer, forward and gradients;
# compile_time         where the first call of seqjax's LSTM training step goes (compiled for an
#                      H200 without the card, so without autotuning, it takes 1.9 s against
#                      Flax's 2.5-2.9; on the card 33-46 s): XLA's autotuning on, writing a
#                      per-fusion autotune cache folder (as seqjax's --compilation_cache keeps
#                      it); the same with that folder filled; autotuning off; and the matrix
#                      products on cuBLAS instead of Triton (--xla_gpu_enable_triton_gemm=false);
# compile_time_flax    the same for Flax's LSTM, autotuning on;
# transformer_bfloat16 the Transformer training step at nanoGPT's GPU size against PyTorch, both
#                      in bfloat16 (seqjax's attention "auto": cuDNN's flash attention);
# transformer_float32  (not in the default steps; measured before: 0.90) the same in float32;
# transformer_float32_cublas  (not in the default steps) the same with XLA's products on cuBLAS,
#                      PyTorch's own GEMM library, instead of Triton;
# recurrent_bfloat16   the LSTM and GRU training steps in bfloat16 against Flax and PyTorch's autocast;
# decode_speed         greedy decoding of 256 and 4096 tokens through a sliding 64-token window;
# decode_speed_ring    (not in the default steps) the same for rotary positions: the ring-buffer
#                      cache against nanoGPT's crop recomputed;
# parallel_scan        (not in the default steps) the linear recurrences' training time per token
#                      at T = 512 and 4,096 against the fused GRU (issue 27's GPU goal: 50x at
#                      4,096), every back-end and auto, the widths' sweep that fills AUTO_TABLE's
#                      GPU row; writes RESULTS_DIR/parallel_scan_TAG.{json,png};
# long_context         (not in the default steps: it takes a session of its own, 9 min 20 s)
#                      the long-context study at --budget=gpu (1,024-token windows, 4 sizes per
#                      family); its runs resume, so a second session finishes what one did not.
#                      Writes RESULTS_DIR/long_context_TAG/long_context.{json,png}.
#
# Each step has its own time limit, so one that overruns costs only itself; each writes
# RESULTS_DIR/NAME_TAG.json (default: experiments/benchmarks/results, TAG the GPU's name).
# Needs the project installed with its test extra (pip install -e ".[test]") and PyTorch.
set -u
results=${1:-experiments/benchmarks/results}
tag=${2:-$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr -cs 'A-Za-z0-9' '_' | tr 'A-Z' 'a-z' | sed 's/_$//')}
tag=${tag:-gpu}
python=${PYTHON:-python3}
steps=${STEPS:-gpu_tests compile_time compile_time_flax transformer_bfloat16 recurrent_bfloat16 decode_speed}
# Several JAX processes share the GPU (the compile-time children, the test workers): none may
# take 75% of its memory up front, JAX's default.
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
mkdir -p "$results"
lstm=lstm:32x128x64x256 gpt=nanogpt_gpu shape=32x128x64x256 tokens=256,4096 repeats=10
study_budget=gpu scan_lengths=512,4096 scan_widths=128,256,512 scan_width=256 scan_tokens=16384
if [ -n "${REHEARSAL:-}" ]; then  # every command at a toy size, to check the script itself
  lstm=lstm:2x8x4x8 gpt=tiny shape=2x8x4x8 tokens=16,80 repeats=1 study_budget=tiny
  scan_lengths=4,8 scan_widths=8 scan_width=8 scan_tokens=16
fi

step() {  # step SECONDS NAME COMMAND...: run COMMAND with a time limit if NAME is in $steps
  local limit=$1 name=$2
  shift 2
  case " $steps " in *" $name "*) ;; *) return ;; esac
  echo "== $name ($(date -u +%H:%M:%S), limit ${limit} s): $*"
  timeout "$limit" "$@"
  echo "== $name: exit $?"
}

step 60 gpu_tests "$python" -m pytest -q -n 2 -p no:cacheprovider tests/test_attention.py \
  tests/test_transformer_lm.py -k "cudnn or auto_attention"
autotune_cache=$(mktemp -d)  # empty: the first variant, XLA's default autotuning, fills it
trap 'rm -rf "$autotune_cache"' EXIT
cached="--xla_gpu_per_fusion_autotune_cache_dir=$autotune_cache"
step 200 compile_time "$python" -m experiments.benchmarks.compile_time --models $lstm \
  --contenders seqjax --top 25 --timeout 70 --out "$results/compile_time_$tag.json" \
  --variants="$cached;$cached;--xla_gpu_autotune_level=0;--xla_gpu_enable_triton_gemm=false"
step 50 compile_time_flax "$python" -m experiments.benchmarks.compile_time --models $lstm \
  --contenders flax --top 25 --out "$results/compile_time_flax_$tag.json"
step 100 transformer_float32 "$python" -m experiments.benchmarks.transformer --sizes $gpt \
  --modes train --repeats $repeats --out "$results/transformer_float32_$tag.json"
XLA_FLAGS="${XLA_FLAGS:-} --xla_gpu_enable_triton_gemm=false" \
  step 100 transformer_float32_cublas "$python" -m experiments.benchmarks.transformer --sizes $gpt \
  --modes train --repeats $repeats --out "$results/transformer_float32_cublas_$tag.json"
step 100 transformer_bfloat16 "$python" -m experiments.benchmarks.transformer --sizes $gpt \
  --modes train --repeats $repeats --dtype bfloat16 --out "$results/transformer_bfloat16_$tag.json"
step 120 recurrent_bfloat16 "$python" -m experiments.benchmarks.recurrent --cells lstm,gru \
  --shapes $shape --modes train --peers flax,torch --repeats $repeats --dtype bfloat16 \
  --out "$results/recurrent_bfloat16_$tag.json"
step 50 decode_speed "$python" -m experiments.benchmarks.decode_speed --num-tokens $tokens \
  --context-length 64 --repeats $repeats --out "$results/decode_speed_sliding_$tag.json"
step 50 decode_speed_ring "$python" -m experiments.benchmarks.decode_speed --num-tokens $tokens \
  --context-length 64 --positional rotary --repeats $repeats \
  --out "$results/decode_speed_sliding_ring_rotary_$tag.json"
step 400 parallel_scan "$python" -m experiments.benchmarks.parallel_scan --lengths $scan_lengths \
  --width $scan_width --tokens $scan_tokens --auto-widths $scan_widths --auto-lengths $scan_lengths --repeats $repeats \
  --out "$results/parallel_scan_$tag.json" --figure "$results/parallel_scan_$tag.png"
step 560 long_context "$python" -m experiments.reproductions.long_context \
  --workdir="$results/long_context_$tag" --budget=$study_budget
