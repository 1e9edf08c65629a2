#!/usr/bin/env bash
# The H100 evidence of issue 8, as it was produced on the `device` machine (NVIDIA H100 80GB, torch 2.11+cu130,
# JAX 0.11 with CUDA, MLX 0.32.4 CUDA staged with ../shared/device/stage-mlx-cuda.sh). Run from the repo root
# on that machine; everything lands under $OUT.
#
#   bash benchmarks/h100.sh fidelity        # benchmarks/fidelity.py on cuda (every seed case)       ~3 min
#   bash benchmarks/h100.sh stability       # benchmarks/stability.py: cuda (all, both schemes), cpu subset ~6 min
#   bash benchmarks/h100.sh seed [SECONDS [BACKENDS]]  # the seed preset on every backend, one stored run; call again to
#                                           # resume where a call was cut off (the store is kept in /tmp and
#                                           # copied to $OUT; put it in .device/store/ to carry it to a fresh machine);
#                                           # BACKENDS limits a resumed call to those backends
#
# `seed` logs, every 5 s, how many results each backend has (progress.log): the suite's wall time per backend is
# the time between a backend's first and last result there.
set -u
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
[ -d /tmp/mlx-site ] && case ":$PYTHONPATH:" in *:/tmp/mlx-site:*) ;; *) export PYTHONPATH="$PYTHONPATH:/tmp/mlx-site";; esac
STORE=/tmp/h100.sqlite
BACKENDS=${BACKENDS:-cpu,cuda,cuda_compile,mlx_gpu,mlx_gpu_compile,mlx_cpu,jax_gpu,jax_cpu}

PROGRESS='import sqlite3, sys, time
while True:  # one line per 5 s: epoch seconds and result counts per backend
    try:
        con = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=1)
        rows = con.execute("SELECT backend, COUNT(*) FROM results GROUP BY backend").fetchall()
        con.close()
        print(int(time.time()), " ".join(f"{b}={n}" for b, n in rows), flush=True)
    except Exception as exc:
        print(int(time.time()), "waiting:", exc, flush=True)
    time.sleep(5)'

case "${1:-}" in
  fidelity)
    timeout "${2:-330}" python3 benchmarks/fidelity.py --backend cuda --json "$OUT/fidelity-cuda.json" \
      > "$OUT/fidelity-cuda.log" 2>&1
    tail -30 "$OUT/fidelity-cuda.log" ;;
  stability)
    timeout 300 python3 benchmarks/stability.py --backend cuda --json "$OUT/stability-cuda.json" \
      > "$OUT/stability-cuda.log" 2>&1
    timeout 240 python3 benchmarks/stability.py --backend cpu --every 3 --schemes opbench \
      --json "$OUT/stability-cpu.json" > "$OUT/stability-cpu.log" 2>&1
    tail -5 "$OUT/stability-cuda.log" "$OUT/stability-cpu.log" ;;
  seed)
    [ -f "$STORE" ] || { [ -f .device/store/h100.sqlite ] && cp .device/store/h100.sqlite "$STORE"; }
    [ -f /tmp/progress.log ] || { [ -f .device/store/progress.log ] && cp .device/store/progress.log /tmp/; }
    nvidia-smi --query-gpu=name,clocks.sm,temperature.gpu,memory.used --format=csv,noheader
    python3 -m opbench backends --format md > "$OUT/backends.md" 2>&1
    python3 -c "$PROGRESS" "$STORE" >> /tmp/progress.log & watcher=$!
    if [ -f "$STORE" ]; then
      timeout "${2:-540}" python3 -m opbench run --resume latest --store "$STORE" --out "$OUT/h100-seed" \
        ${3:+--backends "$3"} --format md >> "$OUT/seed.txt" 2>&1
    else
      timeout "${2:-540}" python3 -m opbench run --preset seed --backends "$BACKENDS" --store "$STORE" \
        --out "$OUT/h100-seed" --format md > "$OUT/seed.txt" 2>&1
    fi
    echo "opbench rc=$?"
    kill "$watcher"
    cp "$STORE" /tmp/progress.log "$OUT/"
    tail -3 /tmp/progress.log; tail -15 "$OUT/seed.txt" ;;
  *) echo "usage: bash benchmarks/h100.sh fidelity|stability|seed [SECONDS]" >&2; exit 2 ;;
esac
