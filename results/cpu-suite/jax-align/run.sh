set -u
for spec in old new new; do
  cd /tmp/wt-$spec
  t0=$(date +%s.%N)
  out=/tmp/jaxab/$spec-$(date +%H%M%S)
  PYTHONPATH=src /work/venv/bin/python -m opbench run --backends jax_cpu --preset seed --out $out --store /tmp/jaxab/store.sqlite --format md > /dev/null 2>> /tmp/jaxab/err
  echo "$spec rc $? $(python3 -c "print(round($(date +%s.%N) - $t0,1))") s load $(cut -d' ' -f1 /proc/loadavg) $out" >> /tmp/jaxab/walls.txt
done
