"""CVs against mdtraj, OpenMM CustomTorsionForce and finite differences; the CV contract."""

import io
import math

import mdtraj as md
import numpy as np
import pytest
import torch

from openmm_nnbias.cvs import Angle, CVSet, Distance, Position, Torsion


def _traj(frames, topology):
    return md.Trajectory(frames, md.Topology.from_openmm(topology))


def all_cv_examples():
    return [
        Torsion([[4, 6, 8, 14], [6, 8, 14, 16]], names=["phi", "psi"]),
        Distance([[1, 18], [5, 17]], lower=0.0, upper=1.5),
        Angle([[4, 6, 8], [8, 14, 16]]),
        Position([0, 0, 3], axis=["x", "y", "z"], lower=-3.0, upper=3.0, names=["x0", "y0", "z3"]),
    ]


@pytest.mark.parametrize("cv", all_cv_examples(), ids=lambda c: type(c).__name__)
def test_cv_contract(cv, dipeptide_frames):
    """Every CV kind: batched shapes, TorchScript equals eager and survives save/load, metadata."""
    x = torch.tensor(dipeptide_frames, dtype=torch.float64)
    eager = cv(x)
    assert eager.shape == (len(x), cv.n_cvs)
    assert torch.equal(eager[3], cv(x[3]))
    scripted = torch.jit.script(cv)
    assert torch.allclose(scripted(x), eager, rtol=0, atol=1e-14)
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    buf.seek(0)
    assert torch.allclose(torch.jit.load(buf)(x), eager, rtol=0, atol=1e-14)
    assert len(cv.names) == cv.n_cvs and cv.upper > cv.lower
    assert cv(x.float()).dtype == torch.float32
    if cv.periodic:
        assert (eager >= cv.lower).all() and (eager <= cv.upper).all()


def test_torsions_match_mdtraj(dipeptide, dipeptide_frames):
    quads = [dipeptide.torsions["phi"], dipeptide.torsions["psi"], (0, 1, 4, 6), (8, 14, 16, 18)]
    ref = md.compute_dihedrals(_traj(dipeptide_frames, dipeptide.topology), quads)
    ours = Torsion(quads)(torch.tensor(dipeptide_frames, dtype=torch.float64)).numpy()
    diff = np.angle(np.exp(1j * (ours - ref)))
    assert np.abs(diff).max() < 1e-5  # mdtraj computes in float32


def test_distances_and_angles_match_mdtraj(dipeptide, dipeptide_frames):
    traj = _traj(dipeptide_frames, dipeptide.topology)
    x = torch.tensor(dipeptide_frames, dtype=torch.float64)
    pairs = [(1, 18), (5, 17), (0, 21)]
    np.testing.assert_allclose(Distance(pairs, 0, 2)(x).numpy(), md.compute_distances(traj, pairs), atol=1e-6)
    triples = [(4, 6, 8), (8, 14, 16), (0, 1, 2)]
    np.testing.assert_allclose(Angle(triples)(x).numpy(), md.compute_angles(traj, triples), atol=1e-5)


def test_torsions_match_openmm_custom_torsion(dipeptide, dipeptide_frames):
    import openmm as mm
    from openmm import unit

    for name in ("phi", "psi"):
        system = mm.System()
        for _ in range(dipeptide.system.getNumParticles()):
            system.addParticle(1.0)
        force = mm.CustomTorsionForce("theta")
        force.addTorsion(*dipeptide.torsions[name], [])
        system.addForce(force)
        ctx = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
        cv = Torsion(dipeptide.torsions[name])
        for frame in dipeptide_frames[:10]:
            ctx.setPositions(frame)
            ref = ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
            ours = float(cv(torch.tensor(frame))[0])
            assert abs(math.remainder(ours - ref, 2 * math.pi)) < 1e-10


def _fd_check(cv, x, h=1e-6):
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(cv(x).sum(), x)
    fd = torch.zeros_like(x)
    with torch.no_grad():
        for idx in np.ndindex(*x.shape):
            xp, xm = x.clone(), x.clone()
            xp[idx] += h
            xm[idx] -= h
            fd[idx] = (cv(xp).sum() - cv(xm).sum()) / (2 * h)
    torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("target", [math.pi - 1e-3, -math.pi + 1e-3, 0.3, -2.0])
