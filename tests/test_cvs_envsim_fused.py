"""FusedEnvironmentSimilarity (the compiled CV kernel) equals the TorchScript EnvironmentSimilarity."""

import copy
import pickle
from fractions import Fraction

import numpy as np
import pytest
import torch

import openmm as mm

from openmm_nnbias import _ext
from openmm_nnbias.bias import NeuralBias, NeuralBiasForce
from openmm_nnbias.cvs import CVSet, EnvironmentSimilarity
from openmm_nnbias.systems.silicon import silicon_crystal, stillinger_weber_system
from openmm_nnbias.systems.silicon.sw_lammps import reference_frames

NO_COMPILER = _ext.compiler_missing()
pytestmark = pytest.mark.skipif(NO_COMPILER is not None, reason=f"fused kernels cannot be compiled: {NO_COMPILER}")
F64 = torch.float64
RTOL = 1e-10


def fused(*args, **kwargs):
    from openmm_nnbias.cvs.envsim_fused import FusedEnvironmentSimilarity

    return FusedEnvironmentSimilarity(*args, **kwargs)


def _frames() -> dict:
    """216-atom frames: crystal, strained, sheared (triclinic), liquid-like, and a crystal/liquid interface."""
    frames = {k: (torch.as_tensor(x), torch.as_tensor(b)) for k, (x, b) in reference_frames().items()}
    xt = silicon_crystal(3)
    rng = np.random.default_rng(11)
    top = xt.positions[:, 2] > xt.box[2, 2] / 2
    noise = np.where(top[:, None], rng.normal(0, 0.05, xt.positions.shape), rng.normal(0, 0.005, xt.positions.shape))
    frames["interface"] = (torch.as_tensor(xt.positions + noise), torch.as_tensor(xt.box))
    return frames


FRAMES = _frames()


def _same(a, b, k=None, r0=0.5, rtol=RTOL) -> None:
    """Values and Jacobians ``a`` (fused) and ``b`` (TorchScript) to ``rtol`` relative (Jacobians relative to
    their largest entry, at least 1 nm⁻¹).

    Where an atom's ``x = k/r0`` is within 10⁻³ of 1 (``k``: the per-atom similarities), the TorchScript
    switch derivative ``(−nn x^(nn−1) den + mm x^(mm−1) num)/den²`` itself loses digits as ε/(x − 1)²
    (cancellation of num = 1 − x^nn and den = 1 − x^mm); the Jacobians are then compared to that accuracy.
    The fused switch is exact there (test_switch_is_accurate_near_r0)."""
    (v1, j1), (v2, j2) = a, b
    assert v1.shape == v2.shape and j1.shape == j2.shape
    assert abs(float(v1[0]) - float(v2[0])) <= rtol * abs(float(v2[0]))
    jtol = rtol
    if k is not None:
        t = float((k / r0 - 1.0).abs().min())
        if t < 1e-3:
            jtol += float(np.finfo(float).eps) / max(t, 1e-6) ** 2
    assert float((j1 - j2).abs().max()) <= jtol * max(float(j2.abs().max()), 1.0)


@pytest.mark.parametrize("name", list(FRAMES))
def test_value_jacobian_and_per_atom_equal_torchscript(name):
    x, box = FRAMES[name]
    ref = torch.jit.script(EnvironmentSimilarity(range(216)))
    cv = torch.jit.script(fused(range(216)))
    _same(cv.value_and_jacobian(x, box), ref.value_and_jacobian(x, box))
    assert float((cv.per_atom(x, box) - ref.per_atom(x, box)).abs().max()) < 1e-12
    assert float(cv(x, box)[0]) == pytest.approx(float(ref(x, box)[0]), rel=RTOL)


