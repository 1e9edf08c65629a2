#!/usr/bin/env bash
# A `device` session for issues 14, 16 and 17 in three calls, at the default settings of this commit (the GPU
# budget `defaults.GPU_RUN_BUDGET_S`, 3 units per case), seed preset. MLX CUDA staged with
# ../shared/device/stage-mlx-cuda.sh; the caches (inputs, float64 references) live in /tmp on the GPU machine
# and are filled in the first call (a warm machine keeps them for the next calls):
#
#   call 1 (carry .device/mlx-a): bash .device/mlx-a/stash.sh && OUT=$OUT bash benchmarks/h200_batch.sh 1
#       fill the caches; the A/A and power pairs of cuda (benchmarks/h200_significance.sh; SIG_BACKENDS,
#       SIG_SECONDS to change them); the fidelity check at one unit's share of the GPU budget (0.05 s) and the
#       cupy suite (h200_suite.sh); then, in what is left of the call,
#       benchmarks/modes_check.py (graph replay and CUPTI kernel time against queued CUDA events, issue 17) on
#       the 50 cases of results/h200/modes-gap/cases.txt, one JSON row per case as it is measured
#   call 2 (carry .device/mlx-b): source .device/mlx-b/install.sh && OUT=$OUT bash benchmarks/h200_batch.sh 2
#       the A/A and power pairs of mlx_gpu and jax_gpu
#   call 3: OUT=$OUT bash benchmarks/h200_batch.sh 3
#       the compiled backends' suites (cuda_compile, mlx_gpu_compile; LIMIT, default 500 s)
#
# Each step is cut off by its own time limit, so one call stays under the device's 600 s; everything goes to
# $OUT (significance/, suite/, modes-check/), with a log per step.
set -u
: "${OUT:?set OUT to the output directory}"
CALL=${1:?call 1, 2 or 3}
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
[ -d /tmp/mlx-site ] && export PYTHONPATH="$PYTHONPATH:/tmp/mlx-site"
export OPBENCH_DATA_DIR=${OPBENCH_DATA_DIR:-/tmp/opbench-suite-data}
export OPBENCH_INPUT_CACHE_MB=${OPBENCH_INPUT_CACHE_MB:-16384} OPBENCH_REFERENCE_CACHE_MB=${OPBENCH_REFERENCE_CACHE_MB:-16384}
START=$SECONDS
log() { echo "[$((SECONDS - START)) s] $*" | tee -a "$OUT/batch-$CALL.log"; }
mkdir -p "$OUT"
log "call $CALL on $(nvidia-smi --query-gpu=name,clocks.sm,temperature.gpu,power.draw --format=csv,noheader 2>&1 | head -1)"

case "$CALL" in
1)
    timeout 120 python benchmarks/fill_caches.py --preset seed > "$OUT/fill.txt" 2>&1; log "fill_caches rc $?"
    bash benchmarks/h200_significance.sh ${SIG_BACKENDS:-cuda} ${SIG_SECONDS:-250} \
        > "$OUT/significance-cuda.txt" 2>&1; log "significance ${SIG_BACKENDS:-cuda} rc $?"
    tail -n 8 "$OUT/significance-cuda.txt"
    if [ $((SECONDS - START)) -lt 420 ]; then
        EAGER= LATER=cupy FIDELITY=1 FIDELITY_BUDGET=0.05 LIMIT=$((560 - (SECONDS - START))) bash benchmarks/h200_suite.sh \
            > "$OUT/suite-cupy.txt" 2>&1
        log "fidelity and cupy suite rc $?"; tail -n 6 "$OUT/suite-cupy.txt"
    else
        log "fidelity and cupy suite: no time left"
    fi
    left=$((575 - (SECONDS - START)))
    if [ "$left" -ge 40 ]; then
        mkdir -p "$OUT/modes-check"
        timeout "$left" python benchmarks/modes_check.py --ops "$(paste -sd, results/h200/modes-gap/cases.txt)" \
            --jsonl "$OUT/modes-check/rows.jsonl" --json "$OUT/modes-check/check.json" \
            > "$OUT/modes-check/check.txt" 2> "$OUT/modes-check/stderr.log"
        log "modes_check rc $? ($(wc -l < "$OUT/modes-check/rows.jsonl" 2>/dev/null || echo 0) cases)"
    else
        log "modes_check: no time left"
    fi
    ;;
2)
    bash benchmarks/h200_significance.sh mlx_gpu,jax_gpu ${SIG_SECONDS:-560} > "$OUT/significance-mlx-jax.txt" 2>&1
    log "significance mlx_gpu,jax_gpu rc $?"; tail -n 8 "$OUT/significance-mlx-jax.txt"
    ;;
3)
    EAGER= LATER="cuda_compile mlx_gpu_compile" FIDELITY=0 LIMIT=${LIMIT:-500} bash benchmarks/h200_suite.sh \
        > "$OUT/suite-rest.txt" 2>&1
    log "compiled suites rc $?"; tail -n 8 "$OUT/suite-rest.txt"
    ;;
*) echo "h200_batch.sh: call must be 1, 2 or 3, got '$CALL'" >&2; exit 2 ;;
esac
log "call $CALL done"
