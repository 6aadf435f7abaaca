#!/bin/bash
# The Deep-VES floor benchmark of two checkouts, alternating round by round (same machine state for both):
#   OLD=/path/to/checkout-of-50355b7 NEW=. ROUNDS=4 REPEATS=100 bash benchmarks/bench_old_vs_new.sh
# Each round runs `bench_deepves_floor.py --only proc_s100_p16 --pin` in OLD, then in NEW, with PYTHONPATH set
# to that checkout so that each imports its own package.
set -u
OLD=${OLD:?checkout of the old commit}
NEW=$(cd "${NEW:-.}" && pwd)
for i in $(seq 1 "${ROUNDS:-4}"); do
  for d in "$OLD" "$NEW"; do
    echo "== $d round $i $(date +%T) load $(cut -d' ' -f1 /proc/loadavg)"
    (cd "$d" && PYTHONPATH="$d" python -W ignore benchmarks/bench_deepves_floor.py --only proc_s100_p16 \
        --repeats "${REPEATS:-100}" --pin 2>&1 | grep -E "RESULT|unbiased|proc_s100")
  done
done
