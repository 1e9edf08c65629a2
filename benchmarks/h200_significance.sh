#!/usr/bin/env bash
# Issue 14 on the H200 (`device`): the A/A test and the planted 10 % power test of `opbench compare`, default
# settings (3 worker processes per case, the budget split across them), seed preset, one backend after another.
# Run from the repo root; for mlx_gpu, MLX CUDA staged with ../shared/device/stage-mlx-cuda.sh (/tmp/mlx-site).
#
#   bash benchmarks/h200_significance.sh [BACKENDS [SECONDS]]     # default: cuda,mlx_gpu,jax_gpu 560
#   PRESET=quick OPS=ReLU,MatMul bash benchmarks/h200_significance.sh cpu 300   # smoke test on a CPU
#
# Per backend (benchmarks/significance.py both): two default seed-preset runs of the same code (A/A), then the
# power pair (run A on <backend>_x10, run B on <backend>_x11: 10 % more real work in every call) on the cases
# the A/A's first run timed at 40 µs or more. Cost per backend: about 2 default runs + 2 x (share of cases at
# 40 µs or more) of one, i.e. about 3 default runs (~6-9 min at 125-185 s per default run, ~1.5 min at 30 s).
# SECONDS (default 560) is the budget of the whole call: a run whose estimate (from the earlier runs' time per
# case) does not fit is skipped and said, a backend that does not fit at all is left out, and the pack below
# always runs. Results: $OUT/significance/<backend>/{aa,power}/{a,b}.json, figures.{txt,json}, log.txt,
# gpu-{before,after}.csv; all packed into $OUT/significance.tgz. The summary figures (A/A false-positive rate
# per backend under / at or above 50 µs, power at 50 µs or more) are the last lines printed.
set -u
: "${OUT:?set OUT to the output directory}"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
[ -d /tmp/mlx-site ] && case ":$PYTHONPATH:" in *:/tmp/mlx-site:*) ;; *) export PYTHONPATH="$PYTHONPATH:/tmp/mlx-site";; esac
BACKENDS=${1:-cuda,mlx_gpu,jax_gpu}
BUDGET=${2:-560}
PRESET=${PRESET:-seed}  # PRESET=quick OPS=ReLU,MatMul: a smoke test of this script on a CPU backend
case "$BUDGET" in ''|*[!0-9]*) echo "h200_significance.sh: SECONDS must be a whole number, got '$BUDGET'" >&2; exit 2;; esac
ROOT="$OUT/significance"
mkdir -p "$ROOT"
START=$SECONDS
pack() { tar -czf "$OUT/significance.tgz" -C "$OUT" significance && echo "packed $OUT/significance.tgz ($((SECONDS - START)) s in all)"; }
trap pack EXIT
gpu() { nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu,power.draw,utilization.gpu --format=csv > "$1" 2>&1 || true; }

IFS=, read -ra LIST <<< "$BACKENDS"
for backend in "${LIST[@]}"; do
    left=$((BUDGET - (SECONDS - START)))
    if [ "$left" -lt 60 ]; then echo "== $backend: left out, ${left} s of the ${BUDGET} s budget left"; continue; fi
    dir="$ROOT/$backend"; mkdir -p "$dir"
    echo "== $backend: start at $((SECONDS - START)) s, ${left} s left"
    gpu "$dir/gpu-before.csv"
    t0=$SECONDS
    # the python deadline leaves 20 s for its last comparison; timeout is the hard stop behind it
    timeout $((left - 5)) python benchmarks/significance.py both --preset "$PRESET" ${OPS:+--ops "$OPS"} --backends "$backend" \
        --out "$dir" --deadline $((left - 20)) > "$dir/log.txt" 2> "$dir/stderr.log"
    rc=$?
    gpu "$dir/gpu-after.csv"
    grep -E "^(aa-|power-|  aa-|  power-)|skipped" "$dir/log.txt"
    echo "== $backend: exit $rc after $((SECONDS - t0)) s"
    [ "$rc" -eq 0 ] || tail -3 "$dir/stderr.log"
    pack > /dev/null  # after every backend, so a call cut off later keeps this one
done

echo "== summary (goal: A/A at most 5 % of rows called different; power at least 90 % of rows of 50 us or more called slower)"
for backend in "${LIST[@]}"; do
    f="$ROOT/$backend/figures.json"
    if [ -f "$f" ]; then python benchmarks/significance.py show "$ROOT/$backend" | sed -n '/^summary/,$p' | tail -n +2
    else echo "  $backend: no figures"; fi
done
