"""GFN1-xTB training set for a small azobenzene neural potential (issue 17).

Configurations (atom order of :mod:`openmm_nnbias.systems.azobenzene.molecule`), every one a fresh
tblite single point (``tblite.interface.Calculator("GFN1-xTB")``, no SCF restart, so no
hysteresis between structures):

1. trans and cis minimized (ASE BFGS on ``tblite.ase.TBLite``, fmax 0.02 eV/Å);
2. relaxed rotation scan from trans, CNNC 180° → 0° every 10° (``FixInternals``, ≤ 60 BFGS
   steps per point), relaxed inversion scans of the N6=N7–C8 angle from trans and from cis
   (their value → 175° every 5°), and a coarse (CNNC, NNC) grid made by setting NNC to
   140/160/175° on the rotation points (unrelaxed);
3. around every base structure above: random perturbations — both N=N–C–C ring torsions
   turned by U(−40°, 40°), CNNC by U(−8°, 8°), then Cartesian noise of σ ∈ ``--sigmas``
   (default 0.001, 0.0025, 0.004 nm; ``--per-base`` samples each). σ = 0.01 nm on every
   coordinate is far hotter than 1 000 K (median ≈ 1 200 kJ/mol above trans, against
   ≈ 300 kJ/mol in 1 000 K MD); with these σ the perturbed points lie 9–700 kJ/mol (median
   ≈ 170) above trans, the range of the 300–1 000 K MD;
4. short GFN1 Langevin MD (ASE ``Langevin``, 0.5 fs, friction 0.01/fs, ``--md-steps``
   steps, default 1 000 = 0.5 ps) at 300, 600 and 1000 K from cis, trans, the CNNC = 90°
   rotation point and the last (175°) point of both inversion scans, a frame every 10 steps
   (ASE's calculator keeps its SCF between MD steps, which is fine along a trajectory).

4 025 points with the defaults, ≈ 13.5 min on one (shared) core.

Output ``.npz``: ``positions`` (M, 24, 3) nm, ``energies`` (M,) kJ/mol, ``forces``
(M, 24, 3) kJ/mol/nm, ``kind`` (M,) int (0 minimum, 1 scan, 2 grid, 3 perturbed, 4 MD),
``numbers`` (24,), and the minimized/scan structures for the fit script (``scan_*``).
Points whose SCF fails are skipped.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/azobenzene_gfn1_data.py \\
        --out /work/main/benchmarks/out/azo_gfn1/azo_gfn1_data.npz
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

from openmm_nnbias.systems.azobenzene.molecule import (AZOBENZENE_NUMBERS, AZOBENZENE_SYMBOLS, CNNC_DIHEDRAL, NNC_ANGLE,
                                              PHENYL_ATOMS, azobenzene_positions)

HARTREE_TO_KJ_PER_MOL = 2625.4996394799
BOHR_NM = 0.0529177210903
RING1_ATOMS = (0, 1, 2, 3, 4, 5, 14, 15, 16, 17, 18)
KINDS = {"minimum": 0, "scan": 1, "grid": 2, "perturbed": 3, "md": 4}


def single_point(pos_angstrom: np.ndarray):
    """GFN1-xTB energy (kJ/mol) and forces (kJ/mol/nm) of one structure in Å, or None if the SCF fails."""
    from tblite.interface import Calculator
    try:
        calc = Calculator("GFN1-xTB", np.asarray(AZOBENZENE_NUMBERS), np.asarray(pos_angstrom) / (10 * BOHR_NM))
        calc.set("verbosity", 0)
        res = calc.singlepoint()
    except Exception:  # noqa: BLE001 - tblite raises RuntimeError-like errors on SCF failure
        return None
    e = float(res.get("energy")) * HARTREE_TO_KJ_PER_MOL
    f = -np.asarray(res.get("gradient")) * HARTREE_TO_KJ_PER_MOL / BOHR_NM
    return e, f


def ase_atoms(pos_angstrom):
    from ase import Atoms
    from tblite.ase import TBLite
    atoms = Atoms("".join(AZOBENZENE_SYMBOLS), positions=np.asarray(pos_angstrom))
    atoms.calc = TBLite(method="GFN1-xTB", verbosity=0)
    return atoms


def relax(atoms, fmax=0.02, steps=200):
    from ase.optimize import BFGS
    BFGS(atoms, logfile=None).run(fmax=fmax, steps=steps)
    return atoms


def minima():
    out = {}
    for isomer in ("trans", "cis"):
        atoms = ase_atoms(10.0 * azobenzene_positions(isomer).numpy())
        atoms.rattle(stdev=0.03, seed=1)
        out[isomer] = relax(atoms, 0.02, 400).positions.copy()
    return out


def relaxed_scan(start, kind, values, steps):
    from ase.constraints import FixInternals
    atoms = ase_atoms(start)
    mask = [i in PHENYL_ATOMS for i in range(len(atoms))]
    rows = []
    for v in values:
        atoms.calc = ase_atoms(atoms.positions).calc  # fresh calculator: no SCF hysteresis
        atoms.set_constraint()
        if kind == "rotation":
            atoms.set_dihedral(*CNNC_DIHEDRAL, float(v), mask=mask)
            atoms.set_constraint(FixInternals(dihedrals_deg=[[float(v), list(CNNC_DIHEDRAL)]]))
        else:
            atoms.set_angle(*NNC_ANGLE, float(v), mask=mask)
            atoms.set_constraint(FixInternals(angles_deg=[[float(v), list(NNC_ANGLE)]]))
        atoms.rattle(stdev=0.005, seed=int(v))
        try:
            relax(atoms, 0.05, steps)
        except ValueError:  # FixInternals fails close to a linear angle
            break
        atoms.set_constraint()
        rows.append((float(v), atoms.positions.copy()))
    return rows


def perturb(pos, rng, sigma_nm):
    from ase import Atoms
    atoms = Atoms("".join(AZOBENZENE_SYMBOLS), positions=pos)
    m1 = [i in RING1_ATOMS for i in range(24)]
    m2 = [i in PHENYL_ATOMS for i in range(24)]
    atoms.set_dihedral(7, 6, 3, 2, atoms.get_dihedral(7, 6, 3, 2) + rng.uniform(-40, 40), mask=m1)
    atoms.set_dihedral(6, 7, 8, 9, atoms.get_dihedral(6, 7, 8, 9) + rng.uniform(-40, 40), mask=m2)
    atoms.set_dihedral(*CNNC_DIHEDRAL, atoms.get_dihedral(*CNNC_DIHEDRAL) + rng.uniform(-8, 8), mask=m2)
    return atoms.positions + 10.0 * sigma_nm * rng.standard_normal((24, 3))


def md(start, temperature, steps, every, seed):
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    atoms = ase_atoms(start)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=np.random.default_rng(seed))
    dyn = Langevin(atoms, 0.5 * units.fs, temperature_K=temperature, friction=0.01 / units.fs,
                   rng=np.random.default_rng(seed + 1))
    frames = []
    for _ in range(steps // every):
        try:
            dyn.run(every)
        except Exception:  # noqa: BLE001 - SCF failure mid-run: keep what we have
            break
        frames.append(atoms.positions.copy())
    return frames


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="/work/main/benchmarks/out/azo_gfn1/azo_gfn1_data.npz")
    p.add_argument("--per-base", type=int, default=24, help="perturbed samples per base structure (24)")
    p.add_argument("--md-steps", type=int, default=1000, help="MD steps per run (1 000 = 0.5 ps)")
    p.add_argument("--scan-steps", type=int, default=60, help="BFGS steps per relaxed scan point (60)")
    p.add_argument("--sigmas", default="0.001,0.0025,0.004", help="Cartesian noise σ values, nm")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    rng = np.random.default_rng(a.seed)
    t0 = time.time()
    structures = []  # (kind, positions Å)
    mins = minima()
    structures += [("minimum", mins["trans"]), ("minimum", mins["cis"])]
    rot = relaxed_scan(mins["trans"], "rotation", range(180, -1, -10), a.scan_steps)
    inv_t = relaxed_scan(mins["trans"], "inversion", range(120, 176, 5), a.scan_steps)
    inv_c = relaxed_scan(mins["cis"], "inversion", range(125, 176, 5), a.scan_steps)
    print(f"minima + scans: {len(rot)} rotation, {len(inv_t)}+{len(inv_c)} inversion points, "
          f"{time.time() - t0:.0f} s", flush=True)
    structures += [("scan", x) for _, x in rot + inv_t + inv_c]
    from ase import Atoms
    mask = [i in PHENYL_ATOMS for i in range(24)]
    for _, x in rot:
        for nnc in (140.0, 160.0, 175.0):
            atoms = Atoms("".join(AZOBENZENE_SYMBOLS), positions=x)
            atoms.set_angle(*NNC_ANGLE, nnc, mask=mask)
            structures.append(("grid", atoms.positions.copy()))
    bases = [x for _, x in structures]
    sigmas = [float(v) for v in a.sigmas.split(",")]
    for x in bases:
        for k in range(a.per_base):
            structures.append(("perturbed", perturb(x, rng, sigmas[k % len(sigmas)])))
    starts = [mins["cis"], mins["trans"], min(rot, key=lambda r: abs(r[0] - 90))[1], inv_t[-1][1], inv_c[-1][1]]
    for i, x in enumerate(starts):
        for temperature in (300.0, 600.0, 1000.0):
            frames = md(x, temperature, a.md_steps, 10, a.seed + 100 * i + int(temperature))
            structures += [("md", f) for f in frames]
    print(f"{len(structures)} structures, {time.time() - t0:.0f} s; single points ...", flush=True)
    pos, ene, frc, kind = [], [], [], []
    for k, x in structures:
        r = single_point(x)
        if r is None:
            continue
        pos.append(0.1 * np.asarray(x))
        ene.append(r[0])
        frc.append(r[1])
        kind.append(KINDS[k])
    ene = np.asarray(ene)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    np.savez(a.out, positions=np.asarray(pos), energies=ene, forces=np.asarray(frc), kind=np.asarray(kind),
             numbers=np.asarray(AZOBENZENE_NUMBERS), trans=0.1 * mins["trans"], cis=0.1 * mins["cis"],
             scan_rotation_deg=np.array([v for v, _ in rot]), scan_rotation=0.1 * np.array([x for _, x in rot]),
             scan_inversion_trans_deg=np.array([v for v, _ in inv_t]),
             scan_inversion_trans=0.1 * np.array([x for _, x in inv_t]),
             scan_inversion_cis_deg=np.array([v for v, _ in inv_c]),
             scan_inversion_cis=0.1 * np.array([x for _, x in inv_c]))
    e0 = ene[np.asarray(kind) == 0].min()
    print(f"{len(ene)} points (of {len(structures)}) saved to {a.out}; E − E(trans) range "
          f"{(ene.min() - e0):.0f} … {(ene.max() - e0):.0f} kJ/mol; counts "
          f"{ {k: int((np.asarray(kind) == v).sum()) for k, v in KINDS.items()} }; {time.time() - t0:.0f} s",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
