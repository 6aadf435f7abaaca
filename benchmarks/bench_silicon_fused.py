"""Fused (compiled) vs TorchScript kernels for silicon: SW and the CV per call, and a biased MD step, beside LAMMPS.

Everything runs in this one process on one torch thread, interleaved (A, B, ..., then again), and is
timed in process CPU time (on a shared machine the fair "same core" figure); medians of the repeats.

1. Per call (a loop inside TorchScript, as openmm-torch calls a module; 216 atoms, a liquid-like frame
   and a hot crystal; the Verlet lists stay valid):
   the Stillinger-Weber module (``torch`` vs ``fused``) and the CV's ``value_and_jacobian``
   (:class:`~openmm_nnbias.cvs.EnvironmentSimilarity` vs
   :class:`~openmm_nnbias.cvs.envsim_fused.FusedEnvironmentSimilarity`).
2. Per 2 fs MD step: the ``silicon`` Deep-VES recipe (216 atoms, 1 700 K, Langevin, Monte Carlo
   barostat every 25 steps) as it is (torch SW, TorchScript CV, the bias every 2 steps with
   ``MTSLangevinIntegrator``), with both fused, and both with the bias every step (``--mts 1``:
   ``LangevinMiddleIntegrator``); SW alone (``silicon_npt_context``, torch and fused routes); LAMMPS
   ``pair_style sw`` (NVE, 1 rank). Ratios are CPU time / LAMMPS's; "bias" is the ``--mts 1`` step minus
   the SW-only step of the same route (the same integrator).

    PYTHONPATH=. python benchmarks/bench_silicon_fused.py [--repeats 5] [--steps 200] [--calls 300]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch  # noqa: I001 (before openmm: openmm-torch's kernels need torch's libraries)

torch.set_num_threads(1)

import openmm  # noqa: E402

from openmm_nnbias.cvs import CVSet, EnvironmentSimilarity  # noqa: E402
from openmm_nnbias.cvs.envsim_fused import FusedEnvironmentSimilarity  # noqa: E402
from openmm_nnbias.systems.silicon import (  # noqa: E402
    SW_SILICON, silicon_crystal, stillinger_weber_module, stillinger_weber_system)
from openmm_nnbias.systems.silicon._sw_fused import fused_stillinger_weber_module  # noqa: E402
from openmm_nnbias.systems.silicon.md import silicon_npt_context  # noqa: E402
from openmm_nnbias.systems.silicon.sw_lammps import LammpsStillingerWeber, lammps_failure  # noqa: E402


def _median_table(runners: dict, repeats: int) -> dict:
    """``{name: median CPU µs per unit}`` of ``runners`` ``{name: (fn(), units per call)}``, interleaved."""
    cpu = {k: [] for k in runners}
    for _ in range(repeats):
        for name, (fn, units) in runners.items():
            start = time.process_time()
            fn()
            cpu[name].append((time.process_time() - start) / units * 1e6)
    return {k: float(np.median(v)) for k, v in cpu.items()}


class _SWLoop(torch.nn.Module):
    """``n`` calls of an SW module inside TorchScript (a call from Python adds its own overhead)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, n: int, x: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        acc = torch.zeros((), dtype=torch.float64)
        for _ in range(n):
            energy, forces = self.inner(x, box)
            acc = acc + energy + forces[0, 0]
        return acc


