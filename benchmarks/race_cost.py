"""CPU cost of Deep-VES race variants on alanine dipeptide, interleaved in one process with unbiased MD.

    python benchmarks/race_cost.py [VARIANT ...]      # default: paper and "" (the CLI default)

Each variant's race runner (``race_methods.DeepVESRunner``, seed 1001, output in a temporary folder) and an
unbiased MD of the same system step in 4 interleaved rounds of 50 ps; printed: CPU seconds per simulated ns of
each round, their median and the ratio of the unbiased median to it (the race's speed ratio).
"""
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import race_methods  # noqa: E402

variants = sys.argv[1:] or ["paper", ""]
tmp = tempfile.mkdtemp()
runners = {v or "default": race_methods.DeepVESRunner(1001, os.path.join(tmp, v or "default"), v) for v in variants}
unbiased = race_methods.Unbiased()
for runner in runners.values():
    runner.step(5000)  # warm-up
res = {k: [] for k in runners}
res["unbiased"] = []
for _ in range(4):
    for k, runner in runners.items():
        c = time.process_time()
        runner.step(25000)  # 50 ps
        res[k].append((time.process_time() - c) / 0.05)  # CPU s per simulated ns
    res["unbiased"].append(unbiased.cpu_per_ns(10000))
for k, v in res.items():
    print(f"{k:10s} CPU s/ns {[round(x, 1) for x in v]} median {statistics.median(v):.1f} "
          f"ratio {statistics.median(res['unbiased']) / statistics.median(v):.3f}")
