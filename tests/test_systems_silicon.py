"""Stillinger-Weber silicon: crystal, every route, LAMMPS as the independent reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch  # noqa: F401  (before openmm: openmm-torch's kernels need torch's libraries)
import openmm

from openmm_nnbias.systems.silicon import (
    EV_TO_KJ_PER_MOL,
    SW_ROUTES,
    SW_SILICON,
    silicon_crystal,
    stillinger_weber_module,
    stillinger_weber_system,
    virial_pressure,
)
from openmm_nnbias.systems.silicon.md import bragg_order, density_g_cm3, silicon_npt_context
from openmm_nnbias.systems.silicon.sw_lammps import (
    LammpsStillingerWeber,
    lammps_failure,
    lammps_sw_file,
    read_sw_file,
    reference_frames,
)

LAMMPS_MISSING = lammps_failure()
needs_lammps = pytest.mark.skipif(LAMMPS_MISSING is not None, reason=f"LAMMPS not usable: {LAMMPS_MISSING}")


class Evaluator:
    """Energy (kJ/mol) and forces (kJ/mol/nm) of one route for any positions and box."""

    def __init__(self, n_atoms: int, box, route: str, platform: str = "Reference") -> None:
        system = stillinger_weber_system(n_atoms, box, route=route)
        self.context = openmm.Context(system, openmm.VerletIntegrator(0.001),
                                      openmm.Platform.getPlatformByName(platform))

    def __call__(self, positions, box) -> tuple[float, np.ndarray]:
        self.context.setPeriodicBoxVectors(*[openmm.Vec3(*row) for row in np.asarray(box)])
        self.context.setPositions(np.asarray(positions))
        state = self.context.getState(getEnergy=True, getForces=True)
        return (state.getPotentialEnergy()._value, np.asarray(state.getForces(asNumpy=True)._value))

    def pressure(self, positions, box) -> np.ndarray:
        """Virial pressure (bar) ``[xx, yy, zz]`` by finite differences of the energy."""
        self(positions, box)
        return virial_pressure(self.context)


FRAMES = reference_frames()


@pytest.fixture(scope="module")
def torch_route() -> Evaluator:
    xtal = silicon_crystal(3)
    return Evaluator(xtal.n_atoms, xtal.box, "torch")


def test_crystal_geometry():
    xtal = silicon_crystal(3)
    assert xtal.n_atoms == 216
    np.testing.assert_allclose(np.diag(xtal.box), 1.6293)
    d = xtal.positions[:, None] - xtal.positions[None]
    d -= np.round(d / 1.6293) * 1.6293
    r = np.linalg.norm(d, axis=2)
    np.testing.assert_array_equal(np.sum((r > 0) & (r < 0.3), axis=1), 4)
    np.testing.assert_allclose(np.min(r[r > 0]), 0.5431 * np.sqrt(3) / 4, rtol=1e-12)
    assert abs(xtal.density - 2.329) < 0.002  # g/cm^3


@pytest.mark.parametrize("route", SW_ROUTES)
def test_perfect_diamond_energy(route):
    """-4.3366 eV/atom at a = 0.5431 nm (the three-body term vanishes at the tetrahedral angle)."""
    xtal = silicon_crystal(3)
    energy, forces = Evaluator(xtal.n_atoms, xtal.box, route, "CPU")(xtal.positions, xtal.box)
    assert abs(energy / xtal.n_atoms / EV_TO_KJ_PER_MOL + 4.3366) < 5e-5
    # the CPU platform's custom forces run in single precision
    assert np.max(np.abs(forces)) < (0.05 if route == "custom" else 1e-6)


def test_routes_agree():
    """All routes on a 64-atom displaced crystal, in double precision (Reference platform)."""
    xtal = silicon_crystal(2)
    positions = xtal.positions + np.random.default_rng(5).normal(0, 0.02, xtal.positions.shape)
    results = {route: Evaluator(xtal.n_atoms, xtal.box, route)(positions, xtal.box) for route in SW_ROUTES}
    e_ref, f_ref = results["torch"]
    for route, (energy, forces) in results.items():
        assert abs(energy - e_ref) < 1e-10 * abs(e_ref), route
        assert np.max(np.abs(forces - f_ref)) < 1e-9 * np.max(np.abs(f_ref)), route


def test_forces_are_minus_energy_gradient(torch_route):
    positions, box = FRAMES["liquid-like"]
    _, forces = torch_route(positions, box)
    h = 1e-5
    for atom, axis in [(0, 0), (17, 1), (101, 2), (215, 0)]:
        plus, minus = positions.copy(), positions.copy()
        plus[atom, axis] += h
        minus[atom, axis] -= h
        fd = -(torch_route(plus, box)[0] - torch_route(minus, box)[0]) / (2 * h)
        assert abs(fd - forces[atom, axis]) < 1e-6 * np.max(np.abs(forces))


def test_verlet_list_follows_moves_box_changes_and_wrapping():
    """One module reused over changing frames equals a fresh module (which builds its list)."""
    xtal = silicon_crystal(3)
    box = torch.tensor(xtal.box)
    reused = stillinger_weber_module(xtal.n_atoms)
    rng = np.random.default_rng(3)
    pos = xtal.positions.copy()
    for k in range(12):
        pos = pos + rng.normal(0, 0.006, pos.shape)  # random walk: a few rebuilds
        scale = 1.0 + 0.003 * (k // 4)  # barostat-like box moves at k = 4 and 8
        frame = pos * scale
        if k == 11:
            frame[k] += xtal.box[1] * scale  # an atom wrapped into another image
        args = (torch.tensor(frame), box * scale)
        e1, f1 = reused(*args)
        e2, f2 = stillinger_weber_module(xtal.n_atoms)(*args)
        assert abs(float(e1 - e2)) < 1e-9 * abs(float(e2))
        assert float(torch.max(torch.abs(f1 - f2))) < 1e-9 * float(torch.max(torch.abs(f2)))
    assert 1 < reused.n_builds < 12


def test_verlet_list_with_far_unwrapped_atoms_and_a_new_box():
    """Atoms several boxes away (unwrapped), then the box alone changes: still exact."""
    xtal = silicon_crystal(3)
    frame = xtal.positions.copy()
    frame[::7] += 5 * xtal.box[0] - 3 * xtal.box[2]
    reused = stillinger_weber_module(xtal.n_atoms)
    for scale in (1.0, 1.004, 1.008):
        args = (torch.tensor(frame), torch.tensor(xtal.box) * scale)
        e1, f1 = reused(*args)
        e2, f2 = stillinger_weber_module(xtal.n_atoms)(*args)
        assert abs(float(e1 - e2)) < 1e-9 * abs(float(e2))
        assert float(torch.max(torch.abs(f1 - f2))) < 1e-6


def test_autograd_module_equals_hand_written_forces():
    positions, box = FRAMES["sheared"]
    args = (torch.tensor(positions), torch.tensor(box))
    e1, f1 = stillinger_weber_module(len(positions))(*args)
    e2, f2 = stillinger_weber_module(len(positions), analytic_forces=False)(*args)
    assert abs(float(e1 - e2)) < 1e-10 * abs(float(e1))
    assert float(torch.max(torch.abs(f1 - f2))) < 1e-10 * float(torch.max(torch.abs(f1)))


@pytest.mark.parametrize("route", SW_ROUTES)
def test_no_nan_at_the_cutoff(route):
    """Pairs and a triplet just inside, at and just outside a σ: finite, continuous, ~zero."""
    rc = SW_SILICON.cutoff
    box = np.eye(3) * 1.2
    for r in (rc * (1 - 1e-9), rc * (1 - 1e-15), rc, rc * (1 + 1e-9), rc + 1e-4):
        positions = np.array([[0.1, 0.1, 0.1], [0.1 + r, 0.1, 0.1], [0.1, 0.1 + r, 0.1],
                              [0.7, 0.7, 0.7]])
        energy, forces = Evaluator(4, box, route)(positions, box)
        assert np.isfinite(energy) and np.all(np.isfinite(forces))
        assert abs(energy) < 1e-12 and np.max(np.abs(forces)) < 1e-9


def _nve_energy_error(dt: float, time: float = 0.15) -> tuple[float, float]:
    """Largest |E_total(t) - E_total(0)| (kJ/mol) over a 1 700 K NVE run, and the kinetic energy."""
    xtal = silicon_crystal(3)
    integrator = openmm.VerletIntegrator(dt)
    context = openmm.Context(stillinger_weber_system(xtal.n_atoms, xtal.box), integrator,
                             openmm.Platform.getPlatformByName("CPU"))
    context.setPositions(xtal.positions)
    context.setVelocitiesToTemperature(3400.0, 1)  # equipartition: ~1 700 K after 100 fs

    def total() -> float:
        state = context.getState(getEnergy=True)
        return (state.getPotentialEnergy() + state.getKineticEnergy())._value

    start = total()
    errors = []
    for _ in range(6):
        integrator.step(int(round(time / dt / 6)))
        errors.append(abs(total() - start))
    return max(errors), context.getState(getEnergy=True).getKineticEnergy()._value


def test_nve_energy_is_conserved():
    """On the CPU platform: no drift, and the Verlet error shrinks as dt^2 (a force layout or
    Verlet-list error would not)."""
    coarse, kinetic = _nve_energy_error(0.001)
    fine, _ = _nve_energy_error(0.0005)
    assert coarse < 5e-3 * kinetic
    assert 3.0 < coarse / fine < 5.0


def test_argument_errors():
    xtal = silicon_crystal(3)
    with pytest.raises(TypeError, match="n_cells"):
        silicon_crystal(2.0)
    with pytest.raises(ValueError, match="lattice"):
        silicon_crystal(2, lattice=-1.0)
    with pytest.raises(ValueError, match="route"):
        stillinger_weber_system(216, xtal.box, route="fast")
    with pytest.raises(TypeError, match="route"):
        stillinger_weber_system(216, xtal.box, route=1)
    with pytest.raises(TypeError, match="n_atoms"):
        stillinger_weber_system("216", xtal.box)
    with pytest.raises(ValueError, match="box"):
        stillinger_weber_system(8, np.eye(3) * 0.9)
    with pytest.raises(ValueError, match="box"):
        stillinger_weber_system(8, np.eye(2))


@needs_lammps
def test_parameters_match_lammps_si_sw():
    theirs = read_sw_file(lammps_sw_file())
    for name in SW_SILICON.__dataclass_fields__:
        assert abs(getattr(theirs, name) - getattr(SW_SILICON, name)) < 1e-11, name


@needs_lammps
@pytest.mark.parametrize("name", list(FRAMES))
def test_against_lammps(name, torch_route):
    """Energy, forces and virial pressure equal LAMMPS pair_style sw (relative 1e-6)."""
    positions, box = FRAMES[name]
    lmp = LammpsStillingerWeber(positions, box)
    try:
        energy, forces = torch_route(positions, box)
        assert abs(energy - lmp.energy()) < 1e-6 * abs(lmp.energy())
        f_lmp = lmp.forces()
        assert np.max(np.abs(forces - f_lmp)) < 1e-6 * max(np.max(np.abs(f_lmp)), 1.0)
        p_lmp = lmp.pressure()[:3]
        p_ours = torch_route.pressure(positions, box)
        assert np.max(np.abs(p_ours - p_lmp)) < 1e-6 * np.max(np.abs(p_lmp)) + 1e-3
    finally:
        lmp.close()


def test_bragg_order_and_density():
    xtal = silicon_crystal(3)
    assert abs(bragg_order(xtal.positions, xtal.box) - 1.0) < 1e-12
    rng = np.random.default_rng(0)
    liquid = rng.uniform(0, 1.6293, (216, 3))
    assert bragg_order(liquid, xtal.box) < 0.2
    assert abs(density_g_cm3(216, xtal.box) - xtal.density) < 1e-12


def test_npt_context_moves_the_box_and_keeps_the_crystal():
    """200 steps at 1 400 K, 1 atm, barostat every 10 steps: box changes, crystal stays, no NaN."""
    context = silicon_npt_context(1400.0, barostat_interval=10, seed=3)
    context.getIntegrator().step(200)
    state = context.getState(getEnergy=True, getPositions=True)
    box = state.getPeriodicBoxVectors(asNumpy=True)._value
    assert np.isfinite(state.getPotentialEnergy()._value)
    assert abs(box[0, 0] - 1.6293) > 1e-6 and box[0, 0] == box[1, 1] == box[2, 2]
    assert bragg_order(state.getPositions(asNumpy=True)._value, box) > 0.6


def test_npt_context_argument_errors():
    with pytest.raises(ValueError, match="temperature"):
        silicon_npt_context(-5.0)
    with pytest.raises(TypeError, match="barostat_interval"):
        silicon_npt_context(1700.0, barostat_interval=2.5)
    with pytest.raises(ValueError, match="barostat"):
        silicon_npt_context(1700.0, barostat="flexible")
    with pytest.raises(ValueError, match="frozen"):
        silicon_npt_context(1700.0, frozen=[0])


def test_libmpi_is_looked_for_in_the_base_python_of_a_venv(monkeypatch, tmp_path):
    """A venv made with --system-site-packages has LAMMPS and mpich in its base Python: load libmpi from there."""
    import sys

    from openmm_nnbias.systems.silicon import sw_lammps

    base, venv = tmp_path / "base", tmp_path / "venv"
    (base / "lib").mkdir(parents=True)
    (base / "lib" / "libmpi.so.12").write_bytes(b"")
    monkeypatch.setattr(sys, "prefix", str(venv))
    monkeypatch.setattr(sys, "exec_prefix", str(venv))
    monkeypatch.setattr(sys, "base_prefix", str(base))
    monkeypatch.setattr(sys, "base_exec_prefix", str(base))
    found = [p for p in sw_lammps._libmpi_candidates() if __import__("os").path.exists(p)]
    assert found == [str(base / "lib" / "libmpi.so.12")]
