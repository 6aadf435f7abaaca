"""Cost of one torsion-bias evaluation: the TorchScript ``LiveBiasEnergy`` vs the compiled
``FusedLiveBiasEnergy`` (one C++ operator), and biased vs unbiased MD of the alanine tetrapeptide.

1. Per evaluation (process CPU µs of ``module(positions)``, what openmm-torch calls, positions with
   ``requires_grad=True`` as openmm-torch hands them): the 6-torsion tetrapeptide network
   [96, 48, 24] and the 2-torsion dipeptide network [48, 24, 12], both float64 ReLU with random
   weights reading the same shared buffer. The modules alternate in every round; the median over
   rounds is reported, and the median of the per-round ratio.
2. MD (``--md-steps`` > 0): steps/s of the tetrapeptide (CPU platform, 1 thread, Langevin 2 fs,
   HBonds) unbiased, with the TorchScript bias and with the fused bias (bias every step), built in
   this process and stepped in interleaved rounds (process CPU time per step).

    python benchmarks/bench_bias_fused_torsions.py [--rounds 7] [--calls 500] [--md-steps 1000]
"""

import argparse
import copy
import statistics
import time

import numpy as np
import torch


def _bias(cvs, hidden, seed=1):
    from openmm_nnbias.bias import NeuralBias

    bias = NeuralBias.from_cvs(cvs, hidden=hidden, seed=seed, zero_output=False)
    with torch.no_grad():
        for q in bias.parameters():
            q.add_(0.3 * torch.randn_like(q))
    return bias


def _modules(cvs, bias):
    """(shared weights, {"torchscript": LiveBiasEnergy, "fused": FusedLiveBiasEnergy}), scripted."""
    from openmm_nnbias.bias import SharedWeights
    from openmm_nnbias.bias.fused_torsions import FusedLiveBiasEnergy
    from openmm_nnbias.bias.modules import LiveBiasEnergy

    weights = SharedWeights(bias.n_parameters)
    weights.write_parameters(bias)
    return weights, {name: torch.jit.script(cls(cvs, bias, weights.path, weights.header))
                     for name, cls in (("torchscript", LiveBiasEnergy), ("fused", FusedLiveBiasEnergy))}


def per_evaluation(pep, names, hidden, rounds, calls):
    """{module: [µs per call of each round]} and the largest relative difference of energy / forces."""
    from openmm import unit

    from openmm_nnbias.cvs import CVSet, Torsion

    cvs = CVSet([Torsion(pep.torsions[n], n) for n in names])
    _, modules = _modules(cvs, _bias(cvs, hidden))
    x = torch.tensor(pep.positions.value_in_unit(unit.nanometer), dtype=torch.float64)
    x = (x + 0.03 * torch.randn_like(x)).requires_grad_(True)
    (e1, f1), (e2, f2) = (m(x) for m in modules.values())
    diff = max(abs(float(e1 - e2)) / abs(float(e1)), float((f1 - f2).abs().max() / f1.abs().max()))
    for m in modules.values():  # warm-up (TorchScript profiling runs, first mapping of the weights)
        for _ in range(50):
            m(x)
    times = {name: [] for name in modules}
    for _ in range(rounds):
        for name, m in modules.items():
            t0 = time.process_time()
            for _ in range(calls):
                m(x)
            times[name].append((time.process_time() - t0) / calls * 1e6)
    return times, diff


def md_rates(pep, rounds, steps):
    """{configuration: [steps/s of each round]} of the tetrapeptide, unbiased and with both biases."""
    import openmm as mm
    from openmm import unit

    from openmm_nnbias.bias.plugins import import_torch_force
    from openmm_nnbias.cvs import CVSet, Torsion

    cvs = CVSet([Torsion(pep.torsions[n], n) for n in ("phi1", "psi1", "phi2", "psi2", "phi3", "psi3")])
    weights, modules = _modules(cvs, _bias(cvs, (96, 48, 24)))
    TorchForce = import_torch_force()
    contexts = {}
    for name in ("unbiased", "torchscript", "fused"):
        system = copy.deepcopy(pep.system)
        if name != "unbiased":
            force = TorchForce(modules[name])
            force.setOutputsForces(True)
            system.addForce(force)
        integrator = mm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.002 * unit.picoseconds)
        integrator.setRandomNumberSeed(1)
        ctx = mm.Context(system, integrator, mm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
        ctx.setPositions(pep.positions)
        ctx.setVelocitiesToTemperature(300 * unit.kelvin, 1)
        integrator.step(100)  # warm-up
        contexts[name] = (ctx, integrator)
    rates = {name: [] for name in contexts}
    for _ in range(rounds):
        for name, (ctx, integrator) in contexts.items():
            t0 = time.process_time()
            integrator.step(steps)
            rates[name].append(steps / (time.process_time() - t0))
    del weights
    return rates


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds (median reported)")
    p.add_argument("--calls", type=int, default=500, help="module calls per round")
    p.add_argument("--md-steps", type=int, default=1000, help="MD steps per round and configuration (0: no MD)")
    p.add_argument("--md-rounds", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(1)
    from openmm_nnbias._ext import load_ops
    from openmm_nnbias.systems import alanine_dipeptide, alanine_tetrapeptide

    load_ops()
    torch.manual_seed(0)
    ala4, ala2 = alanine_tetrapeptide(), alanine_dipeptide()
    print(f"per evaluation: process CPU us of module(positions), median of {a.rounds} rounds x {a.calls} calls")
    print(f"{'network':34s} {'TorchScript':>12s} {'fused':>9s} {'ratio':>7s} {'max rel diff':>13s}")
    cases = (("ala4 6 torsions [96, 48, 24]", ala4, ("phi1", "psi1", "phi2", "psi2", "phi3", "psi3"), (96, 48, 24)),
             ("ala2 2 torsions [48, 24, 12]", ala2, ("phi", "psi"), (48, 24, 12)))
    for label, pep, names, hidden in cases:
        times, diff = per_evaluation(pep, names, hidden, a.rounds, a.calls)
        ts, fu = statistics.median(times["torchscript"]), statistics.median(times["fused"])
        ratio = statistics.median(np.array(times["torchscript"]) / np.array(times["fused"]))
        print(f"{label:34s} {ts:10.1f}us {fu:7.1f}us {ratio:6.1f}x {diff:13.1e}")
        print(f"RESULT bias_eval_us {label.split()[0]} torchscript={ts:.1f} fused={fu:.1f} speedup={ratio:.2f}")
    if a.md_steps > 0:
        rates = md_rates(ala4, a.md_rounds, a.md_steps)
        med = {k: statistics.median(v) for k, v in rates.items()}
        print(f"\nala4 MD, CPU platform 1 thread, 2 fs, bias every step: steps/s (process CPU time), "
              f"median of {a.md_rounds} rounds x {a.md_steps} steps")
        for k, v in med.items():
            print(f"{k:12s} {v:9.0f} steps/s  {v / med['unbiased']:.3f} of unbiased")
        print(f"RESULT ala4_md_steps_per_s unbiased={med['unbiased']:.0f} torchscript={med['torchscript']:.0f} "
              f"fused={med['fused']:.0f} fused/torchscript={med['fused'] / med['torchscript']:.2f}")


if __name__ == "__main__":
    main()
