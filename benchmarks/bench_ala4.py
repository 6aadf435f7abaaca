"""Alanine tetrapeptide: ns/day unbiased vs 6-D Deep-VES (torch backend, learning on) with the
bias on a slower time step (MTS K = 1, 2, 4, 8), and the accuracy cost of MTS.

Speed: all configurations are built in one process and stepped in interleaved rounds (CPU
platform, 1 thread, synchronous learning — and, "proc", the optimizer in a learner process on
the second core — Monte Carlo target), so that machine load affects them alike; the median over
rounds is reported. Accuracy: NVE (friction 0) energy conservation of the
same RESPA integrator with a bias of realistic size (a random network scaled to a 30 kJ/mol
range over the 6 torsions), K = 1 being plain velocity Verlet.

    python benchmarks/bench_ala4.py --rounds 3 --nve-ps 20
"""

import argparse
import statistics
import time

import numpy as np
import torch


def _unbiased(seed):
    import openmm as mm
    from openmm import app

    from openmm_nnbias.recipes import get_recipe
    from openmm_nnbias.systems import alanine_tetrapeptide

    recipe = get_recipe("alanine-tetrapeptide")
    pep = alanine_tetrapeptide()
    sim = app.Simulation(pep.topology, pep.system, recipe.integrator(seed), mm.Platform.getPlatformByName("CPU"),
                         {"Threads": "1"})
    sim.context.setPositions(pep.positions)
    sim.context.setVelocitiesToTemperature(recipe.temperature, seed)
    return sim, recipe.options["stride"], recipe.timestep


def speed(rounds, ps_per_round, mc_points, learner_cpu=1):
    from openmm_nnbias.runners import build_deepves

    configs = {"unbiased": _unbiased(1)}
    for k in (1, 2, 4, 8):  # the 6-D torch bias alone (no learning): the force's cost per MD step
        sim, up, dt = build_deepves("alanine-tetrapeptide", out=None, backend="torch", mts=k,
                                    overrides=dict(mcPoints=100))
        sim.reporters.clear()
        configs[f"bias-only K={k}"] = (sim, up.stride, dt)
    updaters = {}
    for k in (1, 2, 4, 8):
        sim, up, dt = build_deepves("alanine-tetrapeptide", out=None, backend="torch", mts=k,
                                    overrides=dict(mcPoints=mc_points))
        configs[f"deepves K={k}"] = (sim, up.stride, dt)
        updaters[f"deepves K={k}"] = up
    for k in (1, 2, 4, 8):  # the optimizer in a learner process (mode="process") on the second core, overlapping the MD
        sim, up, dt = build_deepves("alanine-tetrapeptide", out=None, backend="torch", mts=k,
                                    overrides=dict(mcPoints=mc_points, learnerCPUs=[learner_cpu]), mode="process")
        configs[f"deepves K={k} proc"] = (sim, up.stride, dt)
        updaters[f"deepves K={k} proc"] = up
    for sim, stride, _ in configs.values():  # warm-up: one iteration (TorchScript, MC burn-in)
        sim.step(stride)
    rates = {name: [] for name in configs}
    for _ in range(rounds):
        for name, (sim, stride, dt) in configs.items():
            n = max(1, round(ps_per_round / (stride * dt))) * stride
            t0 = time.perf_counter()
            sim.step(n)
            rates[name].append(n * dt * 1e-3 / ((time.perf_counter() - t0) / 86400))
    for up in updaters.values():
        up.close()
    opt_ms = {name: statistics.median(h["t_optimizer_ms"] for h in up.history[1:]) for name, up in updaters.items()}
    return {name: statistics.median(r) for name, r in rates.items()}, rates, opt_ms


