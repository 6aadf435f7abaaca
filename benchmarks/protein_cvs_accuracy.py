"""Largest deviations of the protein CVs from mdtraj, numpy and cvpack on villin frames.

Run: OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/protein_cvs_accuracy.py
The frames and groups are those of tests/test_cvs_protein.py (the PDB and three copies with the
protein atoms displaced by Gaussian noise of 0.02, 0.04, 0.06 nm); the wrapped check moves the
protein across the box faces and wraps each atom into the box.
"""

import os
import sys

import mdtraj as md
import numpy as np
import torch
from openmm import unit

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import test_cvs_protein as t  # noqa: E402  (the fixtures' data and reference helpers)
from openmm_nnbias.cvs import (CentroidDistance, CVSet, HelixTorsionContent, NumberOfContacts,  # noqa: E402
                               PathCV, RadiusOfGyration, RMSD)


def main():
    v = t.villin.__wrapped__()
    f, ca, heavy, res, n = v["frames"], v["ca"], v["heavy"], v["residues"], len(v["frames"][0])
    rows = []
    rg = t.values(RadiusOfGyration(heavy), f)[:, 0]
    rows.append(("RadiusOfGyration vs mdtraj compute_rg (nm)", np.abs(rg - md.compute_rg(v["traj"].atom_slice(heavy))).max()))
    rows.append(("RadiusOfGyration vs cvpack (nm)", np.abs(rg - t.cvpack_values(t.cvpack.RadiusOfGyration(heavy), f, n)).max()))
    for name, atoms in (("CA", ca), ("heavy", heavy)):
        got = t.values(RMSD(atoms, f[0]), f[1:])[:, 0]
        rows.append((f"RMSD {name} vs mdtraj rmsd (nm)", np.abs(got - md.rmsd(v["traj"][1:], v["traj"], 0, atom_indices=atoms)).max()))
        cp = t.cvpack.RMSD({i: f[0][i] for i in atoms}, atoms, n)
        rows.append((f"RMSD {name} vs cvpack (nm)", np.abs(got - t.cvpack_values(cp, f[1:], n)).max()))
    a = [at.index for r in res[:10] for at in r.atoms() if at.element.symbol != "H"]
    b = [at.index for r in res[15:] for at in r.atoms() if at.element.symbol != "H"]
    got = t.values(NumberOfContacts(a, b, r0=0.45), f)[:, 0]
    pairs = np.array([(i, j) for i in a for j in b])
    ref = np.array([t.coordination(x, pairs, 0.45) for x in f])
    rows.append(("NumberOfContacts vs numpy (relative)", np.abs(got - ref).max() / ref.max()))
    cp = t.cvpack.NumberOfContacts(a, b, t.nonbonded(n), thresholdDistance=0.45, cutoffFactor=100.0, switchFactor=None)
    rows.append(("NumberOfContacts vs cvpack (relative)", np.abs(got - t.cvpack_values(cp, f, n)).max() / ref.max()))
    a2 = [at.index for r in res[:8] for at in r.atoms()]
    b2 = [at.index for r in res[20:30] for at in r.atoms()]
    got = t.values(CentroidDistance(a2, b2, weights=v["masses"][a2 + b2]), f)[:, 0]
    cp = t.cvpack.CentroidFunction("distance(g1,g2)", unit.nanometer, [a2, b2], weighByMass=True)
    rows.append(("CentroidDistance (COM) vs cvpack (nm)", np.abs(got - t.cvpack_values_masses(cp, f, v["masses"])).max()))
    got = t.values(HelixTorsionContent(res), f)[:, 0]
    rows.append(("HelixTorsionContent vs cvpack", np.abs(got - t.cvpack_values(t.cvpack.HelixTorsionContent(res), f, n)).max()))
    lam = 500.0
    got = t.values(PathCV(ca, [f[0], f[2], f[3]], lam=lam), f)
    milestones = [{i: f[k][i] for i in ca} for k in (0, 2, 3)]
    for col, metric in ((0, t.cvpack.path.progress), (1, t.cvpack.path.deviation)):
        cp = t.cvpack.PathInRMSDSpace(metric, milestones, n, (1 / np.sqrt(2 * lam)) * unit.nanometer)
        rows.append((f"PathCV {'s' if col == 0 else 'z (nm^2)'} vs cvpack", np.abs(got[:, col] - t.cvpack_values(cp, f, n)).max()))
    box = v["box"]
    cvs = CVSet(t.all_cvs(v))
    shifted = f + (0.5 * np.diag(box) - f[0, v["protein"]].mean(0) + 0.37 * np.diag(box))
    wrapped = shifted - np.floor(shifted / np.diag(box)) * np.diag(box)
    rows.append(("all CVs: wrapped into the box vs whole, no box", np.abs(t.values(cvs, wrapped, np.broadcast_to(box, (4, 3, 3))) - t.values(cvs, f)).max()))
    for label, dev in rows:
        print(f"| {label} | {dev:.1e} |")


if __name__ == "__main__":
    main()
