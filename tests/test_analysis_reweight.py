"""Reweighting of a colvar (analysis.reweight) and uneven frame spacing (a run restored from a thinned archive)."""

import math
import os
import warnings

import numpy as np
import pytest

from openmm_nnbias.analysis import reweight_colvar
from openmm_nnbias.io import read_colvar


def _write(path, times, x, rbias):
    with open(path, "w") as fh:
        fh.write("#! FIELDS time x rbias\n#! SET units_time ps\n")
        for t, a, b in zip(times, x, rbias):
            fh.write(f"{t:.6f} {a:.6f} {b:.6f}\n")


def test_reweighting_recovers_an_analytic_two_state_free_energy(tmp_path):
    # frames sampled under a bias V(x) = -F(x) flatten the distribution: exp(V/kT) must give back F(x)
    kT = 2.5
    rng = np.random.default_rng(0)
    x = rng.uniform(-math.pi, math.pi, 200_000)
    f_true = 4.0 * np.cos(x) ** 2  # kJ/mol
    p = tmp_path / "colvar"
    _write(p, np.arange(x.size) * 0.1, x, -f_true)
    (axis,), f = reweight_colvar(str(p), kT, bins=24)
    expect = 4.0 * np.cos(axis) ** 2
    # a flat histogram: each bin is F at its centre up to the bin average of cos^2 and sampling noise
    assert np.max(np.abs((f - f.mean()) - (expect - expect.mean()))) < 0.3


