"""``deepves --system silicon-64`` / ``silicon``: the recipe, a smoke run of seconds and a restart."""

import os

import numpy as np
import pytest
import torch  # noqa: F401  (before openmmtorch)

import openmm as mm

from openmm_nnbias.cli import main
from openmm_nnbias.cvs import EnvironmentSimilarity
from openmm_nnbias.recipes import get_recipe
from openmm_nnbias.recipes.silicon import silicon_deepves_system


def _rows(path, usecols=None):
    return np.loadtxt(path, comments="#", ndmin=2, usecols=usecols)


def test_recipes_hold_the_paper_settings():
    for name, n, bins, stride in (("silicon", 216, 216, 500), ("silicon-64", 64, 64, 100)):
        r = get_recipe(name)
        assert r.temperature == 1700.0 and r.timestep == 0.002 and r.biasFactor == 100.0
        assert r.options["bins"] == bins and r.options["stride"] == stride
        # the paper's decay time, 2 000 iterations of 1 ps, in simulated time for both sizes
        assert r.options["tauDecay"] * stride * r.timestep == pytest.approx(2000.0)
        assert r.options["hidden"] == (48, 24, 12) and r.backend == "torch"
        built = r.builder(1)
        assert built.n_atoms == n
        cvs = r.buildCVs(built)
        assert isinstance(cvs.sources[0], EnvironmentSimilarity) and cvs.upper == [float(n)]
        baro = [f for f in built.system.getForces() if isinstance(f, mm.MonteCarloBarostat)]
        assert len(baro) == 1 and baro[0].getDefaultPressure().value_in_unit(mm.unit.bar) == pytest.approx(1.01325)


def test_silicon_system_arguments():
    with pytest.raises(TypeError, match="n_cells must be an int"):
        silicon_deepves_system(2.0)
    with pytest.raises(ValueError, match="n_cells must be >= 2"):
        silicon_deepves_system(1)
    with pytest.raises(ValueError, match="pressure must be > 0"):
        silicon_deepves_system(2, pressure=-1.0)


def test_silicon64_smoke_run_and_restart(tmp_path):
    out = str(tmp_path / "si")
    # stride 100 inner steps (the recipe's) = 50 outer steps of 4 fs (--mts 2 by default): iterations of 0.2 ps
    args = ["deepves", "--system", "silicon-64", "--out", out, "--stride", "100", "--no-progress"]
    assert main(args + ["--time", "0.6ps"]) == 0
    for name in ("colvar", "ves.log", "checkpoint.pt", "bias.pt", "fes_bias.dat"):
        assert os.path.exists(os.path.join(out, name)), name
    colvar = _rows(os.path.join(out, "colvar"))
    assert colvar.shape[1] == 4 and np.isfinite(colvar).all()
    np.testing.assert_allclose(colvar[-1, 0], 0.6, atol=1e-6)
    assert (colvar[:, 1] > 55).all() and (colvar[:, 1] <= 64).all()  # the crystal it starts from, hot
    log = _rows(os.path.join(out, "ves.log"), usecols=range(6))
    assert log.shape[0] == 3 and np.isfinite(log[:, 3]).all()
    fes = _rows(os.path.join(out, "fes_bias.dat"))
    assert fes.shape[0] == 64 and np.isfinite(fes[:, 1]).all()
    state = torch.load(os.path.join(out, "checkpoint.pt"), weights_only=False)
    assert state["config"]["target"]["kind"] == "WellTempered"
    assert main(args + ["--time", "1ps", "--restart"]) == 0
    log = _rows(os.path.join(out, "ves.log"), usecols=range(6))
    assert log.shape[0] == 5 and np.all(np.diff(log[:, 0]) == 1)  # iterations 3 and 4 appended
    colvar = _rows(os.path.join(out, "colvar"))
    np.testing.assert_allclose(colvar[-1, 0], 1.0, atol=1e-6)
    assert np.all(np.diff(colvar[:, 0]) > 0)


