#!/usr/bin/env bash
# Issue 16 on the H200 (`device`): the device output fingerprint (`Backend.output_fingerprint`) on every GPU
# framework: its sums checked against NumPy's over the same bits (float32, float16, bfloat16, int32, bool, 0-d,
# empty; one flipped bit must change it), and its cost against the host path it replaces (device-to-host copy +
# BLAKE2b) on float32 outputs of 32 MiB and 1 GiB (benchmarks/fingerprint_cost.py). One process per backend.
#
#   source .device/mlx-b/install.sh   # optional: MLX CUDA in /tmp/mlx-site (mlx_gpu)
#   OUT=$OUT bash benchmarks/h200_fingerprint.sh     # ~1-2 min (about 20-30 s per backend, mostly imports and
#                                                     # the 1 GiB host copies); writes $OUT/fingerprint/, packs
#                                                     # $OUT/fingerprint.tgz
set -u
: "${OUT:?set OUT to the output directory}"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
[ -d /tmp/mlx-site ] && case ":$PYTHONPATH:" in *:/tmp/mlx-site:*) ;; *) export PYTHONPATH="$PYTHONPATH:/tmp/mlx-site";; esac
BACKENDS=${BACKENDS:-cuda,cupy,jax_gpu,mlx_gpu}
DIR="$OUT/fingerprint"
mkdir -p "$DIR"
{ echo "h200_fingerprint: $(date -u +%FT%TZ) git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  nvidia-smi --query-gpu=name,clocks.sm,temperature.gpu,utilization.gpu,memory.used --format=csv 2>&1; } \
  > "$DIR/summary.txt"
for b in ${BACKENDS//,/ }; do
  start=$(date +%s)
  timeout 150 python benchmarks/fingerprint_cost.py --backends "$b" --json "$DIR/$b.json" > "$DIR/$b.md" 2>"$DIR/$b.err"
  echo "$b rc=$? $(( $(date +%s) - start )) s" | tee -a "$DIR/summary.txt"
  grep '^| ' "$DIR/$b.md" | tail -n +3 | tee -a "$DIR/summary.txt"
done
tar -czf "$OUT/fingerprint.tgz" -C "$OUT" fingerprint && ls -la "$OUT/fingerprint.tgz"
