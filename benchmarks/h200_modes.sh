#!/usr/bin/env bash
# Issue 17 on the H200 (`device`), in ONE call of at most 9 minutes: the seed preset (91 cases) on cuda, mlx_gpu,
# jax_gpu (and cupy when opbench has that backend and CuPy is installed) in all four timing modes
# (throughput, latency, device, cold), with NVML telemetry (pynvml from nvidia-ml-py), then the independent
# check of the device mode against CUDA events on torch (benchmarks/modes_check.py).
#
#   source .device/mlx-b/install.sh && bash benchmarks/h200_modes.sh      # after the MLX staging call
#
# Reduced budget, stated here and in $OUT/modes/settings.txt: --budget 0.05 s of samples per case and mode (one
# worker process per backend, --processes 1); a GPU run lengthens every sample region to 0.1 s so that the NVML
# energy counter can be read over it. Expected (H100 seed runs took 86-130 s per backend at 0.5 s, 4 modes at
# 0.05-0.1 s cost about the same): caches ~30-60 s (instant after h200_suite.sh), cuda ~100 s, mlx_gpu ~100 s,
# jax_gpu ~140 s, cupy ~60 s, check ~70 s; the whole call about 8.5 minutes. Every step has its own `timeout`, derived from what is left of LIMIT (default
# 525 s), so the call ends in time: a backend cut short keeps every result it measured (store and run.json are
# written per result) and says so in its stderr.log (a full seed backend in 4 modes needs ~250 s at f67785c, so the
# evidence takes two calls: BACKENDS=cuda,mlx_gpu, then NO_CHECK=1 BACKENDS=jax_gpu,cupy; WANT_<BACKEND>= overrides a step's allowance); $OUT/modes.tgz is re-packed after every step, so even a
# call killed from outside brings back what was done. `BACKENDS=...` limits the backends, `BUDGET=` changes it.
#
# Outputs, under $OUT/modes/: <backend>/ (run.json, detailed.md, average.md, tables.md, stderr.log, rc),
# modes.sqlite (the store), check.jsonl / check.json / check.txt (the device-mode check), gpu-*.csv (nvidia-smi
# before and after), backends.md, settings.txt, timeline.txt, FINDINGS-figures.md (benchmarks/modes_findings.py).
# Commit them under results/h200/modes/ and fill FINDINGS.md from FINDINGS-figures.md.
set -u
: "${OUT:?set OUT to the output directory}"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
[ -d /tmp/mlx-site ] && case ":$PYTHONPATH:" in *:/tmp/mlx-site:*) ;; *) export PYTHONPATH="$PYTHONPATH:/tmp/mlx-site";; esac
START=$(date +%s)
LIMIT=${LIMIT:-525}
BUDGET=${BUDGET:-0.05}
PRESET=${PRESET:-seed}  # PRESET= and OPS= are for dry runs elsewhere (the evidence is the seed preset, all ops)
DIR="$OUT/modes"
mkdir -p "$DIR"
export OPBENCH_STORE="$DIR/modes.sqlite"
# the caches of benchmarks/h200_suite.sh (inputs, float64 references): warm if that ran on this machine
export OPBENCH_DATA_DIR=${OPBENCH_DATA_DIR:-/tmp/opbench-suite-data}
export OPBENCH_INPUT_CACHE_MB=${OPBENCH_INPUT_CACHE_MB:-16384} OPBENCH_REFERENCE_CACHE_MB=${OPBENCH_REFERENCE_CACHE_MB:-16384}
MODES=throughput,latency,device,cold

left() { echo $(( LIMIT - ($(date +%s) - START) )); }
pack() { tar -czf "$OUT/modes.tgz" -C "$OUT" modes 2>/dev/null; }
stamp() { echo "$(( $(date +%s) - START )) s: $*" | tee -a "$DIR/timeline.txt"; }
cap() {  # cap SECONDS RESERVE: SECONDS, or what is left after keeping RESERVE seconds for the later steps
    local want=$1 reserve=$2 have
    have=$(( $(left) - reserve ))
    [ "$have" -lt "$want" ] && want=$have
    echo "$want"
}

