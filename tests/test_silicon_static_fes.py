"""benchmarks/silicon_static_fes.py on a synthetic frozen run: Eq. 11 over static frames recovers a known F(CV)."""

import importlib.util
import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(__file__)
sys.path.insert(0, os.path.join(HERE, "..", "benchmarks"))
spec = importlib.util.spec_from_file_location("silicon_static_fes",
                                              os.path.join(HERE, "..", "benchmarks", "silicon_static_fes.py"))
ssf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ssf)

KT = 0.008314462618 * 1700.0
N = 216
AXIS = np.arange(N) + 0.5
F = np.interp(AXIS, [0.5, 3.5, 100.5, 215.5], [6.0, 2.0, 12.0, 0.0]) * KT  # liquid 2 kT above the crystal


def _run(tmp_path, frozen: bool, frames: int = 40_000, gamma: float = 4.0):
    """A run folder: ves.log (frozen at 1 000 ps), colvar of static-bias frames, fes_bias.dat = F."""
    from openmm_nnbias.io import write_grid_file

    rows = ["#! FIELDS iteration time grad_norm kl lr c phase n_out_of_range skipped"]
    rows += [f"{i} {i + 1:.3f} 1.0 {0.9 if i < 500 else 0.3} 1e-3 0.0 "
             f"{'frozen' if frozen and i >= 999 else 'learning'} 0 0" for i in range(1000)]
    (tmp_path / "ves.log").write_text("\n".join(rows) + "\n")
    v = -(1 - 1 / gamma) * F  # the converged well-tempered bias: frames follow exp(-F/(gamma kT))
    p = np.exp(-(F + v) / KT)
    rng = np.random.default_rng(3)
    s = rng.choice(AXIS, size=frames, p=p / p.sum()) + rng.uniform(-0.5, 0.5, frames)
    bias = np.interp(s, AXIS, v)
    t = 1000.0 + np.arange(1, frames + 1) * 0.25
    head = "#! FIELDS time n_diamond bias rbias\n"
    (tmp_path / "colvar").write_text(head + "".join(f"{a:.6f} {b:.6f} {c:.6f} {c:.6f}\n" for a, b, c in zip(t, s, bias)))
    write_grid_file(str(tmp_path / "fes_bias.dat"), ["n_diamond"], [AXIS], F, [False])


def test_reweighted_static_frames_recover_f_with_block_errors(tmp_path):
    _run(tmp_path, frozen=True)
    got = ssf.analyse_static(str(tmp_path), N, blocks=5)
    assert got["t_freeze_ps"] == 1000.0 and got["static_frames"] == 40_000
    assert got["reweighted_dF_basins"] == pytest.approx(got["frozen_bias_dF_basins"], abs=0.15)
    assert got["reweighted_barrier"] == pytest.approx(12.0, abs=0.5)
    mean, se = (float(x) for x in got["reweighted_blocks_barrier"].split(" ± "))
    assert abs(mean - 12.0) < 4 * se + 0.3 and 0 < se < 0.5
    for name in ("frozen_bias", "reweighted", "reweighted_error"):
        assert (tmp_path / f"fes_static_{name}.dat").exists()
    assert (tmp_path / "silicon_static_fes.png").exists()


def test_a_run_that_is_not_frozen_is_refused(tmp_path):
    _run(tmp_path, frozen=False, frames=100)
    with pytest.raises(ValueError, match="not frozen"):
        ssf.analyse_static(str(tmp_path), N)


def test_agreement_is_rmse_after_the_best_shift():
    import numpy as np

    from silicon_static_fes import agreement

    x = np.arange(4.0)
    curves = {"a": (x, np.array([0.0, 1.0, 2.0, np.inf])), "b": (x, np.array([5.0, 6.0, 8.0, 1.0]))}
    out = agreement(curves, kT=1.0)
    # differences on the 3 finite bins: -5, -5, -6 -> shifted: 1/3, 1/3, -2/3
    assert out["agreement_bins"] == 3
    assert out["agreement_a_vs_b_kT"] == f"RMSE {np.sqrt(6 / 27):.2f}, max {2 / 3:.2f}"
