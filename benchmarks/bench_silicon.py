"""Stillinger-Weber silicon (216 atoms, 1 700 K, 2 fs, NVE): every OpenMM route beside LAMMPS.

All routes (the compiled ``fused`` one too, where a C++ compiler exists) and LAMMPS's
``pair_style sw`` run in this one process, interleaved (route A, B, ..., LAMMPS, then again), on
the CPU platform. Both wall time and process CPU time are reported per step: on a shared machine the wall time includes waiting for a core, and CPU time is the fairer
"same core" figure (it is wall time for one thread on an idle core). Ratios are route / LAMMPS.

    PYTHONPATH=. python benchmarks/bench_silicon.py [--repeats 5] [--steps 200]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch  # noqa: I001 (before openmm: openmm-torch's kernels need torch's libraries)
import openmm

from openmm_nnbias._ext import compiler_missing
from openmm_nnbias.systems.silicon import SW_ROUTES, silicon_crystal, stillinger_weber_system, virial_pressure
from openmm_nnbias.systems.silicon.sw_lammps import LammpsStillingerWeber, lammps_failure, reference_frames

TEMPERATURE = 1700.0  # K
TIMESTEP = 0.002  # ps


def _openmm_runner(route: str, threads: int, xtal, seed: int):
    system = stillinger_weber_system(xtal.n_atoms, xtal.box, route=route)
    integrator = openmm.VerletIntegrator(TIMESTEP)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"),
                             {"Threads": str(threads)})
    context.setPositions(xtal.positions)
    context.setVelocitiesToTemperature(TEMPERATURE, seed)
    integrator.step(5)  # TorchScript warm-up, neighbour lists

    def run(steps: int) -> tuple[float, float]:
        torch.set_num_threads(threads)
        wall, cpu = time.perf_counter(), time.process_time()
        context.getIntegrator().step(steps)  # the closure keeps the Context alive
        return time.perf_counter() - wall, time.process_time() - cpu

    return run


def _lammps_runner(xtal, seed: int):
    lmp = LammpsStillingerWeber(xtal.positions, xtal.box)
    lmp.time_md(5, TEMPERATURE, TIMESTEP, seed)

    def run(steps: int) -> tuple[float, float]:
        torch.set_num_threads(1)
        cpu = time.process_time()
        wall = lmp.time_md(steps, TEMPERATURE, TIMESTEP, seed) * steps
        return wall, time.process_time() - cpu

    return run


def agreement(route: str = "torch") -> None:
    """Relative differences from LAMMPS on the reference frames (Reference platform, float64)."""
    print(f"route {route!r} vs LAMMPS pair_style sw: dE = |dE|/|E|, dF = max|dF| / max(max|F|, "
          "1 kJ/mol/nm), dP = max|dP_aa| / max|P_aa| (P: virial, ours by finite differences)")
    for name, (positions, box) in reference_frames().items():
        system = stillinger_weber_system(len(positions), box, route=route)
        context = openmm.Context(system, openmm.VerletIntegrator(0.001),
                                 openmm.Platform.getPlatformByName("Reference"))
        context.setPeriodicBoxVectors(*[openmm.Vec3(*row) for row in box])
        context.setPositions(positions)
        state = context.getState(getEnergy=True, getForces=True)
        energy = state.getPotentialEnergy()._value
        forces = state.getForces(asNumpy=True)._value
        pressure = virial_pressure(context)
        lmp = LammpsStillingerWeber(positions, box)
        de = abs(energy - lmp.energy()) / abs(lmp.energy())
        df = np.max(np.abs(forces - lmp.forces())) / max(np.max(np.abs(lmp.forces())), 1.0)
        dp = np.max(np.abs(pressure - lmp.pressure()[:3])) / np.max(np.abs(lmp.pressure()[:3]))
        print(f"  {name:<12} E={lmp.energy() / len(positions) / 96.48533212:9.5f} eV/atom  "
              f"max|F|={np.max(np.abs(forces)):8.1e} kJ/mol/nm  dE={de:.1e}  dF={df:.1e}  "
              f"P_xx={lmp.pressure()[0]:10.1f} bar  dP={dp:.1e}")
        lmp.close()


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200, help="MD steps per repeat (fast routes)")
    parser.add_argument("--custom-steps", type=int, default=10, help="MD steps per repeat, custom route")
    args = parser.parse_args(argv)
    xtal = silicon_crystal(3)
    runners = {}
    no_compiler = compiler_missing()
    if no_compiler is not None:
        print(f"route 'fused' not run: {no_compiler}")
    for route in SW_ROUTES:
        if route == "fused" and no_compiler is not None:
            continue
        # 2 threads only for the custom route: torch's ops on ~10^3 pairs do not split
        for threads in ((1, 2) if route == "custom" else (1,)):
            runners[f"{route}/{threads}t"] = (_openmm_runner(route, threads, xtal, 7),
                                             args.custom_steps if route == "custom" else args.steps)
    why = lammps_failure()
    if why is None:
        agreement()
        if no_compiler is None:
            agreement("fused")
        runners["lammps/1rank"] = (_lammps_runner(xtal, 7), args.steps)
    else:
        print(f"LAMMPS not run: {why}")
    walls = {k: [] for k in runners}
    cpus = {k: [] for k in runners}
    for _ in range(args.repeats):
        for name, (run, steps) in runners.items():
            wall, cpu = run(steps)
            walls[name].append(wall / steps * 1e6)
            cpus[name].append(cpu / steps * 1e6)
    wall = {k: float(np.median(v)) for k, v in walls.items()}
    cpu = {k: float(np.median(v)) for k, v in cpus.items()}
    ref = "lammps/1rank" if "lammps/1rank" in runners else None
    print(f"216-atom SW silicon, {TEMPERATURE:.0f} K, NVE {TIMESTEP * 1000:.0f} fs, CPU platform; "
          f"median of {args.repeats} interleaved repeats")
    print(f"{'route':<22}{'wall us/step':>14}{'cpu us/step':>14}{'wall/LAMMPS':>13}{'cpu/LAMMPS':>12}")
    for name in runners:
        ratios = (f"{wall[name] / wall[ref]:>13.2f}{cpu[name] / cpu[ref]:>12.2f}" if ref else "")
        print(f"{name:<22}{wall[name]:>14.0f}{cpu[name]:>14.0f}{ratios}")
    results = {}
    if ref:
        for name in runners:
            if name != ref:
                key = name.replace("/", "_").replace("-", "_")
                results[key] = cpu[name] / cpu[ref]
                print(f"RESULT ratio_{key}={results[key]:.2f} (cpu; wall {wall[name] / wall[ref]:.2f})")
    return results


if __name__ == "__main__":
    main()
