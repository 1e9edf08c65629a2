#!/usr/bin/env bash
# Regenerate results/comparisons/: this machine's CPU run (A) against published tables (B), as Markdown.
#
#   benchmarks/make_comparisons.sh RUN [OUT_DIR]
#
# RUN is a run directory or run.json from `opbench run --preset seed ...` (the seed's shapes, so that case
# names match the published tables), or a stored run id. OUT_DIR defaults to results/comparisons.
# The published tables are the ones shipped in src/opbench/data/published (override with OPBENCH_PUBLISHED=DIR); OPBENCH picks the
# opbench executable (default: opbench on PATH).
#
# Writes, each with B/A per case and backend, significance where both sides have raw samples (published
# tables have none: their rows read "untested") and geometric means per family, backend and overall:
#   vs-m3-max-seed.md       cpu and mlx_cpu vs the seed article's M3 Max (same backend names)
#   vs-rtx4090-cpu.md       cpu vs the RTX4090 machine's CPU (i9-10940X, torch cpu)
#   vs-rtx4090-cuda.md      cpu vs the RTX4090 itself (torch cuda): --map cpu=cuda
#   README.md               what was compared, and the commands
set -euo pipefail
RUN=${1:?usage: benchmarks/make_comparisons.sh RUN [OUT_DIR]}
OUT=${2:-results/comparisons}
HERE=$(cd "$(dirname "$0")" && pwd)
PUBLISHED=${OPBENCH_PUBLISHED:-$HERE/../src/opbench/data/published}
OPBENCH=${OPBENCH:-opbench}
SEED="$PUBLISHED/seed-m3-max-tables.md"
REF="$PUBLISHED/mlx-benchmark-detailed_benchmark.md"
for f in "$SEED" "$REF"; do
    [ -f "$f" ] || { echo "make_comparisons: missing $f (set OPBENCH_PUBLISHED)" >&2; exit 2; }
done
mkdir -p "$OUT"

compare() {  # compare OUT_NAME B_REF [options...]
    local name=$1 b=$2
    shift 2
    # the published tables time every call with a sync (latency mode): a run in another mode is compared
    # across modes (labelled so in the report); a run measured with --mode latency compares like with like
    "$OPBENCH" compare "$RUN" "$b" --format md --across-modes --out "$OUT/$name" "$@" > /dev/null
    echo "wrote $OUT/$name" >&2
}

compare vs-m3-max-seed.md "$SEED"
compare vs-rtx4090-cpu.md "$REF#RTX4090"
compare vs-rtx4090-cuda.md "$REF#RTX4090" --map cpu=cuda

{
    echo "# Comparisons: this machine's CPU run against published tables"
    echo
    grep -m1 '^- A: ' "$OUT/vs-m3-max-seed.md"
    echo
    echo "B is a published table (one number per cell, no raw samples, not verified here), so every row reads"
    echo "\"untested\": the ratio B/A is shown, but no significance can be claimed. B/A < 1: the published"
    echo "machine is faster."
    echo
    echo "- [vs-m3-max-seed.md](vs-m3-max-seed.md): the seed article's M3 Max (torch \`cpu\`, \`mlx_cpu\`)"
    echo "- [vs-rtx4090-cpu.md](vs-rtx4090-cpu.md): mlx-benchmark's RTX4090 machine, its CPU (torch \`cpu\`)"
    echo "- [vs-rtx4090-cuda.md](vs-rtx4090-cuda.md): this CPU (\`cpu\`) against the RTX4090 (\`cuda\`)"
    echo
    echo "Regenerate with \`benchmarks/make_comparisons.sh RUN_DIR\`; it runs:"
    echo
    echo '```'
    echo "opbench compare RUN src/opbench/data/published/seed-m3-max-tables.md --format md"
    echo "opbench compare RUN 'src/opbench/data/published/mlx-benchmark-detailed_benchmark.md#RTX4090' --format md"
    echo "opbench compare RUN 'src/opbench/data/published/mlx-benchmark-detailed_benchmark.md#RTX4090' --map cpu=cuda --format md"
    echo '```'
} > "$OUT/README.md"
echo "wrote $OUT/README.md" >&2