class _CVLoop(torch.nn.Module):
    """``n`` calls of a CV's ``value_and_jacobian`` inside TorchScript."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, n: int, x: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        acc = torch.zeros(1, dtype=torch.float64)
        for _ in range(n):
            value, jacobian = self.inner.value_and_jacobian(x, box)
            acc = acc + value + jacobian[0, 0, 0]
        return acc


def per_call(repeats: int, calls: int) -> None:
    xtal = silicon_crystal(3)
    box = torch.tensor(xtal.box)
    rng = np.random.default_rng(0)
    frames = {"liquid-like": torch.tensor(xtal.positions + rng.normal(0, 0.03, xtal.positions.shape)),
              "hot crystal": torch.tensor(xtal.positions + rng.normal(0, 0.01, xtal.positions.shape))}
    runners = {}
    for tag, x in frames.items():
        loops = {"SW torch": _SWLoop(stillinger_weber_module(216)),
                 "SW fused": _SWLoop(fused_stillinger_weber_module(216, SW_SILICON)),
                 "CV TorchScript": _CVLoop(EnvironmentSimilarity(range(216))),
                 "CV fused": _CVLoop(FusedEnvironmentSimilarity(range(216)))}
        for name, loop in loops.items():
            loop = torch.jit.script(loop)
            with torch.no_grad():
                loop(3, x, box)  # list built, TorchScript warmed up

            def run(loop=loop, x=x):
                with torch.no_grad():
                    loop(calls, x, box)

            runners[f"{name}, {tag}"] = (run, calls)
    cpu = _median_table(runners, repeats)
    print(f"per call inside TorchScript, 216 atoms, CPU µs, median of {repeats} interleaved repeats of {calls} calls")
    for tag in frames:
        sw_t, sw_f = cpu[f"SW torch, {tag}"], cpu[f"SW fused, {tag}"]
        cv_t, cv_f = cpu[f"CV TorchScript, {tag}"], cpu[f"CV fused, {tag}"]
        print(f"  {tag:<12} SW torch {sw_t:6.0f}  fused {sw_f:5.0f} ({sw_t / sw_f:5.1f}x)   "
              f"CV TorchScript {cv_t:6.0f}  fused {cv_f:5.0f} ({cv_t / cv_f:5.1f}x)")


def _fused_recipe(mts: int, seed: int = 1):
    """The ``silicon`` recipe's Simulation as :func:`~openmm_nnbias.runners.build_deepves` builds it, with the
    fused SW module in place of the TorchScript one and the fused CV."""
    from openmm_nnbias.platforms import get_platform
    from openmm_nnbias.runners.deepves import assemble_deepves, mts_strides
    from openmm_nnbias.recipes import get_recipe
    from openmm_nnbias.recipes.silicon import silicon_deepves_system
    from openmm_nnbias.ves import KLThreshold, WellTempered

    recipe = get_recipe("silicon")
    torch.manual_seed(seed)
    built = silicon_deepves_system(3, skin=0.15, seed=seed)
    # the recipe's System with the fused SW route: the same masses, box and barostat
    system = stillinger_weber_system(built.n_atoms, built.box, route="fused", skin=0.15)
    for i in range(built.system.getNumForces()):
        if isinstance(built.system.getForce(i), openmm.MonteCarloBarostat):
            system.addForce(openmm.XmlSerializer.clone(built.system.getForce(i)))
    cvs = CVSet([FusedEnvironmentSimilarity(range(built.n_atoms), lattice=0.5431, sigma=0.04, names="n_diamond")])
    opts = dict(recipe.options)
    opts["stride"], sample_stride = mts_strides(opts["stride"], 10, mts)
    target = WellTempered(recipe.biasFactor, bins=opts.pop("bins"))
    sim, _, _ = assemble_deepves(built.topology, system, built.positions, cvs, temperature=recipe.temperature,
                                 timestep=recipe.timestep, friction=recipe.friction, platform=get_platform("CPU"),
                                 threads=1, seed=seed, target=target, decay=KLThreshold(opts.pop("klThreshold", 0.5)),
                                 sampleStride=sample_stride, options=opts, backend=recipe.backend, mts=mts)
    return sim


def md_steps(repeats: int, steps: int) -> None:
    from openmm_nnbias.runners import build_deepves

    runners = {}
    for mts in (2, 1):
        for name, sim in ((f"recipe silicon, --mts {mts}: SW torch + CV TorchScript", build_deepves("silicon", mts=mts)[0]),
                          (f"recipe silicon, --mts {mts}: SW fused + CV fused", _fused_recipe(mts))):
            sim.reporters.clear()  # MD and the bias force only (no learning)
            sim.step(10)
            runners[name] = ((lambda sim=sim, outer=steps // mts: sim.step(outer)), steps // mts * mts)
    for route in ("torch", "fused"):
        context = silicon_npt_context(route=route, seed=1)
        context.getIntegrator().step(10)
        # the closure keeps the Context alive
        runners[f"SW only, {route} route"] = ((lambda c=context: c.getIntegrator().step(steps)), steps)
    why = lammps_failure()
    if why is None:
        xtal = silicon_crystal(3)
        lmp = LammpsStillingerWeber(xtal.positions, xtal.box)
        lmp.time_md(5)
        runners["LAMMPS pair_style sw (NVE)"] = ((lambda: lmp.time_md(steps)), steps)
    else:
        print(f"LAMMPS not run: {why}")
    cpu = _median_table(runners, repeats)
    ref = cpu.get("LAMMPS pair_style sw (NVE)")
    print(f"per 2 fs MD step, 216 atoms, 1 700 K, CPU µs, median of {repeats} interleaved repeats of {steps} steps")
    print(f"  {'':<56}{'CPU µs':>8}{'/ LAMMPS':>10}")
    for name, value in cpu.items():
        print(f"  {name:<56}{value:>8.0f}" + (f"{value / ref:>10.2f}" if ref else ""))
    for route, cv in (("torch", "CV TorchScript"), ("fused", "CV fused")):
        sw = cpu[f"SW only, {route} route"]
        full = cpu[f"recipe silicon, --mts 1: SW {route} + {cv}"]
        print(f"  bias every step (CV, network, force), {route}: {full - sw:.0f} µs per step ({(full - sw) / sw:.2f} of SW)")
    for name, value in cpu.items():
        if ref and name != "LAMMPS pair_style sw (NVE)":
            print(f"RESULT ratio {name} = {value / ref:.2f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200, help="2 fs MD steps per repeat")
    parser.add_argument("--calls", type=int, default=300, help="module calls per repeat")
    args = parser.parse_args(argv)
    per_call(args.repeats, args.calls)
    md_steps(args.repeats, args.steps)


if __name__ == "__main__":
    main()