def test_torsion_gradient_finite_difference_near_pi(target):
    # atoms: (1,0,0), (0,0,0), (0,1,0), (cos t, 1, sin t) → dihedral ∓t depending on convention
    x = torch.tensor([[1.0, 0, 0], [0, 0, 0], [0, 1, 0],
                      [math.cos(target), 1, math.sin(target)]], dtype=torch.float64)
    cv = Torsion([0, 1, 2, 3])
    assert abs(abs(float(cv(x)[0])) - abs(target)) < 1e-12
    _fd_check(cv, x)


def test_gradients_finite_difference_real_frame(dipeptide_frames):
    x = torch.tensor(dipeptide_frames[0][:19], dtype=torch.float64)
    for cv in all_cv_examples():
        _fd_check(cv, x)


def test_cvset_order_names_and_fusion(dipeptide_frames):
    x = torch.tensor(dipeptide_frames, dtype=torch.float64)
    phi = Torsion([4, 6, 8, 14], "phi")
    d = Distance([1, 18], 0.0, 1.5, names="d")
    psi = Torsion([6, 8, 14, 16], "psi")
    cvs = CVSet([phi, d, psi])
    assert cvs.names == ["phi", "d", "psi"] and cvs.periodic == [True, False, True]
    assert len(cvs.groups) == 2  # both torsions fused into one module
    expected = torch.stack([phi(x)[:, 0], d(x)[:, 0], psi(x)[:, 0]], dim=-1)
    torch.testing.assert_close(cvs(x), expected, rtol=0, atol=1e-13)  # fused op: last-bit rounding
    torch.testing.assert_close(torch.jit.script(cvs)(x), expected, rtol=0, atol=1e-13)


def test_bad_cv_input_errors():
    with pytest.raises(ValueError, match="repeated atom"):
        Torsion([1, 2, 2, 3])
    with pytest.raises(ValueError, match="4 atom indices"):
        Torsion([1, 2, 3])
    with pytest.raises(ValueError, match="negative atom index"):
        Distance([-1, 2], 0, 1)
    with pytest.raises(ValueError, match="lower < upper"):
        Distance([0, 1], 1.0, 0.5)
    with pytest.raises(ValueError, match="axis"):
        Position([0], axis="w", lower=0, upper=1)
    with pytest.raises(ValueError, match="unique"):
        CVSet([Torsion([0, 1, 2, 3], "a"), Torsion([1, 2, 3, 4], "a")])
    cvs = CVSet([Torsion([4, 6, 8, 30], "phi")])
    with pytest.raises(ValueError, match="atom index 30 but the system has only 22 particles"):
        cvs.check_system(22)


@pytest.mark.parametrize("cv", all_cv_examples(), ids=lambda c: type(c).__name__)
def test_analytic_jacobian_matches_autograd(cv, dipeptide_frames):
    x = torch.tensor(dipeptide_frames[4], dtype=torch.float64, requires_grad=True)
    value, jac = torch.jit.script(cv).value_and_jacobian(x.detach())
    torch.testing.assert_close(value, cv(x).detach())
    for i in range(cv.n_cvs):
        (g,) = torch.autograd.grad(cv(x)[i], x)
        rows = cv.atoms[i].tolist()
        torch.testing.assert_close(jac[i], g[rows], rtol=1e-10, atol=1e-12)


def test_check_range_names_the_first_value_outside_a_declared_range():
    from openmm_nnbias.cvs import CVSet, Distance, Torsion

    cvs = CVSet([Torsion([0, 1, 2, 3], "phi"), Distance([[0, 1]], names=["d"], lower=0.0, upper=0.5)])
    ok = torch.tensor([[3.0, 0.2], [-3.0, 0.5]], dtype=torch.float64)
    cvs.check_range(ok)  # periodic CVs are never out of range
    with pytest.raises(ValueError, match=r"CV 'd' = 0.7000 \(sample 1\) is outside its declared range \[0.0, 0.5\]"):
        cvs.check_range(torch.tensor([[0.0, 0.1], [0.0, 0.7]], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"at t = 2.000 ps"):
        cvs.check_range(torch.tensor([[0.0, -0.1]], dtype=torch.float64), times=[2.0])