def nve_drift(k, nve_ps, seed=0, bias_range=30.0):
    """(σ(E_tot), drift, its standard error) of NVE RESPA with a random 6-D bias scaled to ``bias_range``."""
    import openmm as mm
    from openmm import unit

    from openmm_nnbias.bias import NeuralBias, NeuralBiasForce
    from openmm_nnbias.bias.mts import mts_langevin_integrator
    from openmm_nnbias.recipes import get_recipe
    from openmm_nnbias.systems import alanine_tetrapeptide

    recipe = get_recipe("alanine-tetrapeptide")
    pep = alanine_tetrapeptide()
    cvs = recipe.buildCVs(pep)
    bias = NeuralBias.from_cvs(cvs, hidden=recipe.options["hidden"], seed=seed, zero_output=False)
    probe = (torch.rand(20000, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64) - 0.5) * 2 * np.pi
    with torch.no_grad():
        v = bias(probe.to(bias.layers[0].weight.dtype))
        scale = bias_range / float(v.max() - v.min())
        bias.layers[-1].weight.mul_(scale)
        bias.layers[-1].bias.mul_(scale)
    force = NeuralBiasForce(cvs, bias, backend="torch")
    force.addToSystem(pep.system)
    integ = mts_langevin_integrator(recipe.temperature, 0.0, recipe.timestep, force, k, pep.system)
    ctx = mm.Context(pep.system, integ, mm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    ctx.setPositions(pep.positions)
    ctx.setVelocitiesToTemperature(recipe.temperature, 3)
    integ.step(max(1, 50 // k))  # let the constrained velocities settle
    energies, times = [], []
    n_out = max(1, round(0.02 / (recipe.timestep * k)))  # every 20 fs
    for _ in range(int(nve_ps / 0.02)):
        integ.step(n_out)
        st = ctx.getState(getEnergy=True)
        energies.append((st.getPotentialEnergy() + st.getKineticEnergy()).value_in_unit(unit.kilojoule_per_mole))
        times.append(st.getTime().value_in_unit(unit.picosecond))
    e, t = np.array(energies), np.array(times)
    coef, cov = np.polyfit(t, e, 1, cov=True)
    return float(np.std(e - np.polyval(coef, t))), float(coef[0] * 1000), float(np.sqrt(cov[0, 0]) * 1000)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--ps-per-round", type=float, default=2.0, help="simulated ps per config per round")
    p.add_argument("--mc-points", type=int, default=10000)
    p.add_argument("--nve-ps", type=float, default=20.0, help="NVE ps per K (0: speed only)")
    a = p.parse_args()
    torch.set_num_threads(1)
    med, rates, opt_ms = speed(a.rounds, a.ps_per_round, a.mc_points)
    print(f"# Ala4, CPU platform 1 thread, {a.rounds} interleaved rounds x {a.ps_per_round} ps; "
          f"Deep-VES 6D torch backend, synchronous learning, MC target {a.mc_points} points/iteration")
    for name, r in med.items():
        extra = f"  optimizer {opt_ms[name]:.0f} ms/iteration" if name in opt_ms else ""
        print(f"{name:18s} {r:8.1f} ns/day  {r / med['unbiased']:.3f} of unbiased  (rounds: {', '.join(f'{x:.0f}' for x in rates[name])}){extra}")
    if a.nve_ps <= 0:  # speed only
        print("RESULT ala4 ns/day " + " ".join(f"{n.replace(' ', '_')}={v:.1f}" for n, v in med.items()))
        return
    print(f"# NVE (friction 0) energy conservation over {a.nve_ps} ps, 2 fs inner step, scaled random 6-D bias (30 kJ/mol range)")
    base = nve_drift(1, a.nve_ps, bias_range=0.0)
    print(f"no bias, K=1: sigma(E_tot) {base[0]:.3f} kJ/mol, drift {base[1]:+.2f} +- {base[2]:.2f} kJ/mol/ns")
    drift = {}
    for k in (1, 2, 4, 8):
        drift[k] = nve_drift(k, a.nve_ps)
        print(f"K={k}: sigma(E_tot) {drift[k][0]:.3f} kJ/mol, drift {drift[k][1]:+.2f} +- {drift[k][2]:.2f} kJ/mol/ns "
              "(fit standard error; correlated noise makes it an underestimate)")
    print("RESULT ala4 ns/day " + " ".join(f"{n.replace(' ', '_')}={v:.1f}" for n, v in med.items())
          + " | NVE sigma(E) kJ/mol " + " ".join(f"K{k}={v[0]:.3f}" for k, v in drift.items())
          + " | drift kJ/mol/ns " + " ".join(f"K{k}={v[1]:+.2f}" for k, v in drift.items()))


if __name__ == "__main__":
    main()
