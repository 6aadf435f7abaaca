"""Effect of hydrogen mass repartitioning on the solvated alanine dipeptide (issue 15, item 2).

Runs the embedded ``alanine-dipeptide-solvated`` (2 fs, force-field masses) and
``alanine-dipeptide-solvated-hmr`` (hydrogens 1.5 amu, 4 fs) side by side, unbiased, with the
same thermostat, barostat and platform, and prints per system: simulated ns per CPU-day (process
CPU time, so that other jobs on the machine matter less than for wall time), the mean potential
energy (kJ/mol), density (g/cm³) and the solute's kinetic temperature (K) with block standard
errors. Masses do not change the configurational distribution, so the potential energy and the
density must agree within error; a too-long step shows as a shift of the potential energy and
as a kinetic temperature away from the bath's.

    PYTHONPATH=. python benchmarks/hmr_check.py --equilibrate-ps 20 --ps 60 --rounds 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import openmm
from openmm import app, unit

from openmm_nnbias.recipes import get_recipe, get_system

from openmm_nnbias._units import KB  # noqa: E402  (kJ/mol/K)


def _block_error(x: np.ndarray, blocks: int = 5) -> float:
    means = np.array([b.mean() for b in np.array_split(np.asarray(x), blocks)])
    return float(means.std(ddof=1) / np.sqrt(blocks))


def _context(name: str, seed: int):
    built, r = get_system(name), get_recipe(name)
    integ = openmm.LangevinMiddleIntegrator(r.temperature * unit.kelvin, r.friction / unit.picosecond,
                                            r.timestep * unit.picosecond)
    integ.setRandomNumberSeed(seed)
    sim = app.Simulation(built.topology, built.system, integ, openmm.Platform.getPlatformByName("CPU"),
                         {"Threads": "1"})
    sim.context.setPositions(built.positions)
    sim.context.setVelocitiesToTemperature(r.temperature * unit.kelvin, seed)
    return sim, built, r


def _solute_kinetic_temperature(state, system, solute, n_constraints: int) -> float:
    v = state.getVelocities(asNumpy=True).value_in_unit(unit.nanometer / unit.picosecond)[solute]
    m = np.array([system.getParticleMass(i).value_in_unit(unit.dalton) for i in solute])
    dof = 3 * len(solute) - n_constraints
    return float((m[:, None] * v ** 2).sum() / (dof * KB))


def run(name: str, equilibrate_ps: float, ps: float, seed: int, every_ps: float = 0.2) -> dict:
    sim, built, r = _context(name, seed)
    system = built.system
    solute = [a.index for a in built.topology.atoms() if a.residue.name != "HOH"]
    inside = set(solute)
    n_con = sum(1 for k in range(system.getNumConstraints())
                if system.getConstraintParameters(k)[0] in inside)
    mass_g = sum(system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(system.getNumParticles()))
    sim.step(int(round(equilibrate_ps / r.timestep)))
    every = int(round(every_ps / r.timestep))
    n = int(round(ps / every_ps))
    energies, densities, temps = [], [], []
    cpu0 = time.process_time()
    for _ in range(n):
        sim.step(every)
        st = sim.context.getState(getEnergy=True, getVelocities=True)
        energies.append(st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
        vol = st.getPeriodicBoxVolume().value_in_unit(unit.nanometer ** 3)
        densities.append(mass_g / 6.02214076e23 / (vol * 1e-21))
        temps.append(_solute_kinetic_temperature(st, system, solute, n_con))
    cpu = time.process_time() - cpu0
    return {"system": name, "dt_fs": r.timestep * 1000, "ns_per_cpu_day": ps / 1000 / (cpu / 86400),
            "epot": float(np.mean(energies)), "epot_err": _block_error(energies),
            "density": float(np.mean(densities)), "density_err": _block_error(densities),
            "t_solute": float(np.mean(temps)), "t_solute_err": _block_error(temps)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--equilibrate-ps", type=float, default=20.0)
    p.add_argument("--ps", type=float, default=60.0, help="production ps per run")
    p.add_argument("--rounds", type=int, default=1, help="alternating runs of each system (different seeds)")
    a = p.parse_args(argv)
    rows = []
    for k in range(a.rounds):
        for name in ("alanine-dipeptide-solvated", "alanine-dipeptide-solvated-hmr"):
            rows.append(run(name, a.equilibrate_ps, a.ps, seed=1 + k))
            r = rows[-1]
            print(f"{r['system']:32s} dt {r['dt_fs']:.0f} fs  {r['ns_per_cpu_day']:6.1f} ns/CPU-day  "
                  f"E_pot {r['epot']:10.1f} ± {r['epot_err']:.1f} kJ/mol  rho {r['density']:.4f} ± "
                  f"{r['density_err']:.4f} g/cm3  T_solute {r['t_solute']:.1f} ± {r['t_solute_err']:.1f} K", flush=True)
    by = {n: [r for r in rows if r["system"] == n] for n in ("alanine-dipeptide-solvated", "alanine-dipeptide-solvated-hmr")}
    speed = [h["ns_per_cpu_day"] / s["ns_per_cpu_day"] for s, h in zip(*by.values())]
    print(f"HMR 4 fs / 2 fs simulated time per CPU time: {np.mean(speed):.2f} (rounds: "
          + ", ".join(f"{x:.2f}" for x in speed) + ")")


if __name__ == "__main__":
    main()
