#!/usr/bin/env bash
# usage: i16_cpu_measure.sh before|after subset|seed  -- one `opbench run` per backend, cold caches, command walls
set -u
which=$1 scope=$2
cd /work/wt/i16
. /work/venv/bin/activate
if [ "$which" = before ]; then SRC=/tmp/i16_before/src; else SRC=/tmp/i16_after/src; fi
OPS='Concat,ReLU,Softmax,Sort,Linear / dim=100x1024x256 dim=256x1024 dim=1024,MatMul / dim=64x1000000 dim=1000000x32'
D=/tmp/i16cpu-$which-$scope
rm -rf "$D"; mkdir -p "$D"
export OPBENCH_DATA_DIR=$D/data
echo "$(date -u +%T) $which $scope src=$SRC load $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$D/walls.txt"
t0=$(date +%s.%N)
for b in cpu mlx_cpu jax_cpu; do
  t=$(date +%s.%N)
  if [ "$scope" = subset ]; then
    PYTHONPATH=$SRC python -m opbench run --backends $b --preset seed --ops "$OPS" --store "$D/s.sqlite" --out "$D/$b" --format md > "$D/$b.stdout.md" 2> "$D/$b.stderr.log"
  else
    PYTHONPATH=$SRC python -m opbench run --backends $b --preset seed --store "$D/s.sqlite" --out "$D/$b" --format md > "$D/$b.stdout.md" 2> "$D/$b.stderr.log"
  fi
  rc=$?
  echo "$b rc $rc wall $(python -c "print(round($(date +%s.%N) - $t, 1))") s load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$D/walls.txt"
done
echo "total $(python -c "print(round($(date +%s.%N) - $t0, 1))") s" | tee -a "$D/walls.txt"