def test_uneven_spacing_warns_and_every_resamples(tmp_path):
    # 1-ps rows (restored history) followed by 0.1-ps rows (after the restart)
    times = np.concatenate([np.arange(0.0, 100.0, 1.0), np.arange(100.0, 200.0, 0.1)])
    x = np.where(times < 100.0, -2.0, 2.0)
    p = tmp_path / "colvar"
    _write(p, times, x, np.zeros_like(x))
    with pytest.warns(UserWarning, match="not evenly spaced"):
        reweight_colvar(str(p), 2.5, bins=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (axis,), f = reweight_colvar(str(p), 2.5, bins=2, every=1.0)
    # one frame per ps on both halves: equal populations, F equal in both bins
    assert f[0] == pytest.approx(f[1], abs=1e-9)
    assert read_colvar(str(p), every=1.0)["time"].size == 200


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_every_must_be_positive(tmp_path, bad):
    p = tmp_path / "colvar"
    _write(p, [0.0, 1.0], [0.0, 0.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="every"):
        read_colvar(str(p), every=bad)


# ------------------------------------------------------------------ a run folder with more CVs than a histogram takes
def _run_with_four_cvs(folder, declared=True, n=200_000):
    """Frames uniform in (a, b, c, d) on the torus, weights exp(βV) with V = −F, F = 4 cos²(a) + 3 sin²(b): the
    reweighted marginals must give back F(a) = 4 cos²(a), F(b) = 3 sin²(b) and flat F(c), F(d)."""
    rng = np.random.default_rng(1)
    x = rng.uniform(-math.pi, math.pi, (n, 4))
    f = 4.0 * np.cos(x[:, 0]) ** 2 + 3.0 * np.sin(x[:, 1]) ** 2
    folder.mkdir()
    head = "#! FIELDS time a b c d bias rbias\n#! SET units_time ps\n" + "".join(
        f"#! SET units_{k} rad\n" for k in "abcd")
    if declared:
        head += "".join(f"#! SET min_{k} -3.141592654\n#! SET max_{k} 3.141592654\n" for k in "abcd")
    rows = np.column_stack([np.arange(n) * 0.1, x, -f, -f])
    with open(folder / "colvar", "w") as fh:
        fh.write(head)
        np.savetxt(fh, rows, fmt="%.6f")
    return folder


def test_run_with_more_than_three_cvs_reweights_a_chosen_subset(tmp_path):
    """Before: a run without fes_bias.dat (any run with more than 3 CVs) failed with 'No such file ... fes_bias.dat'."""
    from openmm_nnbias.analysis import reweight_run
    from openmm_nnbias.io import read_grid_domain, read_grid_file, read_units

    kT = 2.5
    run = _run_with_four_cvs(tmp_path / "run")
    with pytest.raises(ValueError, match=r"has 4 CVs \(a, b, c, d\); a reweighted FES is made over at most 3"):
        reweight_run(str(run), kT)
    with pytest.raises(ValueError, match=r"cvs: \['a', 'e'\] must be distinct CVs of .*colvar \(a, b, c, d\)"):
        reweight_run(str(run), kT, cvs=["a", "e"])
    assert sorted(p.name for p in run.iterdir()) == ["colvar"]  # nothing written by a refused call
    path = reweight_run(str(run), kT, bins=24, cvs=["a"])
    assert path.endswith("fes_colvar_reweighted_a.dat")
    dom = read_grid_domain(path)["a"]
    assert dom["periodic"] and dom["min"] == pytest.approx(-math.pi) and read_units(path)["a"] == "rad"
    points, f, _ = read_grid_file(path)
    expect = 4.0 * np.cos(points[:, 0]) ** 2
    assert np.max(np.abs((f - f.mean()) - (expect - expect.mean()))) < 0.3  # bin averaging and noise
    path = reweight_run(str(run), kT, bins=12, cvs=["b", "c"])
    assert path.endswith("fes_colvar_reweighted_b_c.dat")
    f2 = read_grid_file(path)[1].reshape(12, 12)  # first CV slowest
    fb = -kT * np.log(np.exp(-f2 / kT).sum(axis=1))
    b = -math.pi + (np.arange(12) + 0.5) * 2 * math.pi / 12
    expect = 3.0 * np.sin(b) ** 2
    assert np.max(np.abs((fb - fb.mean()) - (expect - expect.mean()))) < 0.3


def test_a_colvar_without_a_declared_domain_warns(tmp_path):
    from openmm_nnbias.analysis import reweight_run
    from openmm_nnbias.io import read_grid_domain

    run = _run_with_four_cvs(tmp_path / "run", declared=False, n=2000)
    with pytest.warns(UserWarning, match=r"declares no domain for c .*range of the frames, as not periodic"):
        path = reweight_run(str(run), 2.5, bins=10, cvs=["c"])
    assert read_grid_domain(path)["c"]["periodic"] is False


def test_cli_writes_each_marginal_of_a_run_with_more_than_three_cvs(tmp_path, capsys):
    from openmm_nnbias.cli import main

    run = _run_with_four_cvs(tmp_path / "run", n=2000)
    assert main(["reweight", str(run), "--output", str(tmp_path / "x.dat")]) == 2
    assert "--output names one file" in capsys.readouterr().err and not (tmp_path / "x.dat").exists()
    with warnings.catch_warnings(record=True) as caught:  # the colvar is read once: no repeated warnings
        warnings.simplefilter("always")
        assert main(["reweight", str(run), "--bins", "10"]) == 0
    assert not caught
    assert sorted(p.name for p in run.iterdir()) == ["colvar"] + [f"fes_colvar_reweighted_{k}.dat" for k in "abcd"]
    assert main(["reweight", str(run), "--cvs", "a,d", "--bins", "10", "--from", "10ps"]) == 0
    assert (run / "fes_colvar_reweighted_a_d.dat").exists()
    assert main(["reweight", str(run), "--cvs", "a,b,c,d"]) == 2
    assert "--cvs: a reweighted FES is made over at most 3 CVs, got 4 (a,b,c,d)" in capsys.readouterr().err


def test_each_marginal_equals_the_one_cv_reweighting(tmp_path):
    """reweight_marginals_run (one read of the colvar) writes what reweight_run over each CV alone writes."""
    from openmm_nnbias.analysis import reweight_marginals_run, reweight_run
    from openmm_nnbias.io import read_grid_file

    run = _run_with_four_cvs(tmp_path / "run", declared=False, n=3000)
    with pytest.warns(UserWarning, match=r"declares no domain for a, b, c, d "):  # one warning naming every CV
        paths = reweight_marginals_run(str(run), 2.5, bins=10, t_min=20.0)
    assert [os.path.basename(p) for p in paths] == [f"fes_colvar_reweighted_{k}.dat" for k in "abcd"]
    for k, path in zip("abcd", paths):
        each = read_grid_file(path)[1]
        with pytest.warns(UserWarning):
            one = reweight_run(str(run), 2.5, bins=10, t_min=20.0, cvs=[k], output=str(tmp_path / f"{k}.dat"))
        assert np.array_equal(each, read_grid_file(one)[1])
