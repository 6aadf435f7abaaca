"""Multiple Deep-VES walkers vs one walker on alanine dipeptide: phi transitions and time to the KL threshold.

Run:  python benchmarks/bench_walkers.py [--walkers 1 2] [--time-ps 2000] [--tau-kl 100] [--stop-at-threshold]

For each walker count N, N processes (spawned, gloo, one CPU thread each, MD seeds 1..N) share
one bias (paper settings: table backend, stride 500, samples every 10 steps, 50x50 grid,
gamma 10, lr 1e-3, KL threshold 0.5), each running ``--time-ps`` of MD (or until the pooled KL
first falls below the threshold with ``--stop-at-threshold``). ``--tau-kl`` shortens the paper's
tau_KL = 10000 iterations so the threshold is reached in minutes. Measured per N:

* transitions: crossings between the phi core sets A (phi < -0.4 or phi > 2.8 rad) and
  B (0.4 < phi < 2.0 rad), summed over walkers, per wall second of MD (build time excluded);
* time to the KL threshold: wall seconds and simulated time (per walker and summed) at the
  first iteration whose phase is no longer "learning";
* ns/day per walker.

Outputs under ``--out`` (default benchmarks/out/walkers/N<k>/, the run files of walker 0 and
colvar.<k>). Last line: ``RESULT`` with one key=value per walker count.
"""

import argparse
import json
import os
import shutil
import time

import numpy as np


def _bench_walker(group, out, steps, tauKL, klThreshold, stride, backend, stop_at_threshold):
    import torch

    from openmm_nnbias.runners import build_deepves

    torch.set_num_threads(1)
    sim, updater, dt = build_deepves("alanine-dipeptide", out=out, backend=backend, threads=1, seed=1,
                                     overrides=dict(tauKL=tauKL, klThreshold=klThreshold, stride=stride),
                                     group=group)
    t0 = time.perf_counter()
    record = []
    while sim.currentStep < steps:
        sim.step(stride)
        h = updater.history[-1]
        record.append((time.perf_counter() - t0, sim.currentStep * dt, h["kl"], h["phase"]))
        if stop_at_threshold and h["phase"] != "learning":
            break
    return {"wall_s": time.perf_counter() - t0, "sim_ps": sim.currentStep * dt, "record": record}


def count_transitions(phi):
    """Transitions between the phi core sets A and B (rad), with the last core visited as memory."""
    a = (phi < -0.4) | (phi > 2.8)
    b = (phi > 0.4) & (phi < 2.0)
    state = np.where(a, 0, np.where(b, 1, -1))
    state = state[state >= 0]
    return int(np.count_nonzero(np.diff(state)))


def run(n, args):
    from openmm_nnbias.ves.walkers import spawn_walkers

    out = os.path.join(args.out, f"N{n}")
    shutil.rmtree(out, ignore_errors=True)
    steps = int(round(args.time_ps / 0.002))
    t0 = time.perf_counter()
    res = spawn_walkers(_bench_walker, n, args=(out, steps, args.tau_kl, args.kl_threshold, args.stride,
                                                args.backend, args.stop_at_threshold))
    total_wall = time.perf_counter() - t0
    transitions = 0
    for k in range(n):
        data = np.loadtxt(os.path.join(out, "colvar" if k == 0 else f"colvar.{k}"))
        transitions += count_transitions(data[:, 1])
    wall = max(r["wall_s"] for r in res)
    sim_ps = res[0]["sim_ps"]
    hit = next((rec for rec in res[0]["record"] if rec[3] != "learning"), None)
    return {
        "walkers": n, "sim_ps_per_walker": sim_ps, "md_wall_s": wall, "total_wall_s": total_wall,
        "ns_day_per_walker": sim_ps * 1e-3 / (wall / 86400), "transitions": transitions,
        "transitions_per_wall_s": transitions / wall,
        "kl_final": res[0]["record"][-1][2],
        "threshold_wall_s": None if hit is None else hit[0],
        "threshold_sim_ps_per_walker": None if hit is None else hit[1],
        "threshold_sim_ps_total": None if hit is None else hit[1] * n,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--walkers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--time-ps", type=float, default=2000.0, help="MD per walker, ps (default 2000)")
    parser.add_argument("--tau-kl", type=float, default=100.0, help="tau_KL in iterations (paper 10000)")
    parser.add_argument("--kl-threshold", type=float, default=0.5)
    parser.add_argument("--stride", type=int, default=500)
    parser.add_argument("--backend", default="table", choices=["table", "cmap", "torch"])
    parser.add_argument("--stop-at-threshold", action="store_true")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out", "walkers"))
    args = parser.parse_args()
    rows = [run(n, args) for n in args.walkers]
    print(f"alanine dipeptide, {args.backend} backend, 1 CPU thread per walker, tau_KL {args.tau_kl:g} it, "
          f"threshold {args.kl_threshold}, {args.time_ps:g} ps per walker")
    for r in rows:
        thr = ("not reached" if r["threshold_wall_s"] is None else
               f"{r['threshold_wall_s']:.1f} s wall, {r['threshold_sim_ps_per_walker']:.0f} ps/walker "
               f"({r['threshold_sim_ps_total']:.0f} ps total)")
        print(f"N={r['walkers']}: {r['ns_day_per_walker']:.1f} ns/day/walker, {r['transitions']} phi transitions "
              f"in {r['md_wall_s']:.1f} s = {r['transitions_per_wall_s']:.3f}/s, final KL {r['kl_final']:.3f}, "
              f"KL threshold: {thr}; total wall incl. start-up {r['total_wall_s']:.1f} s")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "bench_walkers.json"), "w") as fh:
        json.dump({"args": vars(args), "rows": rows}, fh, indent=1)
    print("RESULT " + " ".join(f"N{r['walkers']}_transitions_per_s={r['transitions_per_wall_s']:.3f} "
                               f"N{r['walkers']}_threshold_wall_s={r['threshold_wall_s']}" for r in rows))


if __name__ == "__main__":
    main()
