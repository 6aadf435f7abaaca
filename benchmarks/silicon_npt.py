"""NPT (1 atm) sanity runs of 216-atom Stillinger-Weber silicon: melting and phase densities.

Langevin thermostat (1/ps), Monte Carlo barostat every 25 steps, 2 fs, torch route, CPU platform:

1. the crystal at 1 400, 1 700 and 2 200 K (isotropic barostat): it must persist at 1 400 K; at
   1 700 and 2 200 K a defect-free periodic crystal superheats (no surface to melt from), so
   persisting there says nothing against T_m; these give the crystal density;
2. the crystal melted at 3 500 K, then the liquid at 1 700 K: the liquid density;
3. coexistence: a 3×3×6-cell (432-atom) crystal with the 1 700 K lattice whose upper half is
   melted at 5 000 K and brought to the run temperature (lower half frozen, NVT, 3 + 3 ps), then
   NPT with a z-only barostat at 1 500 K and 1 900 K: the crystal half must grow below the SW
   melting point (~1 690 K) and melt above it.

Printed per run: mean density and potential energy over the second half, the (220) Bragg order
at the start and end (1 perfect crystal, ~0.07 liquid) and the wall time per step.

    PYTHONPATH=. python benchmarks/silicon_npt.py [--ps 10] [--coexistence-ps 40]
    PYTHONPATH=. python benchmarks/silicon_npt.py --coexistence-only --coexistence-T 1600 1800
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch  # noqa: F401,I001  (before openmm: openmm-torch's kernels need torch's libraries)
from openmm import unit

from openmm_nnbias.systems.silicon import EV_TO_KJ_PER_MOL, SILICON_MASS, silicon_crystal
from openmm_nnbias.systems.silicon.md import bragg_order, density_g_cm3, silicon_npt_context

STEP = 0.002  # ps
SAMPLE = 50  # steps between samples


def run(temperature: float, picoseconds: float, start=None, seed: int = 1, barostat: str = "isotropic",
        frozen=(), n_cells=3) -> dict:
    """One run; returns its summary and final (positions, box)."""
    positions, box = start if start is not None else (None, None)
    context = silicon_npt_context(temperature, positions=positions, box=box, seed=seed,
                                  barostat=barostat, frozen=frozen)
    integrator = context.getIntegrator()
    n_atoms = context.getSystem().getNumParticles()
    state = context.getState(getPositions=True)
    order_start = bragg_order(state.getPositions(asNumpy=True)._value,
                              state.getPeriodicBoxVectors(asNumpy=True)._value, n_cells)
    samples = []
    wall = time.perf_counter()
    n_samples = max(2, int(round(picoseconds / STEP / SAMPLE)))
    for _ in range(n_samples):
        integrator.step(SAMPLE)
        state = context.getState(getEnergy=True, getPositions=True)
        box_now = np.array(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer))
        samples.append((density_g_cm3(n_atoms, box_now),
                        state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) / n_atoms / EV_TO_KJ_PER_MOL,
                        bragg_order(state.getPositions(asNumpy=True)._value, box_now, n_cells)))
    per_step = (time.perf_counter() - wall) / (n_samples * SAMPLE)
    second_half = np.array(samples[len(samples) // 2:])
    return {"T": temperature, "density": second_half[:, 0].mean(), "density_sd": second_half[:, 0].std(),
            "energy": second_half[:, 1].mean(), "order_start": order_start, "order_end": samples[-1][2],
            "us_per_step": per_step * 1e6, "final": (state.getPositions(asNumpy=True)._value, box_now)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ps", type=float, default=10.0, help="length of the crystal and liquid runs (ps)")
    parser.add_argument("--coexistence-ps", type=float, default=40.0, help="length of each coexistence run (ps)")
    parser.add_argument("--coexistence-T", type=float, nargs="+", default=[1500.0, 1900.0],
                        help="coexistence temperatures (K)")
    parser.add_argument("--coexistence-only", action="store_true",
                        help="skip the 1 400/2 200 K crystal and the liquid runs")
    args = parser.parse_args(argv)
    temperatures = (1700.0,) if args.coexistence_only else (1400.0, 1700.0, 2200.0)
    rows = [("crystal", "iso", run(t, args.ps)) for t in temperatures]
    lattice = (8 * SILICON_MASS / 6.02214076e23 / rows[temperatures.index(1700.0)][2]["density"]) ** (1 / 3) * 1e7
    if not args.coexistence_only:
        melt = run(3500.0, 5.0)
        rows.append(("crystal", "iso", melt))
        rows.append(("melt (3500 K)", "iso", run(1700.0, args.ps, start=melt["final"], seed=2)))
    # coexistence slab: crystal at the 1 700 K lattice, upper half melted with the lower half frozen
    xtal = silicon_crystal(3, lattice)
    cells = (3, 3, 6)
    positions = np.concatenate([xtal.positions, xtal.positions + xtal.box[2]])
    box = xtal.box * np.array([1.0, 1.0, 2.0])
    lower = np.flatnonzero(positions[:, 2] < xtal.box[2, 2])
    slab = run(5000.0, 3.0, start=(positions, box), barostat="none", frozen=lower, seed=3, n_cells=cells)
    rows.append(("half crystal", "NVT", slab))
    for t in args.coexistence_T:
        ready = run(t, 3.0, start=slab["final"], barostat="none", frozen=lower, seed=4, n_cells=cells)
        rows.append(("coexistence", "z", run(t, args.coexistence_ps, start=ready["final"], barostat="z",
                                              seed=5, n_cells=cells)))
    print(f"SW silicon (216 atoms; coexistence 432), 1 atm, Langevin 1/ps, MC barostat every 25 steps, 2 fs; crystal/liquid "
          f"runs {args.ps:g} ps, coexistence {args.coexistence_ps:g} ps (means over the second half)")
    print(f"{'start':<15}{'baro':>5}{'T (K)':>7}{'rho g/cm3':>11}{'sd':>8}{'E eV/atom':>11}"
          f"{'order 0':>9}{'order end':>10}{'phase':>9}{'us/step':>9}")
    for start, baro, r in rows:
        phase = "crystal" if r["order_end"] > 0.6 else ("liquid" if r["order_end"] < 0.2 else "mixed")
        print(f"{start:<15}{baro:>5}{r['T']:>7.0f}{r['density']:>11.4f}{r['density_sd']:>8.4f}{r['energy']:>11.4f}"
              f"{r['order_start']:>9.3f}{r['order_end']:>10.3f}{phase:>9}{r['us_per_step']:>9.0f}")
        print(f"RESULT {start.split()[0]}_{r['T']:.0f}K density={r['density']:.4f} order_end={r['order_end']:.3f} "
              f"phase={phase}")


if __name__ == "__main__":
    main()
