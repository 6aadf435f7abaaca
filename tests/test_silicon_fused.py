"""The compiled Stillinger-Weber route ("fused"): equal to the TorchScript route and to LAMMPS, inside
an OpenMM Context, under box rescaling, saved and reloaded; the loader's error without a compiler."""

from __future__ import annotations

import numpy as np
import pytest
import torch  # noqa: F401  (before openmm: openmm-torch's kernels need torch's libraries)
import openmm

from openmm_nnbias import _ext
from openmm_nnbias.systems.silicon import SW_SILICON, silicon_crystal, stillinger_weber_module, stillinger_weber_system
from openmm_nnbias.systems.silicon.md import silicon_npt_context
from openmm_nnbias.systems.silicon.sw_lammps import LammpsStillingerWeber, lammps_failure, reference_frames

NO_COMPILER = _ext.compiler_missing()
pytestmark = pytest.mark.skipif(NO_COMPILER is not None, reason=f"fused kernels cannot be compiled: {NO_COMPILER}")
LAMMPS_MISSING = lammps_failure()
RTOL = 1e-10
#: force scale of SW silicon, ε/σ ≈ 1 000 kJ/mol/nm: forces are compared relative to max(max|F|, this), so
#: that the (near-)zero forces of the perfect crystal are not compared with LAMMPS's rounding residue
FORCE_SCALE = SW_SILICON.epsilon_kj / SW_SILICON.sigma


def _frames() -> dict:
    """The LAMMPS reference frames (crystal, strained, sheared, liquid-like) and a crystal/liquid interface."""
    frames = dict(reference_frames())
    xtal = silicon_crystal(3)
    rng = np.random.default_rng(11)
    top = xtal.positions[:, 2] > xtal.box[2, 2] / 2
    noise = np.where(top[:, None], rng.normal(0, 0.05, xtal.positions.shape), rng.normal(0, 0.005, xtal.positions.shape))
    frames["interface"] = (xtal.positions + noise, xtal.box)
    return frames


FRAMES = _frames()


def fused_module(n_atoms: int, skin: float = 0.15):
    from openmm_nnbias.systems.silicon._sw_fused import fused_stillinger_weber_module

    return fused_stillinger_weber_module(n_atoms, SW_SILICON, skin)


def _close(e1, f1, e2, f2, rtol=RTOL) -> None:
    e1, e2 = float(e1), float(e2)
    f1, f2 = np.asarray(f1), np.asarray(f2)
    assert abs(e1 - e2) <= rtol * abs(e2), (e1, e2)
    # forces relative to the largest force, at least ε/σ (the perfect crystal has none)
    assert np.max(np.abs(f1 - f2)) <= rtol * max(np.max(np.abs(f2)), FORCE_SCALE)


def _context(route: str, box, platform: str = "Reference") -> openmm.Context:
    system = stillinger_weber_system(216, box, route=route)
    return openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform))


def _evaluate(context: openmm.Context, positions, box):
    context.setPeriodicBoxVectors(*[openmm.Vec3(*row) for row in np.asarray(box)])
    context.setPositions(np.asarray(positions))
    state = context.getState(getEnergy=True, getForces=True)
    return state.getPotentialEnergy()._value, state.getForces(asNumpy=True)._value


@pytest.mark.parametrize("name", list(FRAMES))
def test_module_equals_torchscript_module(name):
    positions, box = FRAMES[name]
    args = (torch.tensor(positions), torch.tensor(box))
    e1, f1 = fused_module(len(positions))(*args)
    e2, f2 = stillinger_weber_module(len(positions))(*args)
    assert e1.dtype == f1.dtype == torch.float64 and f1.shape == (216, 3)
    _close(e1, f1, e2, f2)


@pytest.mark.skipif(LAMMPS_MISSING is not None, reason=f"LAMMPS not usable: {LAMMPS_MISSING}")
def test_route_in_a_context_equals_lammps_and_torch_route():
    """Energies and forces through TorchForce (Reference platform) equal LAMMPS pair_style sw and the
    TorchScript route to 1e-10 on every frame; one Context per route, reused over the frames."""
    box0 = FRAMES["perfect"][1]
    fused, torch_route = _context("fused", box0), _context("torch", box0)
    for name, (positions, box) in FRAMES.items():
        e_fused, f_fused = _evaluate(fused, positions, box)
        _close(e_fused, f_fused, *_evaluate(torch_route, positions, box))
        lmp = LammpsStillingerWeber(positions, box)
        try:
            _close(e_fused, f_fused, lmp.energy(), lmp.forces())
        finally:
            lmp.close()


