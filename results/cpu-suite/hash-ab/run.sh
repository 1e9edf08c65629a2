set -u
for spec in old new new; do
  cd /tmp/wt-$spec
  t0=$(date +%s.%N)
  PYTHONPATH=src /work/venv/bin/python -m opbench run --backends cpu --preset seed --out /tmp/hashab-$spec-$$-$RANDOM --store /tmp/hashab.sqlite --format md > /dev/null 2>> /tmp/hashab.err
  echo "$spec rc $? $(python3 -c "print(round($(date +%s.%N) - $t0,1))") s load $(cut -d' ' -f1 /proc/loadavg)" >> /tmp/hashab.txt
done