{
    echo "opbench $(git rev-parse --short HEAD 2>/dev/null || echo '?') h200_modes.sh"
    echo "modes: $MODES; budget: $BUDGET s per case and mode; processes: 1; preset: $PRESET${OPS:+ (ops $OPS)}; limit: $LIMIT s"
    echo "GPU sample regions are lengthened to 0.1 s (NVML energy counter); cold flushes 256 MiB (or 2x L2)"
} > "$DIR/settings.txt"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.draw,power.limit,temperature.gpu,clocks_throttle_reasons.active --format=csv \
    > "$DIR/gpu-before.csv" 2>&1 || true
python3 -m opbench backends --format md > "$DIR/backends.md" 2>&1 || true

stamp "fill_caches start"  # inputs and references once, in parallel (instant when already filled)
timeout 90 python3 benchmarks/fill_caches.py --preset "$PRESET" > "$DIR/fill.txt" 2>&1
stamp "fill_caches done rc=$?"

CUPY=""
python3 -c 'import importlib.util, sys; from opbench.backends import backend_names
sys.exit(0 if "cupy" in backend_names() and importlib.util.find_spec("cupy") else 1)' 2>/dev/null && CUPY=cupy
BACKENDS=${BACKENDS:-cuda mlx_gpu jax_gpu $CUPY}
BACKENDS=${BACKENDS//,/ }

# per-step allowance (s), and what to keep for the steps after it (the check and the findings: ~90 s)
declare -A WANT=([cuda]=${WANT_CUDA:-250} [mlx_gpu]=${WANT_MLX_GPU:-250} [jax_gpu]=${WANT_JAX_GPU:-300} [cupy]=${WANT_CUPY:-200})
run_backend() {
    local b=$1 reserve=$2 t
    t=$(cap "${WANT[$b]:-120}" "$reserve")
    if [ "$t" -lt 20 ]; then stamp "$b skipped: only $t s left"; return; fi
    mkdir -p "$DIR/$b"
    stamp "$b start (timeout $t s)"
    timeout -k 5 "$t" python3 -m opbench run --backends "$b" --preset "$PRESET" ${OPS:+--ops "$OPS"} --mode "$MODES" \
        --budget "$BUDGET" --processes 1 --out "$DIR/$b" --format md > "$DIR/$b/tables.md" 2> "$DIR/$b/stderr.log"
    local rc=$?
    echo "$rc" > "$DIR/$b/rc"
    [ "$rc" = 124 ] && echo "h200_modes.sh: $b stopped by its $t s timeout; the results measured are kept" \
        >> "$DIR/$b/stderr.log"
    stamp "$b done rc=$rc ($(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["results"]))' \
        "$DIR/$b/run.json" 2>/dev/null || echo 0) results)"
    pack
}

order=($BACKENDS)
checked=0
for i in "${!order[@]}"; do
    b=${order[$i]}
    rest=$(( ${#order[@]} - i - 1 ))
    # keep 15 s for the findings, 30 s for each later backend and, until it ran, 60 s for the check
    run_backend "$b" $(( 15 + 30 * rest + 60 * (1 - checked) ))
    if [ "$checked" = 0 ] && [ -z "${NO_CHECK:-}" ] && { [ "$b" = mlx_gpu ] || [ "$rest" = 0 ] || [[ " $BACKENDS " != *" mlx_gpu "* ]]; }; then
        checked=1
        t=$(cap 75 $(( 15 + 30 * rest )))   # the device-mode check, right after cuda and mlx_gpu
        if [ "$t" -ge 20 ]; then
            stamp "check start (timeout $t s)"
            rm -f "$DIR/check.jsonl"
            timeout -k 5 "$t" python3 benchmarks/modes_check.py --preset "$PRESET" ${OPS:+--ops "$OPS"} --samples 8 \
                --jsonl "$DIR/check.jsonl" \
                --json "$DIR/check.json" > "$DIR/check.txt" 2>&1
            stamp "check done rc=$?"
            pack
        fi
    fi
done

nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_throttle_reasons.active --format=csv \
    > "$DIR/gpu-after.csv" 2>&1 || true
timeout 30 python3 benchmarks/modes_findings.py "$DIR" > "$DIR/FINDINGS-figures.md" 2> "$DIR/findings.err"
stamp "findings rc=$?; total"
pack
ls -la "$DIR" | head -40
tail -3 "$DIR/check.txt" 2>/dev/null
cat "$DIR/timeline.txt"
