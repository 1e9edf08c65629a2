#!/usr/bin/env bash
# Issue 16 on the H200 (`device`): the seed preset on every GPU backend at default settings (3 worker processes
# per case, the GPU budget split across them, every element verified), one backend per `opbench run`, each
# followed by its phase breakdown (benchmarks/breakdown.py); then benchmarks/fidelity.py on the cases that took
# >= 50 us on cuda in results/h200/verdicts. ONE device call (everything is cut off by $LIMIT, default 560 s):
#
#   source .device/mlx-b/install.sh   # optional: MLX CUDA in /tmp/mlx-site (mlx_gpu, mlx_gpu_compile)
#   OUT=$OUT bash benchmarks/h200_suite.sh          # ~7-9 min; writes $OUT/suite/ and packs $OUT/suite.tgz
#
# EAGER, LATER (backend lists) and FIDELITY=0 change the steps below; by default every step runs. FIDELITY_BUDGET
# sets fidelity.py's per-case budget (its default: 0.5 s).
# Order: fill the caches (inputs + float64 references, in parallel: what a first run on a machine pays once),
# then cuda, mlx_gpu, jax_gpu (the issue's eager goals, <= 30 s each), the fidelity check, then cupy (if the
# backend exists), cuda_compile and mlx_gpu_compile (<= 60 s each). A step starts only with at least 40 s left
# and runs under `timeout`; $OUT/suite.tgz is re-packed after every step, so a cut-off call keeps what is done.
# Per backend: $OUT/suite/<backend>/{run.json,stdout.md,stderr.log,breakdown.md,breakdown.json}; the summary of
# every step with its command wall time is $OUT/suite/summary.txt.
set -u
: "${OUT:?set OUT to the output directory}"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
[ -d /tmp/mlx-site ] && case ":$PYTHONPATH:" in *:/tmp/mlx-site:*) ;; *) export PYTHONPATH="$PYTHONPATH:/tmp/mlx-site";; esac
# the caches live outside $OUT (only results come back); a warm machine keeps them between calls
export OPBENCH_DATA_DIR=${OPBENCH_DATA_DIR:-/tmp/opbench-suite-data}
# room for the whole seed preset (inputs 11.8 GB, expectations ~9.7 GB): no eviction inside the cycle
export OPBENCH_INPUT_CACHE_MB=${OPBENCH_INPUT_CACHE_MB:-16384} OPBENCH_REFERENCE_CACHE_MB=${OPBENCH_REFERENCE_CACHE_MB:-16384}
LIMIT=${LIMIT:-560}
PRESET=${PRESET:-seed}  # quick: a smoke test of this script (no GPU needed: unavailable backends are skipped)
START=$(date +%s)
DIR="$OUT/suite"
mkdir -p "$DIR"
SUMMARY="$DIR/summary.txt"
left() { echo $((LIMIT - ($(date +%s) - START))); }
say() { echo "$*" | tee -a "$SUMMARY"; }
pack() { tar -czf "$OUT/suite.tgz" -C "$OUT" suite; }
now() { date +%s.%N; }

say "h200_suite: $(date -u +%FT%TZ) git $(git rev-parse --short HEAD 2>/dev/null || echo '?'), limit ${LIMIT}s"
nvidia-smi --query-gpu=name,clocks.sm,temperature.gpu,utilization.gpu,memory.used --format=csv > "$DIR/gpu-before.csv" 2>&1 || true
nproc > "$DIR/nproc.txt"; free -g > "$DIR/free.txt" 2>&1 || true

t0=$(now)
timeout $(( $(left) - 60 )) python benchmarks/fill_caches.py --preset "$PRESET" 2>"$DIR/fill-stderr.log" | tee -a "$SUMMARY"
say "fill_caches: rc ${PIPESTATUS[0]}, $(python -c "print(f'{$(now) - $t0:.1f}')") s"
pack

run_backend() {
    local b=$1 d="$DIR/$1" t
    if ! python -c "import sys; from opbench.backends import backend_names, get_backend; n=sys.argv[1]; sys.exit(0 if n in backend_names() and get_backend(n).availability().available else 1)" "$b" 2>/dev/null; then
        say "$b: not available here (skipped)"
        return
    fi
    if [ "$(left)" -lt 40 ]; then say "$b: skipped, $(left) s left"; return; fi
    mkdir -p "$d"
    t=$(now)
    timeout $(( $(left) - 10 )) python -m opbench run --backends "$b" --preset "$PRESET" --store "$d/store.sqlite" \
        --out "$d/run" --format md > "$d/stdout.md" 2> "$d/stderr.log"
    local rc=$? wall
    wall=$(python -c "print(f'{$(now) - $t:.1f}')")
    cp "$d/run/run.json" "$d/run.json" 2>/dev/null
    python benchmarks/breakdown.py "$d/run.json" --json "$d/breakdown.json" > "$d/breakdown.md" 2>&1
    say "$b: rc $rc, command wall ${wall} s"
    tail -n 1 "$d/breakdown.md" | tee -a "$SUMMARY"
    pack
}

for b in ${EAGER-cuda mlx_gpu jax_gpu}; do run_backend "$b"; done

if [ "${FIDELITY-1}" = 1 ] && [ "$(left)" -ge 60 ]; then
    OPS=$(python - <<'EOF'
import json
d = json.load(open("results/h200/verdicts/run.json"))
print(",".join(r["case"] for r in d["results"] if r["backend"] == "cuda" and (r.get("median_ms") or 0) >= 0.05))
EOF
)
    t=$(now)
    timeout $(( $(left) - 10 )) python benchmarks/fidelity.py --backend cuda --preset "$PRESET" --ops "$OPS" ${FIDELITY_BUDGET:+--budget "$FIDELITY_BUDGET"} \
        --json "$DIR/fidelity.json" > "$DIR/fidelity.txt" 2> "$DIR/fidelity-stderr.log"
    say "fidelity (cuda, cases >= 50 us): rc $?, $(python -c "print(f'{$(now) - $t:.1f}')") s"
    sed -n '/fidelity summary/,$p' "$DIR/fidelity.txt" | tee -a "$SUMMARY"
    pack
else
    say "fidelity: skipped, $(left) s left"
fi

for b in ${LATER-cupy cuda_compile mlx_gpu_compile}; do run_backend "$b"; done
say "h200_suite: done after $(( $(date +%s) - START )) s"
pack
