#!/usr/bin/env bash
# Issue 15 (one engine for every study) on the H200 (`device`): the studies that used to set up every framework
# in one process now measure in worker processes through the engine; this checks them on the GPU backends, where
# the adapters' framework facts (free device memory, torch.compile's counters, TF32 precision modes, MLX's
# MLX_ENABLE_TF32 workers) matter. ONE device call, ~4-5 min (cut off by $LIMIT, default 540 s):
#
#   source .device/mlx-b/install.sh   # optional: MLX CUDA in /tmp/mlx-site (mlx_gpu)
#   OUT=$OUT bash benchmarks/h200_engine.sh        # writes $OUT/engine/ and packs $OUT/engine.tgz
#
# Steps (each under `timeout`, started only with >= 40 s left; the .tgz is re-packed after every step):
# 1. calibrate cuda, jax_gpu, mlx_gpu (those available): copy/read probes + matmul peaks per dtype, budget 0.2 s,
#    N up to 8192 (~30-60 s per backend). Expect for mlx_gpu both a float32 (MLX_ENABLE_TF32=0 worker) and a tf32
#    (MLX_ENABLE_TF32=1 worker) figure in ONE calibration; cuda/jax_gpu float32 << tf32.
# 2. sweep matmul 1024,4096,8192 on cuda,cuda_compile,jax_gpu,mlx_gpu (~60 s): every point measured in its
#    backend's worker; cuda_compile's points carry dynamo's counters (graphs: 1, no eager fallback).
# 3. dtypes on MatMul,Conv2d,Softmax in float32,float16,bfloat16 + the 1024 matmul precision study (~90 s):
#    torch highest/high/medium, jax highest/high/default, mlx MLX_ENABLE_TF32=0/1 (each env mode its own worker).
# Per step: $OUT/engine/<step>/{stdout.md,stderr.log,...}; a summary with each command's wall time and exit code
# is $OUT/engine/summary.txt.
set -u
: "${OUT:?set OUT to the output directory}"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
[ -d /tmp/mlx-site ] && case ":$PYTHONPATH:" in *:/tmp/mlx-site:*) ;; *) export PYTHONPATH="$PYTHONPATH:/tmp/mlx-site";; esac
export OPBENCH_DATA_DIR=${OPBENCH_DATA_DIR:-/tmp/opbench-engine-data} OPBENCH_STORE=${OPBENCH_STORE:-/tmp/opbench-engine.sqlite}
LIMIT=${LIMIT:-540}
START=$(date +%s)
DIR="$OUT/engine"
mkdir -p "$DIR"
SUMMARY="$DIR/summary.txt"
left() { echo $((LIMIT - ($(date +%s) - START))); }
say() { echo "$*" | tee -a "$SUMMARY"; }
pack() { tar -czf "$OUT/engine.tgz" -C "$OUT" engine; }
step() {  # step NAME SECONDS COMMAND...: run with a time-out, record wall time and exit code
  local name=$1 want=$2; shift 2
  if [ "$(left)" -lt 40 ]; then say "$name: skipped ($(left) s left)"; return; fi
  local limit=$(( want < $(left) - 10 ? want : $(left) - 10 ))
  mkdir -p "$DIR/$name"
  local t0; t0=$(date +%s.%N)
  timeout "$limit" "$@" > "$DIR/$name/stdout.md" 2> "$DIR/$name/stderr.log"
  local rc=$?
  say "$name: rc=$rc wall=$(python3 -c "import time; print(f'{time.time() - $t0:.1f}')") s (limit ${limit} s): $*"
  pack
}

say "h200_engine: $(date -u +%FT%TZ) git $(git rev-parse --short HEAD 2>/dev/null || echo '?'), limit ${LIMIT}s"
python3 -m opbench backends --format md > "$DIR/backends.md" 2>&1
available() { python3 - "$1" <<'EOF'
import sys
from opbench.backends import get_backend
print(",".join(n for n in sys.argv[1].split(",") if get_backend(n).availability().available))
EOF
}
# the backend lists can be overridden (a CPU smoke test of this script: CAL=cpu,mlx_cpu SWEEP=cpu,jax_cpu ...)
CAL=$(available "${CAL:-cuda,jax_gpu,mlx_gpu}")
SWEEP=$(available "${SWEEP:-cuda,cuda_compile,jax_gpu,mlx_gpu}")
DT=$(available "${DT:-cuda,jax_gpu,mlx_gpu}")
SIZES=${SIZES:-1024,4096,8192} MAXN=${MAXN:-8192}
say "calibrating: ${CAL:-none}; sweeping: ${SWEEP:-none}; dtypes: ${DT:-none}"

for b in ${CAL//,/ }; do
  step "calibrate-$b" 150 python3 -m opbench calibrate --backends "$b" --budget 0.2 --max-n "$MAXN" \
    --out "$DIR/calibration.json" --format md
done
[ -n "$SWEEP" ] && step sweep 150 python3 -m opbench sweep matmul --sizes "$SIZES" --backends "$SWEEP" \
  --budget 0.5 $( [ -f "$DIR/calibration.json" ] && echo --calibration "$DIR/calibration.json") --out "$DIR/sweep" --format md
[ -n "$DT" ] && step dtypes 200 python3 -m opbench dtypes --backends "$DT" --ops MatMul,Conv2d,Softmax \
  --dtypes float32,float16,bfloat16 --matmul-size 1024 --no-store --out "$DIR/dtypes" --format md
rm -f "$DIR"/sweep/*.png "$DIR"/dtypes/*.png  # the tables and JSON are the evidence; keep the pack small
say "done after $(( $(date +%s) - START )) s"
pack
