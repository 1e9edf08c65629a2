#!/usr/bin/env bash
# Issue 14 on the H200 (`device`): the A/A test and the planted 10 % power test of `opbench compare`, with
# default settings (3 worker processes per case, the budget split across them), seed preset.
# Run from the repo root; MLX CUDA staged with ../shared/device/stage-mlx-cuda.sh (PYTHONPATH gets /tmp/mlx-site).
# Everything lands under $OUT/significance/<mode>-<backends>/ (a.json, b.json, figures.json, figures.txt).
#
#   bash benchmarks/h200_significance.sh aa    cuda             # two default seed runs of cuda, compared   ~2 min
#   bash benchmarks/h200_significance.sh aa    mlx_gpu                                                     # ~2 min
#   bash benchmarks/h200_significance.sh aa    jax_gpu          # (XLA compiles every case in each process) ~4 min
#   bash benchmarks/h200_significance.sh power cuda,mlx_gpu     # run A, then run B doing 10 % more work     ~4 min
#   bash benchmarks/h200_significance.sh power jax_gpu                                                      # ~4 min
#   bash benchmarks/h200_significance.sh show                   # every figures.txt under $OUT/significance
#
# Each command stays well under 9 minutes (a `timeout 530` guards it); the figures are printed and kept in
# figures.txt. Commit $OUT/significance/* under results/significance/h200-*/ and quote figures.txt.
set -u
: "${OUT:?set OUT to the output directory}"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
[ -d /tmp/mlx-site ] && case ":$PYTHONPATH:" in *:/tmp/mlx-site:*) ;; *) export PYTHONPATH="$PYTHONPATH:/tmp/mlx-site";; esac
MODE=${1:?usage: h200_significance.sh aa|power|show [BACKENDS]}
if [ "$MODE" = show ]; then
    for f in "$OUT"/significance/*/figures.txt; do echo "== $f"; cat "$f"; done
    exit 0
fi
case "$MODE" in aa|power) ;; *) echo "h200_significance.sh: unknown mode $MODE (aa, power, show)" >&2; exit 2;; esac
BACKENDS=${2:?name the backends, e.g. cuda or cuda,mlx_gpu}
DIR="$OUT/significance/$MODE-${BACKENDS//,/-}"
mkdir -p "$DIR"
nvidia-smi --query-gpu=name,clocks.sm,temperature.gpu,utilization.gpu --format=csv > "$DIR/gpu-before.csv" 2>&1 || true
timeout 530 python benchmarks/significance.py "$MODE" --preset seed --backends "$BACKENDS" --out "$DIR" \
    2>"$DIR/stderr.log" | tee "$DIR/figures.txt"
echo "exit ${PIPESTATUS[0]}; outputs in $DIR"
