"""Azobenzene on SevenNet-0/-l3i5, CHGNet, GFN2/GFN1-xTB: minima, ΔE(cis − trans), rotation, inversion.

Each model runs through its own ASE calculator (SevenNet's ``SevenNetCalculator``,
CHGNet's ``CHGNetCalculator`` in a 40 Å box, tblite's ``TBLite(method="GFN2-xTB")``,
and GFN1-xTB as a second tight-binding reference),
so the comparison is independent of :class:`openmm_nnbias.systems.azobenzene.SevenNetEnergy`
(whose agreement with ``SevenNetCalculator`` is a test).

Procedure, from the package's stored structures (:mod:`openmm_nnbias.systems.azobenzene.molecule`):

1. trans and cis minimized (BFGS, fmax 0.02 eV/Å) from the stored structures displaced
   by 0.03 Å (seeded), so that no symmetric stationary point is kept;
2. rotation path: *relaxed* scan of the CNNC dihedral from 180° to 0° (the second
   phenyl group rotated about the N=N axis, then every other coordinate relaxed with the
   dihedral held fixed by ``FixInternals``), starting from the trans minimum, each point
   displaced by 0.005 Å before its relaxation (symmetry breaking again);
3. inversion path: *relaxed* scan of the N6=N7–C8 angle from its trans value to 178°
   (planar, dihedral free), starting from the trans minimum.

Energies are relative to the trans minimum, in eV (1 eV = 96.48533212 kJ/mol).

Usage::

    python benchmarks/azobenzene_potentials.py --model sevennet --out /tmp/azo_sevennet.json
    python benchmarks/azobenzene_potentials.py --table /tmp/azo_*.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

from openmm_nnbias.systems.azobenzene.molecule import (AZOBENZENE_SYMBOLS, CNN_ANGLE, CNNC_DIHEDRAL, NNC_ANGLE,
                                              PHENYL_ATOMS, azobenzene_positions)

from openmm_nnbias._units import EV_TO_KJ_PER_MOL  # noqa: E402
ROTATION_DEG = (180, 160, 140, 120, 105, 95, 90, 85, 75, 60, 40, 20, 0)
INVERSION_DEG = (130, 145, 160, 170, 175, 178)  # FixInternals may stop before 178°


def calculator(model: str):
    """ASE calculator of ``model``: "sevennet" (SevenNet-0), "sevennet-l3i5", "chgnet", "xtb" (GFN2), "gfn1"."""
    if model in ("sevennet", "sevennet-l3i5"):
        from sevenn.calculator import SevenNetCalculator
        return SevenNetCalculator("7net-0" if model == "sevennet" else "7net-l3i5", device="cpu")
    if model == "chgnet":
        from chgnet.model.dynamics import CHGNetCalculator
        return CHGNetCalculator(use_device="cpu")
    if model in ("xtb", "gfn1"):
        from tblite.ase import TBLite
        return TBLite(method="GFN2-xTB" if model == "xtb" else "GFN1-xTB", verbosity=0)
    raise ValueError(f"model must be sevennet, sevennet-l3i5, chgnet, xtb or gfn1, got {model!r}")


def atoms_of(isomer: str, model: str):
    from ase import Atoms
    atoms = Atoms("".join(AZOBENZENE_SYMBOLS), positions=10.0 * azobenzene_positions(isomer).numpy())
    if model == "chgnet":  # CHGNet needs a lattice; 40 Å ≫ its 5 Å cutoff, so no image interacts
        atoms.set_cell([40.0, 40.0, 40.0])
        atoms.center()
        atoms.pbc = True
    return atoms


def relax(atoms, fmax: float, steps: int) -> int:
    from ase.optimize import BFGS
    opt = BFGS(atoms, logfile=None)
    opt.run(fmax=fmax, steps=steps)
    return int(opt.nsteps)


def descriptors(atoms) -> dict:
    return {"cnnc_deg": float(atoms.get_dihedral(*CNNC_DIHEDRAL)), "nnc_deg": float(atoms.get_angle(*NNC_ANGLE)),
            "cnn_deg": float(atoms.get_angle(*CNN_ANGLE)), "nn_angstrom": float(atoms.get_distance(6, 7))}


def fresh(calc, model: str):
    """tblite restarts its SCF from the previous wavefunction: a new calculator per structure
    avoids hysteresis (different SCF solutions) near the twisted, biradical-like geometries."""
    return calculator(model) if model in ("xtb", "gfn1") else calc


def scan(start, calc, model: str, kind: str, values, fmax: float, steps: int, e_ref: float) -> list:
    from ase.constraints import FixInternals
    atoms = start.copy()
    mask = [i in PHENYL_ATOMS for i in range(len(atoms))]
    rows = []
    for v in values:
        atoms.calc = fresh(calc, model)
        atoms.set_constraint()
        if kind == "rotation":
            atoms.set_dihedral(*CNNC_DIHEDRAL, float(v), mask=mask)
            atoms.set_constraint(FixInternals(dihedrals_deg=[[float(v), list(CNNC_DIHEDRAL)]]))
        else:
            atoms.set_angle(*NNC_ANGLE, float(v), mask=mask)
            atoms.set_constraint(FixInternals(angles_deg=[[float(v), list(NNC_ANGLE)]]))
        atoms.rattle(stdev=0.005, seed=int(v))  # no symmetric saddles (phenyl twist) by construction
        try:
            n = relax(atoms, fmax, steps)
        except ValueError as exc:  # FixInternals fails close to a linear angle
            print(f"  {kind} {v}: stopped ({exc})"[:160], flush=True)
            break
        e = float(atoms.get_potential_energy())
        rows.append(dict(target_deg=float(v), energy_ev=e - e_ref, steps=n, positions=atoms.positions.tolist(),
                         **descriptors(atoms)))
        print(f"  {kind} {v:6.1f}: {e - e_ref:8.3f} eV  ({n} steps) {descriptors(atoms)}", flush=True)
    return rows


def run(model: str, fmax: float, steps: int) -> dict:
    t0 = time.time()
    calc = calculator(model)
    out = {"model": model, "fmax_ev_per_angstrom": fmax}
    minima = {}
    for isomer in ("trans", "cis"):
        atoms = atoms_of(isomer, model)
        atoms.rattle(stdev=0.03, seed=1)  # break the stored structures' symmetry (planar MMFF cis)
        atoms.calc = fresh(calc, model)
        n = relax(atoms, fmax, 4 * steps)
        minima[isomer] = atoms
        out[isomer] = dict(energy_ev=float(atoms.get_potential_energy()), steps=n,
                           positions=atoms.positions.tolist(), **descriptors(atoms))
        print(f"{model} {isomer}: {out[isomer]}", flush=True)
    e_trans = out["trans"]["energy_ev"]
    out["delta_e_cis_trans_ev"] = out["cis"]["energy_ev"] - e_trans
    out["rotation"] = scan(minima["trans"], calc, model, "rotation", ROTATION_DEG, fmax, steps, e_trans)
    out["inversion"] = scan(minima["trans"], calc, model, "inversion", INVERSION_DEG, fmax, steps, e_trans)
    out["rotation_max_ev"] = max(r["energy_ev"] for r in out["rotation"])
    out["inversion_max_ev"] = max(r["energy_ev"] for r in out["inversion"])
    out["seconds"] = time.time() - t0
    return out


def table(paths) -> str:
    res = [json.load(open(p)) for p in paths]
    lines = ["| | " + " | ".join(r["model"] for r in res) + " |", "|---" * (len(res) + 1) + "|"]

    def row(name, f):
        lines.append(f"| {name} | " + " | ".join(f(r) for r in res) + " |")

    row("trans CNNC / NNC / N=N", lambda r: f"{r['trans']['cnnc_deg']:.0f}° / {r['trans']['nnc_deg']:.1f}° / "
        f"{r['trans']['nn_angstrom']:.3f} Å")
    row("cis CNNC / NNC / N=N", lambda r: f"{r['cis']['cnnc_deg']:.0f}° / {r['cis']['nnc_deg']:.1f}° / "
        f"{r['cis']['nn_angstrom']:.3f} Å")
    row("ΔE(cis − trans) (eV)", lambda r: f"{r['delta_e_cis_trans_ev']:.3f}")
    for v in ROTATION_DEG:
        row(f"rotation CNNC = {v}° (eV)", lambda r, v=v: next((f"{x['energy_ev']:.3f}" for x in r["rotation"]
                                                              if x["target_deg"] == v), "failed"))
    for v in INVERSION_DEG:
        row(f"inversion NNC = {v}° (eV)", lambda r, v=v: next((f"{x['energy_ev']:.3f}" for x in r["inversion"]
                                                               if x["target_deg"] == v), "failed"))
    row("max along rotation (eV)", lambda r: f"{r['rotation_max_ev']:.3f}")
    row("max along inversion (eV)", lambda r: f"{r['inversion_max_ev']:.3f}")
    row("rotation max − E(cis) (eV)", lambda r: f"{r['rotation_max_ev'] - r['delta_e_cis_trans_ev']:.3f}")
    row("inversion max − E(cis) (eV)", lambda r: f"{r['inversion_max_ev'] - r['delta_e_cis_trans_ev']:.3f}")
    row("wall time (s)", lambda r: f"{r['seconds']:.0f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("sevennet", "sevennet-l3i5", "chgnet", "xtb", "gfn1"))
    p.add_argument("--out", help="JSON result file")
    p.add_argument("--fmax", type=float, default=0.02, help="BFGS force threshold, eV/Å (default 0.02)")
    p.add_argument("--steps", type=int, default=150, help="BFGS steps per scan point (default 150)")
    p.add_argument("--table", nargs="+", help="print the Markdown table of these JSON files")
    a = p.parse_args(argv)
    if a.table:
        print(table(a.table))
        return 0
    if not a.model:
        p.error("--model or --table is required")
    warnings.filterwarnings("ignore")
    res = run(a.model, a.fmax, a.steps)
    text = json.dumps(res, indent=1)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
