"""The convergence-race harness (benchmarks/race.py): scoring on a synthetic case, a tiny resumable run, the report."""

import csv
import math
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))
race = pytest.importorskip("race")
from race_score import marginal_phi, rmse_best_shift, score  # noqa: E402


def _grid(n):
    return -math.pi + 2 * math.pi * np.arange(n) / n


def test_rmse_after_best_shift_known_answer():
    ref = np.array([0.0, 5.0, 10.0, 15.0, 30.0, 40.0])
    fes = ref + 7.0 + np.array([0.5, -0.5, 0.5, -0.5, 100.0, 100.0])  # shift 7, ±0.5 inside F_ref < 20
    rmse, n = rmse_best_shift(fes, ref, cutoff=20.0)
    assert n == 4 and rmse == pytest.approx(0.5, abs=1e-12)
    fes[1] = np.inf  # no estimate at a point: left out
    rmse, n = rmse_best_shift(fes, ref, cutoff=20.0)
    assert n == 3 and rmse == pytest.approx(math.sqrt(2) / 3, abs=1e-12)


def test_score_2d_and_marginal_known_answer():
    phi = psi = _grid(36)
    p, s = np.meshgrid(phi, psi, indexing="ij")
    ref = 5 * (1 - np.cos(p)) + 3 * (1 - np.cos(s))  # separable: F(phi) = 5 (1 - cos phi) + const
    m = marginal_phi(ref)
    assert np.allclose(m, 5 * (1 - np.cos(phi)), atol=1e-9)
    delta = 0.4 * np.where(np.arange(36)[None, :] % 2, 1.0, -1.0) * np.ones((36, 1))  # ±0.4 along psi only
    got = score((phi, psi, ref + 3.0 + delta), (phi, psi, ref))
    assert got["rmse_2d"] == pytest.approx(0.4, abs=1e-9) and got["n_2d"] == 36 * 36
    assert got["rmse_phi"] < 1e-9  # the same delta in every phi column: F(phi) only shifts
    # a finer run grid, shifted, interpolated onto the reference points: interpolation error only
    fine = _grid(72)
    pf, sf = np.meshgrid(fine, fine, indexing="ij")
    got = score((fine, fine, 5 * (1 - np.cos(pf)) + 3 * (1 - np.cos(sf)) - 2.0), (phi, psi, ref))
    assert got["rmse_2d"] < 0.05 and got["rmse_phi"] < 0.05


def test_tiny_race_resumes_and_reports(tmp_path):
    root = str(tmp_path / "race")
    args = ["run", "--methods", "deepves,metad,opes", "--seeds", "1", "--every", "1ps", "--root", root,
            "--unbiased-steps", "100"]
    race.main(args + ["--time", "1ps"])
    race.main(args + ["--time", "2ps"])  # continues from the 1 ps checkpoints
    for method, ckpt in (("deepves", "checkpoint.pt"), ("metad", "checkpoint.pkl"), ("opes", "checkpoint.pkl")):
        folder = os.path.join(root, method, "1")
        with open(os.path.join(folder, "progress.csv")) as fh:
            rows = list(csv.DictReader(fh))
        assert [r["t_ns"] for r in rows] == ["0.001", "0.002"]
        assert float(rows[1]["cpu_s"]) > float(rows[0]["cpu_s"]) > 0
        for r in rows:
            assert math.isfinite(float(r["rmse_phi"])) and math.isfinite(float(r["rmse_2d"]))
            assert float(r["speed_ratio"]) > 0
            assert os.path.exists(os.path.join(folder, "snapshots", f"{r['estimate']}_{float(r['t_ns']):.3f}ns.npz"))
        assert os.path.exists(os.path.join(folder, ckpt))
    assert rows[0]["estimate_alt"] == "raw"  # OPES: also the estimate without the smoothing correction
    fig = str(tmp_path / "race.png")
    race.main(["report", "--root", root, "--figure", fig])
    text = open(os.path.join(root, "report.md")).read()
    assert "| opes | F(φ) |" in text and "| deepves | (φ, ψ) |" in text
    assert os.path.getsize(fig) > 0


def test_time_to_stays_below():
    rows = [{"t_ns": t, "cpu_s": 10 * t, "r": r} for t, r in ((0.25, 3), (0.5, 0.9), (0.75, 1.2), (1.0, 0.8), (1.25, 0.7))]
    assert race.time_to(rows, "r", 1.0, "t_ns") == 1.0
    assert race.time_to(rows, "r", 1.0, "cpu_s") == 10.0
    assert race.time_to(rows, "r", 0.5, "t_ns") == math.inf


