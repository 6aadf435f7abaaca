"""CVs in a periodic box: minimum image against mdtraj (periodic=True), finite differences,
TorchScript, batched boxes, CVSet.check_box."""

import mdtraj as md
import numpy as np
import pytest
import torch

from openmm_nnbias.cvs import Angle, CVSet, Distance, Position, Torsion

#: OpenMM reduced-form boxes (rows a, b, c in nm): |b_x| <= a_x/2, |c_x| <= a_x/2, |c_y| <= b_y/2
BOXES = {
    "rectangular": np.diag([3.0, 3.2, 3.4]),
    "triclinic": np.array([[3.0, 0.0, 0.0], [1.0, 2.9, 0.0], [-1.2, 1.1, 2.8]]),
}
PAIRS = [(1, 18), (5, 17), (0, 21), (4, 14)]
TRIPLES = [(4, 6, 8), (8, 14, 16), (0, 1, 2), (1, 4, 6)]
QUADS = [(4, 6, 8, 14), (6, 8, 14, 16), (0, 1, 4, 6), (8, 14, 16, 18)]


def wrap_atoms(frames: np.ndarray, box: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Translate ``frames`` by ``shift`` and put every atom (not molecule) into the box."""
    x = frames + shift
    frac = x @ np.linalg.inv(box)
    return x - np.floor(frac) @ box


def straddling_frames(dipeptide_frames, box):
    """Dipeptide frames centred on a box corner, wrapped atom by atom: every molecule is split."""
    centred = dipeptide_frames - dipeptide_frames.mean(axis=1, keepdims=True)
    wrapped = wrap_atoms(centred, box, np.zeros(3))
    split = np.ptp(wrapped, axis=1).min(axis=1)
    assert (split > 1.5).all()  # atoms on both sides of the box in every direction
    return centred, wrapped


def mdtraj_traj(frames, topology, box):
    traj = md.Trajectory(frames, md.Topology.from_openmm(topology))
    traj.unitcell_vectors = np.repeat(box[None], len(frames), axis=0).astype(np.float32)
    return traj


@pytest.mark.parametrize("boxname", sorted(BOXES))
def test_split_molecule_matches_mdtraj_periodic(dipeptide, dipeptide_frames, boxname):
    box = BOXES[boxname]
    whole, wrapped = straddling_frames(dipeptide_frames, box)
    traj = mdtraj_traj(wrapped, dipeptide.topology, box)
    x = torch.tensor(wrapped, dtype=torch.float64)
    b = torch.tensor(box, dtype=torch.float64)
    xw = torch.tensor(whole, dtype=torch.float64)
    for cv, ref in [(Distance(PAIRS, 0.0, 1.4), md.compute_distances(traj, PAIRS, periodic=True)),
                    (Angle(TRIPLES), md.compute_angles(traj, TRIPLES, periodic=True)),
                    (Torsion(QUADS), md.compute_dihedrals(traj, QUADS, periodic=True))]:
        ours = cv(x, b).numpy()
        diff = ours - ref
        if cv.periodic:
            diff = np.angle(np.exp(1j * diff))
        assert np.abs(diff).max() < 2e-5, type(cv).__name__  # mdtraj works in float32
        # and, in float64, the same as the unbroken molecule without a box
        np.testing.assert_allclose(ours, cv(xw).numpy(), rtol=0, atol=1e-12)
        assert np.abs(cv(x).numpy() - ours).max() > 0.1  # without the box the CVs are wrong


@pytest.mark.parametrize("boxname", sorted(BOXES))
def test_intermolecular_distance_across_the_box(dipeptide, boxname):
    """Pairs of atoms (as of two molecules) at known separations, wrapped independently."""
    box = BOXES[boxname]
    rng = np.random.default_rng(0)
    first = rng.uniform(0.0, 1.0, size=(30, 11, 3)) @ box  # anywhere in the cell
    step = rng.normal(size=(30, 11, 3))
    length = rng.uniform(0.1, 1.35, size=(30, 11))  # below half the shortest width (1.4 nm)
    step *= (length / np.linalg.norm(step, axis=-1))[..., None]
    frames = wrap_atoms(np.concatenate([first, first + step], axis=1), box, np.zeros(3))
    traj = mdtraj_traj(frames, dipeptide.topology, box)
    pairs = [(i, i + 11) for i in range(11)]
    ref = md.compute_distances(traj, pairs, periodic=True)
    ours = Distance(pairs, 0.0, 1.4)(torch.tensor(frames), torch.tensor(box)).numpy()
    np.testing.assert_allclose(ours, ref, atol=2e-6)
    np.testing.assert_allclose(ours, length, rtol=0, atol=1e-12)
    plain = Distance(pairs, 0.0, 1.4)(torch.tensor(frames)).numpy()
    assert (plain > length + 1.0).mean() > 0.2  # many pairs straddle the box


def test_minimum_image_follows_openmm_order():
    """c, then b, then a (OpenMM's ReferenceForce::getDeltaRPeriodic)."""
    from openmm_nnbias.cvs import minimum_image

    box = torch.tensor(BOXES["triclinic"])
    d = torch.tensor([[2.0, -2.5, 2.6], [0.1, 0.2, 0.3], [-1.6, 1.5, -1.5]], dtype=torch.float64)
    expected = []
    for v in d.clone():
        for k in (2, 1, 0):
            v = v - box[k] * torch.round(v[k] / box[k, k])
        expected.append(v)
    torch.testing.assert_close(minimum_image(d, box), torch.stack(expected), rtol=0, atol=1e-15)
    # image of the lattice: d and the result differ by integer combinations of a, b, c
    n = (d - minimum_image(d, box)) @ torch.linalg.inv(box)
    torch.testing.assert_close(n, n.round(), rtol=0, atol=1e-12)


def all_cvs():
    return [Torsion(QUADS), Distance(PAIRS, 0.0, 1.4), Angle(TRIPLES),
            Position([0, 3], axis=["x", "z"], lower=-5.0, upper=5.0)]


@pytest.mark.parametrize("boxname", sorted(BOXES))
@pytest.mark.parametrize("cv", all_cvs(), ids=lambda c: type(c).__name__)
def test_jacobian_with_box_matches_finite_differences(cv, dipeptide_frames, boxname):
    box = torch.tensor(BOXES[boxname])
    _, wrapped = straddling_frames(dipeptide_frames[:1], BOXES[boxname])
    x = torch.tensor(wrapped[0])
    value, jac = torch.jit.script(cv).value_and_jacobian(x, box)
    torch.testing.assert_close(value, cv(x, box), rtol=0, atol=1e-13)
    h = 1e-6
    for i, rows in enumerate(cv.atoms.tolist()):
        for k, atom in enumerate(rows):
            for dim in range(3):
                xp, xm = x.clone(), x.clone()
                xp[atom, dim] += h
                xm[atom, dim] -= h
                fd = (cv(xp, box)[i] - cv(xm, box)[i]) / (2 * h)
                assert abs(float(fd - jac[i, k, dim])) < 1e-6 * max(1.0, abs(float(fd)))


def test_cvset_scripted_batched_box_equals_eager(dipeptide_frames):
    cvs = CVSet([Torsion(QUADS[0], "phi"), Distance(PAIRS[0], 0.0, 1.4, names="d"),
                 Angle(TRIPLES[0], names="a"), Torsion(QUADS[1], "psi"),
                 Position(0, "x", -5.0, 5.0, names="x0")])
    scripted = torch.jit.script(cvs)
    boxes = np.stack([BOXES["rectangular"], BOXES["triclinic"]] * 2)
    frames = np.stack([straddling_frames(dipeptide_frames[i:i + 1], boxes[i])[1][0] for i in range(4)])
    x, b = torch.tensor(frames), torch.tensor(boxes)
    eager = cvs(x, b)
    assert eager.shape == (4, 5)
    torch.testing.assert_close(scripted(x, b), eager, rtol=0, atol=1e-14)
    for i in range(4):  # one frame with its own (3, 3) box, and the value_and_jacobians path
        torch.testing.assert_close(cvs(x[i], b[i]), eager[i], rtol=0, atol=1e-13)
        values, _ = scripted.value_and_jacobians(x[i], b[i])
        torch.testing.assert_close(values, eager[i], rtol=0, atol=1e-13)
    same = cvs(x[:2], b[1])  # one (3, 3) box for a batch of frames
    torch.testing.assert_close(same[1], eager[1], rtol=0, atol=1e-14)
    torch.testing.assert_close(scripted(x), cvs(x), rtol=0, atol=0)  # box=None: no periodicity
    assert cvs(x.float(), b.float()).dtype == torch.float32


def test_position_ignores_the_box():
    cv = Position([0, 0], axis=["x", "y"], lower=-10.0, upper=10.0)
    x = torch.tensor([[7.3, -4.1, 0.5]], dtype=torch.float64)
    box = torch.tensor(BOXES["triclinic"])
    assert cv(x, box).tolist() == [7.3, -4.1]
    value, jac = cv.value_and_jacobian(x, box)
    assert value.tolist() == [7.3, -4.1] and jac[:, 0].tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]


def test_check_box_refuses_distance_ranges_beyond_half_the_box():
    cvs = CVSet([Torsion([0, 1, 2, 3], "phi"), Distance([0, 5], 0.1, 1.6, names="d_long"),
                 Angle([0, 1, 2], names="a")])
    cvs.check_box(np.diag([3.4, 3.4, 3.4]))  # 1.6 <= 1.7
    with pytest.raises(ValueError, match=r"Distance CV 'd_long': its upper bound 1.6 nm.*half the shortest "
                                         r"box width 1.4 nm"):
        cvs.check_box(BOXES["triclinic"])  # widths 3.0, 2.9, 2.8
    import openmm as mm
    from openmm import unit

    vectors = [mm.Vec3(3.0, 0, 0), mm.Vec3(0, 3.0, 0), mm.Vec3(0, 0, 3.0)] * unit.nanometer
    with pytest.raises(ValueError, match="d_long"):
        cvs.check_box(vectors)  # an OpenMM Quantity, as System.getDefaultPeriodicBoxVectors() returns
    with pytest.raises(ValueError, match="box must have shape"):
        cvs.check_box(np.eye(2))
    with pytest.raises(ValueError, match="reduced form"):
        cvs.check_box([[3.0, 0.1, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]])
    with pytest.raises(TypeError, match="box"):
        cvs.check_box("3 nm")
    with pytest.raises(TypeError, match="box"):
        cvs.check_box(["300", "030", "003"])