def test_silicon64_mts4_keeps_the_iteration_time(tmp_path):
    """--mts 4: 25 outer steps of 8 fs per 100-inner-step iteration, so the colvar still lands on 0.2 ps."""
    out = str(tmp_path / "si4")
    assert main(["deepves", "--system", "silicon-64", "--out", out, "--stride", "100", "--mts", "4",
                 "--time", "0.4ps", "--no-progress"]) == 0
    colvar = _rows(os.path.join(out, "colvar"))
    assert np.isfinite(colvar).all() and (colvar[:, 1] > 55).all() and (colvar[:, 1] <= 64).all()
    np.testing.assert_allclose(colvar[-1, 0], 0.4, atol=1e-6)
    log = _rows(os.path.join(out, "ves.log"), usecols=range(6))
    assert log.shape[0] == 2
    np.testing.assert_allclose(log[:, 1], [0.2, 0.4], atol=1e-6)


def test_run_ending_inside_an_iteration_says_so(tmp_path):
    out = str(tmp_path / "si_partial")
    with pytest.warns(UserWarning, match="ended 5 MD steps into an iteration of 25 steps"):
        assert main(["deepves", "--system", "silicon-64", "--out", out, "--stride", "100", "--mts", "4",
                     "--steps", "30", "--no-progress"]) == 0


def test_silicon_route_arguments():
    from openmm_nnbias.recipes.silicon import resolve_route

    with pytest.raises(ValueError, match="route must be one of"):
        silicon_deepves_system(2, route="lammps")
    with pytest.raises(TypeError, match="route must be a str"):
        resolve_route(1)
    assert resolve_route("torch") == "torch"


def test_auto_route_falls_back_to_torch_with_the_reason(monkeypatch):
    from openmm_nnbias import _ext

    def unavailable():
        raise _ext.FusedKernelsUnavailable("no C++ compiler (test)")

    monkeypatch.setattr(_ext, "load_ops", unavailable)
    with pytest.warns(RuntimeWarning, match=r"TorchScript route .* no C\+\+ compiler \(test\)"):
        built = silicon_deepves_system(2, skin=0.1)
    assert built.route == "torch"
    cv = get_recipe("silicon-64").buildCVs(built).sources[0]
    assert type(cv) is EnvironmentSimilarity
    with pytest.raises(_ext.FusedKernelsUnavailable, match="test"):
        silicon_deepves_system(2, skin=0.1, route="fused")


@pytest.mark.skipif(__import__("openmm_nnbias._ext", fromlist=["x"]).compiler_missing() is not None,
                    reason="fused kernels cannot be compiled here")
def test_recipe_routes_give_the_same_energy_forces_and_cv():
    """The recipe's default route (fused here) against the torch route: SW energy and forces, CV value and Jacobian."""
    from openmm_nnbias.cvs import FusedEnvironmentSimilarity

    recipe = get_recipe("silicon-64")
    fused, plain = silicon_deepves_system(2, skin=0.1), silicon_deepves_system(2, skin=0.1, route="torch")
    assert fused.route == "fused"
    rng = np.random.default_rng(3)
    x = fused.positions + rng.normal(0.0, 0.01, fused.positions.shape)
    out = []
    for built in (fused, plain):
        ctx = mm.Context(built.system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
        ctx.setPeriodicBoxVectors(*[mm.Vec3(*row) for row in built.box])
        ctx.setPositions(x)
        st = ctx.getState(getEnergy=True, getForces=True)
        cv = recipe.buildCVs(built).sources[0]
        value, jac = cv.value_and_jacobian(torch.as_tensor(x), torch.as_tensor(built.box))
        out.append((st.getPotentialEnergy().value_in_unit(mm.unit.kilojoule_per_mole),
                    np.asarray(st.getForces(asNumpy=True).value_in_unit(mm.unit.kilojoule_per_mole / mm.unit.nanometer)),
                    float(value[0]), jac.detach().numpy(), type(cv)))
    (e1, f1, v1, j1, k1), (e2, f2, v2, j2, k2) = out
    assert k1 is FusedEnvironmentSimilarity and k2 is EnvironmentSimilarity
    assert e1 == pytest.approx(e2, rel=1e-10)
    np.testing.assert_allclose(f1, f2, rtol=1e-10, atol=1e-10 * np.abs(f2).max())
    assert v1 == pytest.approx(v2, rel=1e-10) and 50 < v1 <= 64
    np.testing.assert_allclose(j1, j2, rtol=1e-10, atol=1e-10 * np.abs(j2).max())
