#!/usr/bin/env bash
# Issue 15 on the H200 (`device`): the new `cupy` backend over the seed preset at default settings (3 worker
# processes per case, the 0.5 s budget split across them, CUPY_TF32 unset = full float32), measured in the same
# run as torch's `cuda` so that their ratios are side by side; then the tables rendered from the stored run.
# Run from the repo root. Everything lands under $OUT/cupy/ and is packed into the one file $OUT/cupy.tgz.
#
#   bash benchmarks/h200_cupy.sh            # seed preset, cupy then cuda, one stored run          ~3-4 min
#   BACKENDS=cupy bash benchmarks/h200_cupy.sh                       # cupy alone                     ~2 min
#   MODE=tf32 bash benchmarks/h200_cupy.sh  # also the matrix-product families again with CUPY_TF32=1
#                                           # (expected: `reduced-precision`, faster), one more run    +1 min
#
# Contents of cupy.tgz: env.txt (GPU, CuPy's config), backends.md, seed.txt (the run's own tables and notes),
# seed/ (run.json, detailed.md, average.md), tables.md (`opbench show` of the stored run, with cupy/cuda
# speedups), store.sqlite, and with MODE=tf32 tf32.txt + tf32/. A `timeout` guards each step so the whole call
# stays under 9 minutes; a cut-off run keeps every result measured so far (the store is written case by case).
set -u
: "${OUT:?set OUT to the output directory}"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
BACKENDS=${BACKENDS:-cupy,cuda}
PRESET=${PRESET:-seed}  # `PRESET=quick BACKENDS=numpy` rehearses the script on a machine without a GPU
DIR="$OUT/cupy"
STORE="$DIR/store.sqlite"
mkdir -p "$DIR"
started=$(date +%s)

{ nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu,utilization.gpu,memory.used --format=csv
  python3 -c 'import cupy; print("cupy", cupy.__version__); cupy.show_config()'
  echo "CUPY_TF32=${CUPY_TF32:-<unset>}"; } > "$DIR/env.txt" 2>&1
python3 -m opbench backends --format md > "$DIR/backends.md" 2>&1
grep -E '^\| (cupy|cuda) ' "$DIR/backends.md"

timeout 400 python3 -m opbench run --preset "$PRESET" --backends "$BACKENDS" --store "$STORE" --out "$DIR/seed" \
  --format md > "$DIR/seed.txt" 2>&1
echo "seed run rc=$? after $(( $(date +%s) - started )) s"
pairs=""; [[ ",$BACKENDS," == *,cuda,* ]] && pairs="--pairs cupy/cuda"
python3 -m opbench show latest --store "$STORE" $pairs --format md > "$DIR/tables.md" 2>&1
echo "show rc=$?"

if [ "${MODE:-}" = tf32 ]; then
  CUPY_TF32=1 timeout 120 python3 -m opbench run --preset "$PRESET" --backends cupy \
    --ops MatMul,Linear,Conv1d,Conv2d,ScaledDotProductAttention --store "$STORE" --out "$DIR/tf32" \
    --format md > "$DIR/tf32.txt" 2>&1
  echo "tf32 run rc=$?"
fi

# verdicts per backend, from the stored results (what the report will quote)
python3 - "$STORE" <<'EOF' | tee "$DIR/verdicts.txt"
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
for run, backend, status, n in con.execute(
        "SELECT run_id, backend, status, COUNT(*) FROM results GROUP BY run_id, backend, status ORDER BY 1, 2, 3"):
    print(run, backend, status, n)
EOF
echo "total $(( $(date +%s) - started )) s"
tail -25 "$DIR/seed.txt"
tar czf /tmp/cupy.tgz -C "$OUT" cupy && rm -rf "$DIR" && mv /tmp/cupy.tgz "$OUT/" && ls -la "$OUT"
