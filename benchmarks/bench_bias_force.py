"""Speed of the bias force backends (torch, table, cmap) and of pushing new weights, alanine dipeptide, CPU, 1 thread.

Run:  python benchmarks/bench_bias_force.py [--steps 2000] [--rounds 3]

All configurations are measured side by side in one run, interleaved over rounds (the median
per configuration is reported), so the ratios are meaningful on a noisy shared machine.
The last line reads
``RESULT push_ms_torch=<x> push_ms_table=<x> speed_ratio_torch=<r> speed_ratio_table=<r>``.
"""

import argparse
import copy
import statistics
import time

import torch  # noqa: F401  (before openmmtorch)
import openmm as mm
from openmm import unit

from openmm_nnbias.bias import NeuralBias, NeuralBiasForce
from openmm_nnbias.recipes import get_recipe
from openmm_nnbias.systems import alanine_dipeptide

RECIPE = get_recipe("alanine-dipeptide")  # 300 K, 2 fs, 1/ps, phi/psi
DT_PS = RECIPE.timestep


class ConstantEnergy(torch.nn.Module):
    """The floor of the TorchForce mechanism: a module that returns a constant."""

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return positions[0, 0] * 0.0


class ConstantEnergyForces(torch.nn.Module):
    """The same floor when the module returns its own forces (no backward pass)."""

    def forward(self, positions: torch.Tensor):
        return positions[0, 0] * 0.0, torch.zeros_like(positions)


def make_context(pep, extra_force=None):
    system = copy.deepcopy(pep.system)
    if extra_force is not None:
        extra_force(system)
    integ = RECIPE.integrator(seed=1)
    platform = mm.Platform.getPlatformByName("CPU")
    ctx = mm.Context(system, integ, platform, {"Threads": "1"})
    ctx.setPositions(pep.positions)
    ctx.setVelocitiesToTemperature(RECIPE.temperature * unit.kelvin, 1)
    integ.step(50)  # warm up (TorchScript profiling runs, first allocations)
    return ctx, system


def us_per_step(ctx, steps):
    integ = ctx.getIntegrator()
    t0 = time.perf_counter()
    integ.step(steps)
    ctx.getState(getEnergy=True)
    return (time.perf_counter() - t0) / steps * 1e6


def time_call(fn, n):
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    pep = alanine_dipeptide()
    cvs = RECIPE.buildCVs(pep)
    bias = NeuralBias.from_cvs(cvs, seed=0, zero_output=False)
    print(f"alanine dipeptide, CPU platform, 1 thread, 2 fs; network {bias.hidden} "
          f"({bias.n_parameters} parameters); {args.steps} steps x {args.rounds} rounds")

    forces = {"torch": NeuralBiasForce(cvs, bias, backend="torch"),
              "table": NeuralBiasForce(cvs, bias, backend="table"),
              "cmap": NeuralBiasForce(cvs, bias, backend="cmap")}

    def add_constant(system):
        from openmmtorch import TorchForce

        system.addForce(TorchForce(torch.jit.script(ConstantEnergy())))

    def add_constant_forces(system):
        from openmmtorch import TorchForce

        force = TorchForce(torch.jit.script(ConstantEnergyForces()))
        force.setOutputsForces(True)
        system.addForce(force)

    contexts = {
        "unbiased": make_context(pep)[0],
        "torch_const": make_context(pep, add_constant)[0],
        "torch_const_f": make_context(pep, add_constant_forces)[0],
        "torch": make_context(pep, forces["torch"].addToSystem)[0],
        "table": make_context(pep, forces["table"].addToSystem)[0],
        "cmap": make_context(pep, forces["cmap"].addToSystem)[0],
    }
    timings = {k: [] for k in contexts}
    for _ in range(args.rounds):
        for name, ctx in contexts.items():
            timings[name].append(us_per_step(ctx, args.steps))
    us = {k: statistics.median(v) for k, v in timings.items()}
    ns_day = {k: DT_PS * 1e-3 / (v * 1e-6) * 86400 for k, v in us.items()}
    for k in contexts:
        print(f"{k:12s} {us[k]:8.1f} us/step  {ns_day[k]:8.1f} ns/day  ratio {us['unbiased'] / us[k]:.3f}")
    print(f"TorchForce floor (constant module): {us['torch_const'] - us['unbiased']:.1f} us/step with "
          f"autograd forces, {us['torch_const_f'] - us['unbiased']:.1f} us/step returning forces; "
          f"network bias (returns forces): {us['torch'] - us['unbiased']:.1f} us/step")

    def perturb():
        with torch.no_grad():
            bias.layers[-1].bias.add_(1e-3)

    push = {}
    push["torch"] = time_call(lambda: (perturb(), forces["torch"].updateWeights(contexts["torch"])), 200)
    push["table"] = time_call(lambda: (perturb(), forces["table"].updateWeights(contexts["table"])), 10)
    push["cmap"] = time_call(lambda: (perturb(), forces["cmap"].updateWeights(contexts["cmap"])), 10)

    # naive route: remove the force, add a fresh TorchForce with embedded weights, reinitialize
    from openmm_nnbias.bias import BiasEnergy
    from openmmtorch import TorchForce

    ctx, system = make_context(pep, forces["torch"].__class__(cvs, bias).addToSystem)
    index = system.getNumForces() - 1

    def naive():
        perturb()
        system.removeForce(index)
        system.addForce(TorchForce(torch.jit.script(BiasEnergy(cvs, bias))))
        ctx.reinitialize(preserveState=True)
        ctx.getState(getEnergy=True)

    push["naive"] = time_call(naive, 5)
    for k, v in push.items():
        print(f"push {k:6s} {v:8.3f} ms")
    print(f"CMAP backend: push_ms_cmap={push['cmap']:.3f} speed_ratio_cmap={us['unbiased'] / us['cmap']:.3f}")
    print(f"RESULT push_ms_torch={push['torch']:.3f} push_ms_table={push['table']:.3f} "
          f"speed_ratio_torch={us['unbiased'] / us['torch']:.3f} "
          f"speed_ratio_table={us['unbiased'] / us['table']:.3f}")


if __name__ == "__main__":
    main()