def test_verlet_list_follows_moves_box_changes_and_wrapping():
    """One module reused over a random walk with barostat-like box moves and a wrapped atom equals
    fresh TorchScript modules, and rebuilds its list only now and then."""
    xtal = silicon_crystal(3)
    box = torch.tensor(xtal.box)
    reused = fused_module(xtal.n_atoms)
    rng = np.random.default_rng(3)
    pos = xtal.positions.copy()
    for k in range(12):
        pos = pos + rng.normal(0, 0.006, pos.shape)
        scale = 1.0 + 0.003 * (k // 4)
        frame = pos * scale
        if k == 11:
            frame[k] += xtal.box[1] * scale
        args = (torch.tensor(frame), box * scale)
        _close(*reused(*args), *stillinger_weber_module(xtal.n_atoms)(*args))
    assert 1 < reused.n_builds < 12


def test_far_unwrapped_atoms_and_float32_positions():
    xtal = silicon_crystal(3)
    frame = xtal.positions + np.random.default_rng(8).normal(0, 0.02, xtal.positions.shape)
    frame[::7] += 5 * xtal.box[0] - 3 * xtal.box[2]
    module = fused_module(xtal.n_atoms)
    for scale in (1.0, 1.004):
        args = (torch.tensor(frame), torch.tensor(xtal.box) * scale)
        _close(*module(*args), *stillinger_weber_module(xtal.n_atoms)(*args))
    # float32 input (as some platforms hand it over) is computed in float64
    e32, f32 = module(torch.tensor(frame, dtype=torch.float32), torch.tensor(xtal.box, dtype=torch.float32))
    e64 = module(torch.tensor(frame), torch.tensor(xtal.box))[0]
    assert e32.dtype == torch.float64 and abs(float(e32) - float(e64)) < 1e-3 * abs(float(e64))


def test_npt_md_with_barostat_follows_the_torch_route():
    """50 NPT steps (barostat every 5 steps, 1 700 K) on the CPU platform: the fused and torch routes
    give the same trajectory and box (the Verlet list survives the box rescaling)."""
    out = {}
    for route in ("fused", "torch"):
        context = silicon_npt_context(1700.0, n_cells=3, route=route, barostat_interval=5, seed=4)
        context.getIntegrator().step(50)
        state = context.getState(getPositions=True, getEnergy=True)
        out[route] = (state.getPositions(asNumpy=True)._value, state.getPeriodicBoxVectors(asNumpy=True)._value,
                      state.getPotentialEnergy()._value)
    (x1, b1, e1), (x2, b2, e2) = out["fused"], out["torch"]
    assert abs(b1[0, 0] - silicon_crystal(3).box[0, 0]) > 1e-6  # the box moved
    assert np.max(np.abs(b1 - b2)) < 1e-9 and np.max(np.abs(x1 - x2)) < 1e-8 and abs(e1 - e2) < 1e-8 * abs(e2)


def test_saved_module_reloads_and_calls_the_operator(tmp_path):
    positions, box = FRAMES["liquid-like"]
    args = (torch.tensor(positions), torch.tensor(box))
    module = fused_module(216)
    path = str(tmp_path / "sw_fused.pt")
    module.save(path)
    loaded = torch.jit.load(path)
    assert "openmm_nnbias::sw_energy_forces" in str(loaded.graph) or "sw_energy_forces" in loaded.code
    _close(*loaded(*args), *module(*args))
    # a TorchForce built from the file runs it too
    from openmm_nnbias.bias.backends import import_torch_force

    force = import_torch_force()(path)
    force.setUsesPeriodicBoundaryConditions(True)
    force.setOutputsForces(True)
    system = openmm.System()
    for _ in range(216):
        system.addParticle(28.0855)
    system.addForce(force)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    _close(*_evaluate(context, positions, box), *module(*args))


def test_missing_compiler_gives_one_clear_error(monkeypatch):
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    assert "no C++ compiler" in _ext.compiler_missing()
    monkeypatch.setattr(_ext, "_LOADED", False)
    monkeypatch.setattr(_ext, "ops_loaded", lambda: False)
    with pytest.raises(_ext.FusedKernelsUnavailable, match="no C\\+\\+ compiler.*TorchScript routes need no compiler"):
        stillinger_weber_system(216, silicon_crystal(3).box, route="fused")
