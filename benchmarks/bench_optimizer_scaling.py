"""Cost of one Deep-VES optimizer iteration vs the number of CVs: grid target vs Monte Carlo target.

Run:  python benchmarks/bench_optimizer_scaling.py [--repeats 7] [--samples 500]

One ``DeepVESOptimizer.step`` (Eq. 10 gradient, Adam step, target update or Metropolis draw,
KL monitor, c(t)) for 2, 4 and 6 periodic CVs (torsions over [-π, π)), network [48, 24, 12]
(ReLU, float64; random weights rescaled to std V = 10 kJ/mol), 500 biased samples per iteration, well-tempered target γ = 10, kT at 300 K,
torch on 1 thread, CPU. Median (and min) wall time over ``--repeats`` rounds, all configurations
interleaved in each round, after two warm-up iterations each.

* grid: the paper's 50 bins per CV where affordable; 50^4 = 6.25e6 and 50^6 = 1.6e10 points
  are not (memory of the activations ~ points × 48 × 8 B per layer), so 4 CVs use 20^4 and
  6 CVs 10^6 (20^6 = 6.4e7 points is skipped too, listed with its point count).
* mc: :class:`MonteCarloTarget`, 2000 chains × 10 Metropolis steps = 20 000 samples per
  iteration (``draw`` = time of the Metropolis draw inside the step); 6 CVs also with
  5 000 and 80 000 samples, to show the cost follows the number of samples.

Last line: ``RESULT grid_ms_<n>cv=... mc_ms_<n>cv=... mc6_us_per_sample=...``.
"""

import argparse
import math
import statistics
import time

import torch

from openmm_nnbias._units import KB
from openmm_nnbias.bias import NeuralBias
from openmm_nnbias.ves import CVGrid, DeepVESOptimizer
from openmm_nnbias.ves.montecarlo import MonteCarloTarget

KT = KB * 300.0  # kJ/mol
GRID_BINS = {2: 50, 4: 20, 6: 10}  # bins per CV actually run
SKIPPED = [(4, 50), (6, 50), (6, 20)]  # (CVs, bins) not affordable


def make_bias(n_cv: int, v_std: float = 10.0) -> NeuralBias:
    """Random network rescaled so that V has a standard deviation of ``v_std`` kJ/mol over the box
    (a learned-looking bias: the Metropolis acceptance is then realistic, not 1 as for V = 0)."""
    bias = NeuralBias([True] * n_cv, [-math.pi] * n_cv, [math.pi] * n_cv, hidden=(48, 24, 12), seed=0,
                      zero_output=False)
    points = (torch.rand(10000, n_cv, generator=torch.Generator().manual_seed(1), dtype=torch.float64) - 0.5)
    with torch.no_grad():
        bias.layers[-1].weight.mul_(v_std / float(bias(points * 2 * math.pi).std()))
    return bias


class Timed:
    """One optimizer with its own sample stream; :meth:`step` returns (ms, Metropolis-draw ms)."""

    def __init__(self, opt: DeepVESOptimizer, n_cv: int, n_samples: int, seed: int = 0) -> None:
        self.opt, self.n_cv, self.n_samples = opt, n_cv, n_samples
        self.gen = torch.Generator().manual_seed(seed)
        self.draw_s = 0.0
        if opt.grid is None:
            draw = opt.target.draw

            def timed_draw(bias):
                t0 = time.perf_counter()
                out = draw(bias)
                self.draw_s = time.perf_counter() - t0
                return out

            opt.target.draw = timed_draw
        self.times, self.draws = [], []

    def step(self, record: bool = True) -> None:
        samples = (torch.rand(self.n_samples, self.n_cv, generator=self.gen, dtype=torch.float64) - 0.5) * 2 * math.pi
        t0 = time.perf_counter()
        stats = self.opt.step(samples)
        elapsed = time.perf_counter() - t0
        if record:
            assert stats["updated"] and not stats["skipped"], stats
            self.times.append(1e3 * elapsed)
            self.draws.append(1e3 * self.draw_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (configurations interleaved)")
    parser.add_argument("--samples", type=int, default=500, help="biased samples per iteration")
    args = parser.parse_args()
    torch.set_num_threads(1)
    configs = []  # (n_cv, kind, layout, points, Timed)
    for n_cv in (2, 4, 6):
        bins = GRID_BINS[n_cv]
        grid = CVGrid([-math.pi] * n_cv, [math.pi] * n_cv, [bins] * n_cv, [True] * n_cv)
        opt = DeepVESOptimizer(make_bias(n_cv), grid, KT, target="well-tempered", tauKL=100)
        configs.append((n_cv, "grid", f"{bins}^{n_cv}", grid.n_points, Timed(opt, n_cv, args.samples)))
        for chains in ((500, 2000, 8000) if n_cv == 6 else (2000,)):
            target = MonteCarloTarget.from_bias(make_bias(n_cv), KT, 10.0, chains=chains, steps=10, burnIn=20)
            opt = DeepVESOptimizer(make_bias(n_cv), None, KT, targetSampler=target, tauKL=100)
            configs.append((n_cv, "mc", f"{chains}x10", target.n_samples, Timed(opt, n_cv, args.samples)))
    for *_, timed in configs:  # warm-up: iteration 0 takes no Adam step
        timed.step(record=False)
        timed.step(record=False)
    for _ in range(args.repeats):  # interleaved rounds: slow drifts of the machine load hit all alike
        for *_, timed in configs:
            timed.step()
    print(f"# one optimizer iteration, {args.samples} biased samples, network [48, 24, 12], torch 1 thread, "
          f"{args.repeats} interleaved rounds: median and min")
    print(f"{'CVs':>4} {'target':>6} {'layout':>10} {'points':>12} {'median ms':>10} {'min ms':>9} "
          f"{'draw ms':>8} {'accept':>7}")
    result = {}
    for n_cv, kind, layout, points, t in configs:
        med, low = statistics.median(t.times), min(t.times)
        draw = f"{statistics.median(t.draws):8.1f}" if kind == "mc" else f"{'-':>8}"
        acc = f"{t.opt.target.acceptance_rate:7.3f}" if kind == "mc" else f"{'-':>7}"
        print(f"{n_cv:>4} {kind:>6} {layout:>10} {points:>12d} {med:>10.1f} {low:>9.1f} {draw} {acc}")
        if kind == "grid":
            result[f"grid_ms_{n_cv}cv"] = med
        else:
            result[f"mc_ms_{n_cv}cv" if points == 20000 else f"mc6_ms_{points}"] = med
    for n_cv, bins in SKIPPED:
        print(f"{n_cv:>4} {'grid':>6} {f'{bins}^{n_cv}':>10} {bins ** n_cv:>12.3g}   skipped (too large)")
    slope = (result["mc6_ms_80000"] - result["mc6_ms_5000"]) / 75000 * 1e3
    print("RESULT " + " ".join(f"{k}={v:.1f}" for k, v in result.items()) + f" mc6_us_per_sample={slope:.2f}")


if __name__ == "__main__":
    main()
