#!/usr/bin/env bash
# The H100 evidence of issue 8, as it was produced on the `device` machine (NVIDIA H100 80GB, torch 2.11+cu130,
# JAX 0.11 with CUDA, MLX 0.32.4 CUDA staged with ../shared/device/stage-mlx-cuda.sh). Run from the repo root
# on that machine; everything lands under $OUT.
#
#   bash benchmarks/h100.sh fidelity        # benchmarks/fidelity.py on cuda (every seed case)       ~3 min
#   bash benchmarks/h100.sh stability       # benchmarks/stability.py: cuda (all, both schemes), cpu subset ~6 min
#   bash benchmarks/h100.sh dtypes          # issue 5: dtype matrix + matmul precision study, cuda/mlx_gpu/jax_gpu ~5 min
#   bash benchmarks/h100.sh calibrate BACKENDS  # issue 6: ceilings, merged into /tmp/opbench-data (+ $OUT copy)
#   bash benchmarks/h100.sh sweeps          # issue 6: matmul 512..8192 and softmax sweeps against the calibration
#   bash benchmarks/h100.sh probe           # the fidelity miss: kernels per timing method + fidelity of Linear
#   bash benchmarks/h100.sh engine SRC NAME [SECONDS [BACKENDS]]  # the seed preset (OPS= limits the families) on cuda,cpu with the opbench source tree SRC (e.g. an
#                                           # older commit's `git archive` in .device/old/src), into $OUT/NAME
#   bash benchmarks/h100.sh pack NAME       # tar $OUT into $OUT/NAME.tgz (a call brings back at most 8 files)
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
# the calibration lives outside $OUT (emptied before every call); .device/cal carries it to a fresh machine
export OPBENCH_DATA_DIR=/tmp/opbench-data
[ -d "$OPBENCH_DATA_DIR" ] || { [ -d .device/cal ] && mkdir -p /tmp && cp -r .device/cal "$OPBENCH_DATA_DIR"; }
CAL_FILE=$OPBENCH_DATA_DIR/h100.json
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
  dtypes)
    mkdir -p "$OUT/dtypes-h100"
    timeout "${2:-420}" python3 -m opbench dtypes --backends mlx_gpu,cuda,jax_gpu --preset quick \
      --matmul-size 4096 --matmul-budget 0.5 --out "$OUT/dtypes-h100" --store "$OUT/dtypes-h100/store.sqlite" \
      --format md > "$OUT/dtypes-h100/h100.txt" 2>&1
    echo "dtypes rc=$?"; tail -5 "$OUT/dtypes-h100/h100.txt" ;;
  calibrate)
    mkdir -p "$OPBENCH_DATA_DIR"
    # a carried calibration becomes this machine's stored one, so new backends merge into it
    [ -f "$CAL_FILE" ] && python3 -c 'import shutil, sys; from opbench import machine
from opbench.studies.calibrate import calibration_path; p = calibration_path(machine.collect())
p.exists() or (p.parent.mkdir(parents=True, exist_ok=True), shutil.copy(sys.argv[1], p))' "$CAL_FILE"
    timeout 300 python3 -m opbench calibrate --backends "$2" --budget 0.5 --out "$CAL_FILE" --format md \
      >> "$OUT/calibration.md" 2>&1
    echo "calibrate $2 rc=$?"
    if [[ ",$2," == *,mlx_gpu,* ]]; then  # MLX reads MLX_ENABLE_TF32 once per process: its strict float32 peak
      MLX_ENABLE_TF32=0 timeout 120 python3 -m opbench calibrate --backends mlx_gpu --budget 0.5 --out "$CAL_FILE" --format md \
        >> "$OUT/calibration.md" 2>&1
      echo "calibrate mlx_gpu strict rc=$?"
    fi
    cp "$CAL_FILE" "$OUT/calibration-h100.json"; tail -40 "$OUT/calibration.md" ;;
  sweeps)
    timeout "${2:-330}" python3 -m opbench sweep matmul --sizes 512:8192:512 \
      --backends cpu,cuda,cuda_compile,mlx_gpu,mlx_gpu_compile,jax_gpu --baseline cpu --budget 5 \
      --calibration "$CAL_FILE" --out "$OUT/sweep-h100-matmul" --format md > "$OUT/sweep-matmul.txt" 2>&1
    echo "matmul sweep rc=$?"
    timeout "${3:-150}" python3 -m opbench sweep softmax --sizes 16:256:16 --backends cpu,cuda,mlx_gpu,jax_gpu \
      --baseline cpu --budget 2 --calibration "$CAL_FILE" --out "$OUT/sweep-h100-softmax" --format md \
      > "$OUT/sweep-softmax.txt" 2>&1
    echo "softmax sweep rc=$?"; tail -25 "$OUT/sweep-matmul.txt" ;;
  probe)
    timeout 120 python3 benchmarks/kernel_probe.py --ops "Linear / dim=100x1x51200 dim=51200x1 dim=1,MatMul / dim=64x1000000 dim=1000000x32" \
      --json "$OUT/kernel-probe.json" > "$OUT/kernel-probe.log" 2>&1
    echo "probe rc=$?"
    timeout 150 python3 benchmarks/fidelity.py --backend cuda --ops Linear,MatMul --json "$OUT/fidelity-linear.json" \
      > "$OUT/fidelity-linear.log" 2>&1
    echo "fidelity rc=$?"; cat "$OUT/kernel-probe.log"; tail -12 "$OUT/fidelity-linear.log" ;;
  engine)  # reproducibility: the same machine lease, the current and an older engine, one after another
    PYTHONPATH="$2:/tmp/mlx-site" timeout "${4:-280}" python3 -m opbench run --preset seed --backends "${5:-cuda,cpu}" \
      ${OPS:+--ops "$OPS"} --store "/tmp/$3.sqlite" --out "$OUT/$3" --format md > "$OUT/$3.txt" 2>&1
    echo "engine $2 -> $3 rc=$?"; tail -3 "$OUT/$3.txt" ;;
  pack)  # everything under $OUT into one archive ($OUT returns at most 8 files)
    tar czf "/tmp/$2.tgz" -C "$OUT" . && rm -rf "${OUT:?}"/* && mv "/tmp/$2.tgz" "$OUT/" && ls -la "$OUT" ;;
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
        ${PROCESSES:+--processes "$PROCESSES"} --out "$OUT/h100-seed" --format md > "$OUT/seed.txt" 2>&1
    fi
    echo "opbench rc=$?"
    kill "$watcher"
    cp "$STORE" /tmp/progress.log "$OUT/"
    tail -3 /tmp/progress.log; tail -15 "$OUT/seed.txt" ;;
  *) echo "usage: bash benchmarks/h100.sh fidelity|stability|dtypes|calibrate|sweeps|probe|seed|engine|pack [ARGS]" >&2; exit 2 ;;
esac