def test_reused_list_under_moves_and_barostat_like_box_scaling():
    """One fused CV reused over a random walk and box rescaling by 1 ± 0.3 % (plus a wrapped atom) equals
    the TorchScript CV evaluated afresh; the list is rebuilt only now and then."""
    x, box = FRAMES["liquid-like"]
    cv = torch.jit.script(fused(range(216)))
    gen = torch.Generator().manual_seed(5)
    y = x.clone()
    for step in range(16):
        y = y + 0.004 * torch.randn(y.shape, dtype=F64, generator=gen)
        scale = 1.0 + 0.003 * ((step // 4) % 3 - 1)
        frame = y * scale
        if step == 15:
            frame[3] += box[1] * scale
        ref = EnvironmentSimilarity(range(216), skin=0.0)
        _same(cv.value_and_jacobian(frame, box * scale), ref.value_and_jacobian(frame, box * scale),
              k=ref.per_atom(frame, box * scale))
        # the list logic alone: a fresh fused CV (which builds its list) gives the same numbers
        _same(cv.value_and_jacobian(frame, box * scale), fused(range(216)).value_and_jacobian(frame, box * scale),
              rtol=1e-13)
    assert 1 < cv.n_builds < 16


def test_switch_is_accurate_near_r0():
    """The rational switch 1 − s(k/r0) and its derivative against exact rational arithmetic, near and at
    x = k/r0 = 1 (PLUMED's limit for |x − 1| < 10⁻⁶) and far from it."""
    ts = [0.5, -0.5, 0.3, -0.9, 0.05, -0.05, 1e-3, -1e-3, 3.5e-5, -3.5e-5, 2e-6, -2e-6, 5e-7, 0.0]
    ks = [0.5 * (1 + t) for t in ts]
    value, dvalue = torch.ops.openmm_nnbias.envsim_switch(torch.tensor(ks, dtype=F64), 0.5, 12, 24)
    for k, v, d in zip(ks, value.tolist(), dvalue.tolist()):
        x = Fraction(k) / Fraction(1, 2)
        if abs(x - 1) < Fraction(1, 10 ** 6):
            s, ds = Fraction(12, 24), Fraction(12 * (12 - 24), 48)
        else:
            num, den = 1 - x ** 12, 1 - x ** 24
            s, ds = num / den, (-12 * x ** 11 * den + 24 * x ** 23 * num) / den ** 2
        assert v == pytest.approx(float(1 - s), rel=1e-13, abs=1e-16), k
        assert d == pytest.approx(float(-2 * ds), rel=1e-12, abs=1e-16), k


def test_subset_of_atoms_no_box_one_environment_and_the_direct_gaussians():
    """Atom subsets, no periodic box (a cluster), a single reference environment, and a σ small
    enough that the Gaussians are evaluated one by one (no factorization)."""
    x, box = FRAMES["sheared"]
    atoms = list(range(0, 216, 2)) + [1, 3]
    for kwargs in ({}, {"references": torch.tensor([[0.1, 0.1, 0.1], [-0.1, -0.1, 0.1], [0.05, 0.2, -0.1]])},
                   {"sigma": 0.004}, {"lam": 20.0, "r0": 0.3, "nn": 6, "mm": 10}):
        ref, cv = EnvironmentSimilarity(atoms, **kwargs), fused(atoms, **kwargs)
        _same(cv.value_and_jacobian(x, box), ref.value_and_jacobian(x, box))
        _same(cv.value_and_jacobian(x), ref.value_and_jacobian(x))  # box then no box: the list follows


def test_batches_autograd_copies_and_box_errors():
    x, box = FRAMES["interface"]
    ref, cv = EnvironmentSimilarity(range(216)), fused(range(216))
    frames, boxes = torch.stack([x, FRAMES["liquid-like"][0]]), torch.stack([box, FRAMES["liquid-like"][1]])
    assert torch.allclose(cv(frames, boxes), ref(frames, boxes), rtol=RTOL, atol=0)
    xg = x.clone().requires_grad_(True)  # autograd: the TorchScript route of the parent class
    (grad,) = torch.autograd.grad(cv(xg, box)[0], xg)
    assert float((grad - cv.value_and_jacobian(x, box)[1][0]).abs().max()) < 1e-10
    for other in (copy.deepcopy(cv), pickle.loads(pickle.dumps(cv)), cv.merged_with([])):
        _same(other.value_and_jacobian(x, box), ref.value_and_jacobian(x, box))
    with pytest.raises(ValueError, match="half the shortest box width"):
        cv(x, box * 0.3)


def test_unpickled_in_a_fresh_process(tmp_path):
    """A pickled CV (as sent to a learner process) loads the operators where it is unpickled."""
    import subprocess
    import sys

    x, box = FRAMES["liquid-like"]
    cv = fused(range(216))
    path = tmp_path / "cv.pkl"
    path.write_bytes(pickle.dumps((cv, x, box)))
    code = ("import pickle, sys, torch; cv, x, box = pickle.loads(open(sys.argv[1], 'rb').read()); "
            "print(repr(float(cv.value_and_jacobian(x, box)[0][0])))")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert float(out.stdout.split()[-1]) == float(cv.value_and_jacobian(x, box)[0][0])


def test_saved_and_reloaded_module(tmp_path):
    x, box = FRAMES["liquid-like"]
    cv = torch.jit.script(fused(range(216)))
    path = str(tmp_path / "envsim.pt")
    cv.save(path)
    loaded = torch.jit.load(path)
    _same(loaded.value_and_jacobian(x, box), cv.value_and_jacobian(x, box))


def test_bias_force_equals_the_torchscript_cv():
    """A NeuralBiasForce (torch backend) on the fused CV gives the energy and forces of the same bias on
    the TorchScript CV, inside a Context with the fused SW route (Reference platform)."""
    x, box = FRAMES["interface"]
    out = []
    for make in (EnvironmentSimilarity, fused):
        cvs = CVSet([make(range(216))])
        bias = NeuralBias.from_cvs(cvs, hidden=(8, 8), seed=3, zero_output=False)
        system = stillinger_weber_system(216, box.numpy(), route="fused")
        force = NeuralBiasForce(cvs, bias, backend="torch")
        force.addToSystem(system)
        ctx = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
        ctx.setPeriodicBoxVectors(*[mm.Vec3(*row) for row in box.numpy()])
        ctx.setPositions(x.numpy())
        state = ctx.getState(getEnergy=True, getForces=True, groups={force.forceGroup})
        out.append((state.getPotentialEnergy()._value, state.getForces(asNumpy=True)._value))
        del ctx
    (e1, f1), (e2, f2) = out
    assert abs(np.max(np.abs(f2))) > 1e-3
    assert abs(e1 - e2) <= RTOL * max(abs(e2), 1.0)
    assert np.max(np.abs(f1 - f2)) <= RTOL * np.max(np.abs(f2))
