"""Protein CVs (RadiusOfGyration, RMSD, NumberOfContacts, CentroidDistance, HelixTorsionContent, PathCV)
on villin headpiece frames: values against mdtraj, numpy and cvpack's OpenMM forces, periodic
wrapping, Jacobians against finite differences, TorchScript round trip, a short Deep-VES run."""

import copy
import io
import os

import mdtraj as md
import numpy as np
import openmm as mm
import pytest
import torch
from openmm import app, unit

from openmm_nnbias.cvs import (CentroidDistance, CVSet, HelixTorsionContent, NumberOfContacts, PathCV,
                               RadiusOfGyration, RMSD)

cvpack = pytest.importorskip("cvpack")

PDB = os.path.join(os.path.dirname(app.__file__), "data", "test.pdb")


@pytest.fixture(scope="module")
def villin():
    """Topology, 4 frames (the PDB + 3 perturbed copies, protein only moved), box (nm), atom groups."""
    pdb = app.PDBFile(PDB)
    top = pdb.topology
    x0 = np.array(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    rng = np.random.default_rng(7)
    residues = list(top.residues())[:35]
    protein = [a.index for r in residues for a in r.atoms()]
    frames = [x0]
    for k in range(3):
        x = x0.copy()
        x[protein] += rng.normal(scale=0.02 * (k + 1), size=(len(protein), 3))
        frames.append(x)
    box = np.diag([v[i] for i, v in enumerate(top.getPeriodicBoxVectors().value_in_unit(unit.nanometer))])
    heavy = [a.index for a in top.atoms() if a.index in set(protein) and a.element.symbol != "H"]
    ca = [a.index for a in top.atoms() if a.name == "CA" and a.index in set(protein)]
    masses = [a.element.mass.value_in_unit(unit.dalton) for a in top.atoms()]
    return dict(top=top, frames=np.array(frames), box=box, residues=residues, protein=protein, heavy=heavy,
                ca=ca, masses=np.array(masses), traj=md.Trajectory(np.array(frames), md.Topology.from_openmm(top)))


def cvpack_values(cv, frames, n_atoms):
    """Values of a cvpack CV (the energy of its force in group 1 of a Reference Context) for each frame."""
    system = mm.System()
    for _ in range(n_atoms):
        system.addParticle(1.0)
    cv.setForceGroup(1)
    system.addForce(cv)
    ctx = mm.Context(system, mm.VerletIntegrator(1.0), mm.Platform.getPlatformByName("Reference"))
    out = []
    for x in frames:
        ctx.setPositions(x)
        out.append(ctx.getState(getEnergy=True, groups={1}).getPotentialEnergy()._value)
    return np.array(out)


def nonbonded(n_atoms):
    force = mm.NonbondedForce()  # no exceptions: every pair counts, as in PLUMED's COORDINATION
    for _ in range(n_atoms):
        force.addParticle(0.0, 1.0, 0.0)
    return force


def values(cv, frames, box=None):
    x = torch.as_tensor(np.asarray(frames), dtype=torch.float64)
    b = None if box is None else torch.tensor(np.array(box), dtype=torch.float64)
    with torch.no_grad():
        return cv(x, b).numpy()


def coordination(x, pairs, r0, nn=6, mm_=12):
    r = np.linalg.norm(x[pairs[:, 1]] - x[pairs[:, 0]], axis=-1) / r0
    return np.sum((1 - r ** nn) / (1 - r ** mm_))


# ---------------------------------------------------------------- values against references

def test_radius_of_gyration_matches_mdtraj_and_cvpack(villin):
    f, heavy = villin["frames"], villin["heavy"]
    rg = values(RadiusOfGyration(heavy), f)[:, 0]
    ref = md.compute_rg(villin["traj"].atom_slice(heavy))
    assert np.abs(rg - ref).max() < 1e-6  # mdtraj works in float32
    assert np.abs(rg - cvpack_values(cvpack.RadiusOfGyration(heavy), f, len(f[0]))).max() < 1e-9
    weighted = values(RadiusOfGyration(heavy, weights=villin["masses"][heavy]), f)[:, 0]
    # mdtraj's compute_rg(masses=...) measures from the *geometric* centre (5e-5 nm off here): numpy instead
    m = villin["masses"][heavy]
    com = (f[:, heavy] * m[:, None]).sum(1, keepdims=True) / m.sum()
    ref = np.sqrt((((f[:, heavy] - com) ** 2).sum(-1) * m).sum(1) / m.sum())
    assert np.abs(weighted - ref).max() < 1e-12
    assert np.abs(weighted - rg).max() > 1e-3  # the weights matter


def test_rmsd_matches_mdtraj_and_cvpack(villin):
    f, ca, heavy = villin["frames"], villin["ca"], villin["heavy"]
    for atoms in (ca, heavy):
        cv = RMSD(atoms, f[0])
        got = values(cv, f[1:])[:, 0]
        assert np.abs(got - md.rmsd(villin["traj"][1:], villin["traj"], 0, atom_indices=atoms)).max() < 5e-6  # float32, λ-based
        ref = cvpack.RMSD({i: f[0][i] for i in atoms}, atoms, len(f[0]))
        assert np.abs(got - cvpack_values(ref, f[1:], len(f[0]))).max() < 1e-9
    # the same reference given per CV atom; without rotation only the centroids are superposed
    assert np.allclose(values(RMSD(ca, f[0][ca]), f[1:]), values(RMSD(ca, f[0]), f[1:]), atol=1e-14)
    plain = values(RMSD(ca, f[0], align=False), f[1:])[:, 0]
    xc = f[1:, ca] - f[1:, ca].mean(1, keepdims=True)
    yc = f[0, ca] - f[0, ca].mean(0)
    assert np.abs(plain - np.sqrt(((xc - yc) ** 2).sum((1, 2)) / len(ca))).max() < 1e-12


def test_number_of_contacts_matches_numpy_and_cvpack(villin):
    f, res = villin["frames"], villin["residues"]
    group_a = [a.index for r in res[:10] for a in r.atoms() if a.element.symbol != "H"]
    group_b = [a.index for r in res[15:] for a in r.atoms() if a.element.symbol != "H"]
    cv = NumberOfContacts(group_a, group_b, r0=0.45)
    got = values(cv, f)[:, 0]
    pairs = np.array([(i, j) for i in group_a for j in group_b])
    ref = np.array([coordination(x, pairs, 0.45) for x in f])
    assert np.abs(got - ref).max() < 1e-9 * ref.max()
    cp = cvpack.NumberOfContacts(group_a, group_b, nonbonded(len(f[0])), thresholdDistance=0.45, cutoffFactor=100.0,
                                 switchFactor=None)
    assert np.abs(got - cvpack_values(cp, f, len(f[0]))).max() < 1e-9 * ref.max()
    # one group: all its pairs, once
    ca = villin["ca"]
    pairs = np.array([(i, j) for k, i in enumerate(ca) for j in ca[k + 1:]])
    got = values(NumberOfContacts(ca, r0=0.6, nn=8, mm=14), f)[:, 0]
    assert np.abs(got - [coordination(x, pairs, 0.6, 8, 14) for x in f]).max() < 1e-9
    # native contacts: the pairs closer than the reference cut-off in frame 0
    q = NumberOfContacts(group_a, group_b, r0=0.45, reference=f[0], referenceCutoff=0.5, normalize=True)
    native = np.array([(i, j) for i, j in pairs_ab(group_a, group_b) if np.linalg.norm(f[0][i] - f[0][j]) < 0.5])
    assert q.n_pairs == len(native) > 10
    want = np.array([coordination(x, native, 0.45) for x in f]) / len(native)
    assert np.abs(values(q, f)[:, 0] - want).max() < 1e-12 and q.upper == 1.0


def pairs_ab(a, b):
    return [(i, j) for i in a for j in b if i != j]


def test_contacts_switch_at_r0_and_overlapping_groups():
    x = torch.tensor([[0.0, 0, 0], [0.3, 0, 0], [0.3 + 1e-9, 0.2, 0]], dtype=torch.float64)
    cv = NumberOfContacts([0, 1], [1, 2], r0=0.3)  # pairs (0,1), (0,2), (1,2); (1,1) skipped
    assert cv.n_pairs == 3
    v, j = cv.value_and_jacobian(x)
    r = np.array([0.3, np.hypot(0.3 + 1e-9, 0.2), np.hypot(1e-9, 0.2)]) / 0.3
    with np.errstate(invalid="ignore"):
        s = (1 - r ** 6) / (1 - r ** 12)
    s[0] = 0.5
    assert abs(float(v[0]) - s.sum()) < 1e-12
    assert torch.isfinite(j).all()
    # the derivative at r = r0: s'(1) = nn (nn - mm) / (2 mm) / r0 = -1.5 / 0.3 along x
    one = NumberOfContacts([0], [1], r0=0.3)
    assert abs(float(one.value_and_jacobian(x)[1][0, 1, 0]) + 1.5 / 0.3) < 1e-9


def test_centroid_distance_matches_numpy_and_cvpack(villin):
    f, res = villin["frames"], villin["residues"]
    a = [at.index for r in res[:8] for at in r.atoms()]
    b = [at.index for r in res[20:30] for at in r.atoms()]
    for weigh in (False, True):
        w = villin["masses"][a + b] if weigh else None
        got = values(CentroidDistance(a, b, weights=w), f)[:, 0]
        wa = villin["masses"][a] if weigh else np.ones(len(a))
        wb = villin["masses"][b] if weigh else np.ones(len(b))
        ca = (f[:, a] * wa[:, None]).sum(1) / wa.sum()
        cb = (f[:, b] * wb[:, None]).sum(1) / wb.sum()
        assert np.abs(got - np.linalg.norm(cb - ca, axis=-1)).max() < 1e-12
        cp = cvpack.CentroidFunction("distance(g1,g2)", unit.nanometer, [a, b], weighByMass=weigh)
        system_masses = villin["masses"] if weigh else None
        assert np.abs(got - cvpack_values_masses(cp, f, system_masses)).max() < 1e-9


def cvpack_values_masses(cv, frames, masses):
    """As cvpack_values, with the atom masses in the System (cvpack weighs by the System's masses)."""
    system = mm.System()
    for k in range(len(frames[0])):
        system.addParticle(1.0 if masses is None else float(masses[k]))
    cv.setForceGroup(1)
    system.addForce(cv)
    ctx = mm.Context(system, mm.VerletIntegrator(1.0), mm.Platform.getPlatformByName("Reference"))
    out = []
    for x in frames:
        ctx.setPositions(x)
        out.append(ctx.getState(getEnergy=True, groups={1}).getPotentialEnergy()._value)
    return np.array(out)


def test_helix_torsion_content_matches_cvpack_and_mdtraj(villin):
    f, res = villin["frames"], villin["residues"]
    got = values(HelixTorsionContent(res), f)[:, 0]
    assert np.abs(got - cvpack_values(cvpack.HelixTorsionContent(res), f, len(f[0]))).max() < 1e-9
    traj = villin["traj"].atom_slice(villin["protein"])
    _, phi = md.compute_phi(traj)
    _, psi = md.compute_psi(traj)
    # inner residues 2..34: phi of residues 1..34 (index 1: first phi is residue 1), psi of residues 0..33
    phi, psi = phi[:, :-1], psi[:, 1:]
    box = lambda t, ref: 1 / (1 + (((t - ref + np.pi) % (2 * np.pi) - np.pi) / np.radians(25)) ** 6)
    want = 0.5 * (box(phi, np.radians(-63.8)) + box(psi, np.radians(-41.1))).sum(1)
    assert np.abs(got - want).max() < 5e-5  # mdtraj's float32 angles (~1e-6 rad each, 66 terms)
    normalized = values(HelixTorsionContent(res, normalize=True), f)[:, 0]
    assert np.allclose(normalized, got / 33) and 0.4 < normalized[0] < 1


def test_path_cv_matches_cvpack_and_mdtraj(villin):
    f, ca = villin["frames"], villin["ca"]
    lam = 500.0
    path = PathCV(ca, [f[0], f[2], f[3]], lam=lam)
    got = values(path, f)
    d = np.stack([md.rmsd(villin["traj"], villin["traj"], k, atom_indices=ca) ** 2 for k in (0, 2, 3)], axis=1)
    w = np.exp(-lam * (d - d.min(1, keepdims=True)))
    s = (w * np.arange(3)).sum(1) / (2 * w.sum(1))
    z = d.min(1) - np.log(w.sum(1)) / lam
    assert np.abs(got[:, 0] - s).max() < 1e-5 and np.abs(got[:, 1] - z).max() < 1e-6
    milestones = [{i: f[k][i] for i in ca} for k in (0, 2, 3)]
    sigma = 1 / np.sqrt(2 * lam)
    for col, metric in ((0, cvpack.path.progress), (1, cvpack.path.deviation)):
        cp = cvpack.PathInRMSDSpace(metric, milestones, len(f[0]), sigma * unit.nanometer)
        assert np.abs(got[:, col] - cvpack_values(cp, f, len(f[0]))).max() < 1e-9
    cvs = CVSet([RadiusOfGyration(ca), path])
    assert cvs.names == ["radius_of_gyration", "path_s", "path_z"]
    assert cvs.units == ["nm", "1", "nm^2"] and cvs.lower[1:] == [0.0, -np.log(3) / lam] and cvs.upper[1] == 1.0


# ---------------------------------------------------------------- periodic boxes

def all_cvs(villin):
    f, res, ca, heavy = villin["frames"], villin["residues"], villin["ca"], villin["heavy"]
    a = [at.index for r in res[:8] for at in r.atoms()]
    b = [at.index for r in res[20:30] for at in r.atoms()]
    return [RadiusOfGyration(heavy, weights=villin["masses"][heavy]), RMSD(heavy, f[0], names="rmsd_heavy"),
            RMSD(ca, f[0], align=False, names="rmsd_ca"),
            NumberOfContacts(a, b, r0=0.45, reference=f[0], referenceCutoff=0.6),
            CentroidDistance(a, b), HelixTorsionContent(res), PathCV(ca, [f[0], f[3]], lam=300.0)]


def test_values_unchanged_when_wrapped_into_the_box(villin):
    f, box = villin["frames"], villin["box"]
    cvs = CVSet(all_cvs(villin))
    plain = values(cvs, f)
    # move the protein across the box faces, then wrap every atom into the box separately
    shifted = f + (0.5 * np.diag(box) - f[0, villin["protein"]].mean(0) + 0.37 * np.diag(box))
    wrapped = shifted - np.floor(shifted / np.diag(box)) * np.diag(box)
    prot = wrapped[:, villin["protein"]]
    assert prot.min() >= 0 and np.ptp(prot[..., 0], axis=1).max() > 0.8 * box[0, 0]  # the protein is split
    boxes = np.broadcast_to(box, (len(f), 3, 3))
    assert np.abs(values(cvs, wrapped, boxes) - plain).max() < 1e-9
    x = torch.as_tensor(wrapped[1])
    v, _ = cvs.value_and_jacobians(x, torch.as_tensor(box))
    assert np.abs(v.numpy() - plain[1]).max() < 1e-9


# ---------------------------------------------------------------- Jacobians

@pytest.mark.parametrize("periodic", [False, True])
def test_jacobians_match_finite_differences_and_autograd(villin, periodic):
    f, box = villin["frames"], villin["box"]
    x0 = f[2] - np.floor(f[2] / np.diag(box)) * np.diag(box) if periodic else f[2]
    x = torch.as_tensor(x0)
    b = torch.as_tensor(box) if periodic else None
    rng = np.random.default_rng(3)
    for cv in all_cvs(villin):
        v, jac = cv.value_and_jacobian(x, b)
        atoms = cv.atoms[0]
        assert jac.shape == (cv.n_cvs, len(atoms), 3)
        xr = x.clone().requires_grad_(True)
        out = cv(xr, b)
        for k in range(cv.n_cvs):
            g, = torch.autograd.grad(out[k], xr, retain_graph=True)
            assert torch.allclose(g[atoms], jac[k], atol=1e-9, rtol=1e-7), cv.names[k]
        h = 1e-6
        for local in rng.choice(len(atoms), size=4, replace=False):
            for c in range(3):
                xp, xm = x.clone(), x.clone()
                xp[atoms[local], c] += h
                xm[atoms[local], c] -= h
                fd = (cv(xp, b) - cv(xm, b)) / (2 * h)
                assert torch.allclose(fd, jac[:, local, c], atol=1e-6, rtol=1e-5), (cv.names, local, c)


def test_cvset_forces_equal_autograd(villin):
    cvs = CVSet(all_cvs(villin))
    x = torch.as_tensor(villin["frames"][1])
    dvds = torch.linspace(0.5, 2.0, cvs.n_cvs, dtype=torch.float64)
    s, jac = cvs.value_and_jacobians(x)
    forces = cvs.apply_forces(dvds, jac, torch.zeros_like(x))
    xr = x.clone().requires_grad_(True)
    g, = torch.autograd.grad((cvs(xr) * dvds).sum(), xr)
    assert torch.allclose(forces, -g, atol=1e-9)


def test_rmsd_gradient_near_degenerate_rotations():
    rng = np.random.default_rng(0)
    square = torch.tensor([[0.1, 0.1, 0], [-0.1, 0.1, 0], [-0.1, -0.1, 0], [0.1, -0.1, 0]], dtype=torch.float64)
    tetra = torch.tensor([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=torch.float64) * 0.1
    planar = torch.tensor(rng.normal(size=(6, 3)) * [0.3, 0.2, 0.0])
    for ref in (square, tetra, planar):
        cv = RMSD(range(len(ref)), ref)
        # equal to the reference (rotated and shifted: no preferred rotation axis for the symmetric ones)
        turn = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float64)
        v, j = cv.value_and_jacobian(ref @ turn.T + 1.0)
        assert float(v[0]) < 1e-12 and torch.all(j == 0)
        for scale in (1e-4, 1e-2):
            x = ref + torch.tensor(rng.normal(scale=scale, size=ref.shape))
            if ref is planar:
                x[:, 2] = 0.0  # planar positions on a planar reference
            v, j = cv.value_and_jacobian(x)
            h = 1e-3 * scale
            fd = torch.zeros_like(x)
            for i in range(len(x)):
                for c in range(3):
                    xp, xm = x.clone(), x.clone()
                    xp[i, c] += h
                    xm[i, c] -= h
                    fd[i, c] = (cv(xp) - cv(xm))[0] / (2 * h)
            assert torch.allclose(fd, j[0], atol=1e-6), (ref, scale)
            # autograd (also second order) stays finite
            xr = x.clone().requires_grad_(True)
            g, = torch.autograd.grad(cv(xr)[0], xr, create_graph=True)
            hv, = torch.autograd.grad((g * ref).sum(), xr)
            assert torch.allclose(g, j[0], atol=1e-9) and torch.isfinite(hv).all()


# ---------------------------------------------------------------- TorchScript, copies, errors

def test_torchscript_round_trip(villin):
    f = torch.as_tensor(villin["frames"])
    box = torch.as_tensor(villin["box"])
    for module in all_cvs(villin) + [CVSet(all_cvs(villin))]:
        scripted = torch.jit.script(module)
        buffer = io.BytesIO()
        torch.jit.save(scripted, buffer)
        buffer.seek(0)
        loaded = torch.jit.load(buffer)
        assert torch.equal(loaded(f), module(f)) and torch.equal(loaded(f[1], box), module(f[1], box))
        if isinstance(module, CVSet):
            a, b = loaded.value_and_jacobians(f[1]), module.value_and_jacobians(f[1])
            assert torch.equal(a[0], b[0]) and all(torch.equal(p, q) for p, q in zip(a[1], b[1]))
        else:
            a, b = loaded.value_and_jacobian(f[1]), module.value_and_jacobian(f[1])
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        assert torch.equal(copy.deepcopy(module)(f), module(f))


def test_bad_arguments():
    ref = np.zeros((3, 3))
    with pytest.raises(TypeError, match="atoms"):
        RadiusOfGyration("abc")
    with pytest.raises(ValueError, match="atoms"):
        RadiusOfGyration([0, 0, 1])
    with pytest.raises(ValueError, match="weights"):
        RadiusOfGyration([0, 1], weights=[1.0])
    with pytest.raises(TypeError, match="align"):
        RMSD([0, 1, 2], ref, align=1)
    with pytest.raises(ValueError, match="reference"):
        RMSD([0, 1, 5], np.zeros((4, 3)))  # neither one row per CV atom nor the whole system
    with pytest.raises(ValueError, match="nn and mm"):
        NumberOfContacts([0, 1], r0=0.3, nn=6, mm=6)
    with pytest.raises(ValueError, match="r0"):
        NumberOfContacts([0, 1], r0=-0.3)
    with pytest.raises(TypeError, match="r0"):
        NumberOfContacts([0, 1], r0="0.3")
    with pytest.raises(ValueError, match="frames"):
        PathCV([0, 1, 2], [ref], lam=1.0)
    with pytest.raises(TypeError, match="residues"):
        HelixTorsionContent([1, 2, 3])
    with pytest.raises(ValueError, match="fused"):
        RadiusOfGyration([0, 1]).merged_with([RadiusOfGyration([1, 2])])
    # two CVs of one kind: separate groups of a CVSet
    cvs = CVSet([RadiusOfGyration([0, 1], names="a"), RadiusOfGyration([1, 2], names="b")])
    assert len(cvs.groups) == 2