def test_metad_runner_continues_from_its_checkpoint(tmp_path):
    """A restarted WT-metaD run (bias restored through public ``biasDir`` files) follows the uninterrupted one."""
    from openmm import unit
    from race_methods import MetadRunner

    one = MetadRunner(1001, str(tmp_path / "a"))
    one.step(1500)  # three hills
    path = str(tmp_path / "a" / "checkpoint.pkl")
    one.save(path)
    one.step(500)  # one more hill; MD amplifies the rounding of the restored bias (~1e-16) ~1e5-fold per ps
    two = MetadRunner(1001, str(tmp_path / "b"))
    two.load(path)
    assert two.steps == 1500
    two.step(500)
    f1, f2 = one._free_energy(), two._free_energy()
    assert np.ptp(f1) > 1.0  # four hills were deposited
    assert np.allclose(f1, f2, rtol=0, atol=1e-6)  # the restored bias equals the saved one to rounding (1e-16)
    x1 = one.sim.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    x2 = two.sim.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    assert np.allclose(x1, x2, atol=1e-6)


def test_an_estimate_of_part_of_the_region_is_not_scored():
    """A reweighted FES of a short run knows only the visited basin: its RMSE there alone would flatter it."""
    phi = psi = _grid(36)
    p, s = np.meshgrid(phi, psi, indexing="ij")
    ref = 5 * (1 - np.cos(p)) + 3 * (1 - np.cos(s))
    half = np.where(p < 0, ref + 2.0, np.inf)  # exact, but only for phi < 0
    got = score((phi, psi, half), (phi, psi, ref))
    assert math.isnan(got["rmse_2d"]) and math.isnan(got["rmse_phi"])
    assert got["n_2d"] < 0.95 * 36 * 36
    got = score((phi, psi, ref + 2.0), (phi, psi, ref))
    assert got["rmse_2d"] < 1e-9 and got["rmse_phi"] < 1e-9


def test_report_compares_seeds_up_to_their_common_time():
    """An unfinished seed cuts its method's comparison at its last time (no final RMSE mixing 1 ns and 3 ns)."""
    import race

    def rows(ts, vals):
        return [{"t_ns": str(t), "rmse_phi": str(v)} for t, v in zip(ts, vals)]

    rr = [rows([1, 2, 3], [2.0, 0.8, 0.4]), rows([1, 2], [3.0, 0.9])]
    cut, t_end = race.common_rows(rr)
    assert t_end == 2 and [len(r) for r in cut] == [2, 2] and cut[0][-1]["rmse_phi"] == "0.8"
    cut, t_end = race.common_rows(rr, until=1.0)
    assert t_end == 1.0 and [len(r) for r in cut] == [1, 1]


def test_rescore_without_a_snapshot_keeps_no_old_score(tmp_path):
    """A row whose snapshot is missing is NaN after rescoring, not its score against the reference of the run."""
    folder = tmp_path / "m" / "1"
    (folder / "snapshots").mkdir(parents=True)
    rows = [{"t_ns": "0.25", "steps": "1", "cpu_s": "1", "wall_s": "1", "seg_cpu_s": "1", "fes_cpu_s": "0",
             "unbiased_cpu_s_per_ns": "1", "speed_ratio": "1", "rmse_phi": "0.7", "rmse_2d": "0.8",
             "rmse_phi_alt": "0.9", "rmse_2d_alt": "1.0", "estimate": "bias", "estimate_alt": "best"}]
    race.write_rows(str(folder / "progress.csv"), rows)
    out = race.rescore(str(folder), None)
    assert all(math.isnan(float(out[0][k])) for k in ("rmse_phi", "rmse_2d", "rmse_phi_alt", "rmse_2d_alt"))


def test_fes_window_average_bounded_and_right():
    """Each window's average of F_n = t_n g against the exact mean over its iterations, within its edge's
    granularity; memory bounded; the state round-trips, and a state without an origin (older runs) loads."""
    from race_methods import AVERAGE_WINDOWS, FESWindowAverage

    g = np.array([0.0, 1.0, 2.0])
    avg, dt, n = FESWindowAverage(block=10, fine_ps=300.0, coarse_ps=50.0), 0.2, 20000
    times = np.arange(n) * dt
    for t in times:
        avg.add(t, t * g)
    now = times[-1]
    assert len(avg.starts) < 300 / (10 * dt) + 0.5 * now / 50 + 3  # 150 fine blocks + 40 coarse
    for name, (frac, length) in AVERAGE_WINDOWS.items():
        edge = now - length if frac is None else frac * now
        exact = times[times >= edge].mean() * g
        tol = (50.0 if frac is not None else 10 * dt) * g[1] + 1e-9
        assert np.all(np.abs(avg.fes(name, now) - exact) <= tol), name
    st = avg.state()
    again = FESWindowAverage()
    again.load(st)
    assert all(np.array_equal(again.fes(k, now), avg.fes(k, now)) for k in AVERAGE_WINDOWS)
    legacy = {k: v for k, v in st.items() if k not in ("origin", "fine_ps", "coarse_ps")}
    older = FESWindowAverage()
    older.load(legacy)
    assert older.origin == st["starts"][0]
