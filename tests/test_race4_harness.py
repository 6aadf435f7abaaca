"""The tetrapeptide race harness (benchmarks/race4.py): scoring with known answers, a tiny run of each method,
an exact continuation after a kill, the report from synthetic progress files (race4_report.py), the Eq. 4
marginals of a Deep-VES bias against a 1-D quadrature (race4_eq4.py)."""

import csv
import math
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))
race4 = pytest.importorskip("race4")
import race4_report  # noqa: E402
from race4_eq4 import eq4_marginals  # noqa: E402
from race4_methods import KT, TORSIONS  # noqa: E402
from race4_score import (N_BINS, axis, final_bias, load_snapshot, marginals, reweighted, rmse_shift,  # noqa: E402
                         save_snapshot, score, write_reference)


def _reference():
    x = axis()
    return np.array([(3 + j) * (1 - np.cos(x - 0.3 * j)) for j in range(6)])  # minima at 0.3 j rad, 0 .. 16 kJ/mol


def test_rmse_after_best_shift_known_answer():
    ref = np.array([0.0, 5.0, 10.0, 15.0, 30.0, 40.0])
    f = ref + 7.0 + np.array([0.5, -0.5, 0.5, -0.5, 100.0, 100.0])  # shift 7, ±0.5 inside F_ref < 20
    assert rmse_shift(f, ref) == (pytest.approx(0.5, abs=1e-12), 4, 0)
    f[1] = np.inf  # a scored bin without an estimate: left out of the RMSE, counted as missing
    r, n, missing = rmse_shift(f, ref)
    assert (n, missing) == (4, 1) and r == pytest.approx(math.sqrt(2) / 3, abs=1e-12)


def test_score_six_marginals_known_answer():
    ref = _reference()
    delta = np.where(np.arange(N_BINS) % 2, 0.4, -0.4)
    est = ref + np.arange(6)[:, None] * 2.0 + delta * np.array([1, 0, 1, 0, 1, 0])[:, None]
    s = score(est, ref)
    assert [s[f"rmse_{t}"] for t in TORSIONS] == pytest.approx([0.4, 0, 0.4, 0, 0.4, 0], abs=1e-9)
    assert s["rmse_mean"] == pytest.approx(0.2, abs=1e-9) and s["covered"] == 1
    est[3, np.argmin(ref[3])] = np.inf
    assert score(est, ref)["covered"] == 0


def test_reweighting_recovers_known_marginals():
    """Bin centres with weights exp(−βF_ref) give F_ref; the window keeps the last half; the final bias reweights."""
    ref, x, n = _reference(), axis(), N_BINS
    for j in range(6):
        assert np.allclose(marginals(x[:, None], -ref[j] / KT)[0], ref[j] - ref[j].min(), atol=1e-9)
    rng = np.random.default_rng(0)
    data = {"time": np.arange(2 * n) + 0.5, **{t: np.concatenate([x, x]) for t in TORSIONS},
            "rbias": np.concatenate([rng.normal(0, 30, n), -ref[0]])}  # first half: wrong weights, dropped
    f = reweighted(data, t_now=2.0 * n)
    assert np.allclose(f, ref[0] - ref[0].min(), atol=1e-9)
    assert not np.allclose(reweighted(data, 2.0 * n, t_from=0.0)[0], ref[0] - ref[0].min(), atol=0.1)
    v = np.broadcast_to(-ref[0][:, None, None], (n, n, n))  # V_final(φ1, φ2, φ3) = −F_ref(φ1)
    assert np.allclose(final_bias(data, 2.0 * n, x, v), ref[0] - ref[0].min(), atol=1e-9)


def _rows(root, method):
    with open(os.path.join(root, method, "1", "progress.csv")) as fh:
        return list(csv.DictReader(fh))


def _colvar(root, method):
    path = os.path.join(root, method, "1", "ves" if method.startswith("deepves") else "", "colvar")
    return [line for line in open(path) if not line.startswith("#")]


DETERMINISTIC = ["t_ns", "steps"] + race4.RMSE + ["covered", "rmse_mean_alt", "covered_alt", "estimate",
                                                   "estimate_alt", "decay_ps"]


def test_tiny_race_kill_resume_exact_and_report(tmp_path, monkeypatch):
    ref_dir = str(tmp_path / "ref")
    write_reference(ref_dir, _reference())
    args = ["run", "--methods", "deepves,metad,opes", "--seeds", "1", "--every", "1ps", "--unbiased-steps", "100",
            "--reference", ref_dir]
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    race4.main(args + ["--root", a, "--time", "2ps"])  # uninterrupted
    race4.main(args + ["--root", b, "--time", "1ps"])
    # a kill after the 2 ps row and colvar frames are written, before the checkpoint: redone from 1 ps
    make = race4.make_runner

    def killed_at_save(method, seed, folder):
        runner = make(method, seed, folder)

        def save(path):
            raise KeyboardInterrupt

        runner.save = save
        return runner

    monkeypatch.setattr(race4, "make_runner", killed_at_save)
    for method in ("deepves", "metad", "opes"):
        with pytest.raises(KeyboardInterrupt):
            race4.run_one(method, 1, 0.002, 0.001, b, None, race4.Unbiased(), 100)
        assert len(_rows(b, method)) == 2
    monkeypatch.setattr(race4, "make_runner", make)
    race4.main(args + ["--root", b, "--time", "2ps"])
    for method, ckpt in (("deepves", "checkpoint.pt"), ("metad", "checkpoint.pkl"), ("opes", "checkpoint.pkl")):
        ra, rb = _rows(a, method), _rows(b, method)
        assert [r["t_ns"] for r in ra] == ["0.001", "0.002"]
        assert [{k: r[k] for k in DETERMINISTIC} for r in ra] == [{k: r[k] for k in DETERMINISTIC} for r in rb]
        assert _colvar(a, method) == _colvar(b, method) and len(_colvar(a, method)) == 2
        assert all(len(line.split()) == 9 for line in _colvar(a, method))  # time, 6 torsions, bias, rbias
        for r in ra:
            assert float(r["cpu_s"]) > 0 and float(r["speed_ratio"]) > 0 and math.isfinite(float(r["rmse_mean"]))
            assert os.path.exists(os.path.join(a, method, "1", "snapshots", f"{r['estimate']}_{float(r['t_ns']):.3f}ns.npz"))
        assert os.path.exists(os.path.join(b, method, "1", ckpt))
    assert os.path.exists(os.path.join(a, "deepves", "1", "snapshots", "bias_0.002ns.pt"))  # for the Eq. 4 estimate
    assert _rows(a, "metad")[0]["estimate_alt"] == "final" and _rows(a, "deepves")[0]["estimate_alt"] == "decay"
    fig = str(tmp_path / "race4.png")
    race4.main(["report", "--root", a, "--reference", ref_dir, "--figure", fig, "--eq4-chunks", "1"])
    text = open(os.path.join(a, "report.md")).read()
    assert "| opes |" in text and "| metad (final) |" in text and "| deepves (decay) |" in text
    assert "| deepves (eq4) |" in text and os.path.exists(os.path.join(a, "deepves", "1", "snapshots", "eq4_0.002ns.npz"))
    assert os.path.getsize(fig) > 0


def test_report_from_synthetic_progress(tmp_path):
    """Three seeds whose error falls as 4/t: 1 kJ/mol from 4 ns on, 0.5 from 8 ns (seed 3 never, its noise floor)."""
    ref = _reference()
    ref_dir = str(tmp_path / "ref")
    write_reference(ref_dir, ref)
    root = str(tmp_path / "race4")
    pattern = np.where(np.arange(N_BINS) % 2, 1.0, -1.0)  # RMSE = amplitude over any set of bins with even count
    for seed, floor in ((1, 0.0), (2, 0.0), (3, 0.7)):
        folder = os.path.join(root, "metad", str(seed))
        os.makedirs(os.path.join(folder, "snapshots"))
        rows = []
        for k in range(1, 11):
            t = float(k)
            err = max(4.0 / t, floor)
            region = ref < 20
            amp = np.where(region, pattern, 0.0)
            amp = amp * err / np.sqrt(np.mean((amp[region] - np.mean(amp[region])) ** 2)) if err else amp
            save_snapshot(os.path.join(folder, "snapshots", f"reweighted_{t:.3f}ns.npz"), ref + amp + 5.0)
            save_snapshot(os.path.join(folder, "snapshots", f"final_{t:.3f}ns.npz"), ref)
            rows.append({"t_ns": t, "steps": int(t * 5e5), "cpu_s": 3600.0 * t / 2, "wall_s": 1, "seg_cpu_s": 1,
                         "fes_cpu_s": 0, "unbiased_cpu_s_per_ns": 100, "speed_ratio": 0.5, "estimate": "reweighted",
                         "estimate_alt": "final", "decay_ps": ""})
        race4.write_rows(os.path.join(folder, "progress.csv"), [{k: race4._fmt(v) for k, v in r.items()} for r in rows])
    runs = race4_report.collect(root, ref)
    assert sorted(runs) == ["metad", "metad (final)"]
    assert [race4_report.time_to(rows, 1.0, "t_ns") for rows in runs["metad"]] == [4.0, 4.0, 4.0]
    assert [race4_report.time_to(rows, 0.5, "t_ns") for rows in runs["metad"]] == [8.0, 8.0, math.inf]
    assert [race4_report.time_to(rows, 0.5, "cpu_s") for rows in runs["metad"]][:2] == [4 * 3600.0, 4 * 3600.0]
    fig = str(tmp_path / "fig.png")
    race4.main(["report", "--root", root, "--reference", ref_dir, "--figure", fig])
    text = open(os.path.join(root, "report.md")).read()
    line = next(x for x in text.splitlines() if x.startswith("| metad |"))
    cells = [c.strip() for c in line.split("|")[1:-1]]
    assert cells[1:5] == ["4.00 [4.00–4.00] (3/3)", "2.00 [2.00–2.00] (3/3)", "8.00 [8.00–8.00] (2/3)",
                          "4.00 [4.00–4.00] (2/3)"]
    assert cells[5].startswith("0.40 [0.40–0.70]")
    assert "| metad (final) | 1.00 [1.00–1.00] (3/3)" in text  # exact from the first snapshot
    assert os.path.getsize(fig) > 0
    # at fixed times: 4/t, seed 3 floored at 0.7 (10 ns: 0.4, 0.4, 0.7)
    assert "| metad | 4.00 [4.00–4.00] (3) | 2.00 [2.00–2.00] (3) | 0.80 [0.80–0.80] (3) | 0.40 [0.40–0.70] (3) |" in text
    # CPU budgets in ns of unbiased MD (each 1-ns segment: 1 CPU s at 100 CPU s per ns of MD, 0.01 ns): the last
    # snapshot within 0.02 (2 ns) and 0.05 (5 ns); none at 0.2 (the runs cost 0.1)
    assert race4_report.md_equivalent(runs["metad"][0])[-1] == pytest.approx(0.1)
    assert "| metad | 2.00 [2.00–2.00] (3) | 0.80 [0.80–0.80] (3) |  |" in race4_report.at_cost(runs, (0.02, 0.05, 0.2))
    # up to 5 ns: 0.5 kJ/mol not reached; the final error is that of 5 ns (0.8, seed 3 too: its floor 0.7 < 0.8)
    race4.main(["report", "--root", root, "--reference", ref_dir, "--figure", fig, "--until", "5ns"])
    text = open(os.path.join(root, "report.md")).read()
    line = next(x for x in text.splitlines() if x.startswith("| metad |"))
    cells = [c.strip() for c in line.split("|")[1:-1]]
    assert cells[3] == "not reached (0/3)" and cells[5].startswith("0.80 [0.80–0.80]") and "(up to 5 ns)" in text
    # a narrower scored region rescores the same snapshots
    last = load_snapshot(os.path.join(root, "metad", "1", "snapshots", "reweighted_10.000ns.npz"))
    assert score(last, ref, 10.0)["rmse_mean"] != pytest.approx(score(last, ref)["rmse_mean"], abs=1e-6)
    runs = race4_report.collect(root, ref, cutoff=10.0)
    assert float(runs["metad"][0][-1]["rmse_mean"]) == pytest.approx(score(last, ref, 10.0)["rmse_mean"], abs=1e-12)


def test_eq4_marginals_of_a_bias_of_phi1_alone():
    """A network that reads only (cos φ1, sin φ1): F(φ1) = −γ/(γ − 1) V(φ1) bin-averaged, the other marginals flat."""
    import torch

    from openmm_nnbias.bias.network import NeuralBias

    bias = NeuralBias([True] * 6, [-math.pi] * 6, [math.pi] * 6, hidden=(96, 48, 24), seed=3, zero_output=False)
    with torch.no_grad():
        w = bias.layers[0].weight
        keep = torch.zeros_like(w)
        keep[:, [0, 6]] = 1.0  # features: the six cosines, then the six sines
        w.mul_(keep)
        x = torch.zeros(720, 6, dtype=torch.float64)
        x[:, 0] = torch.linspace(-math.pi, math.pi, 720, dtype=torch.float64)
        bias.layers[-1].weight.mul_(20.0 / float(np.ptp(bias(x).numpy())))  # V(φ1) spans 20 kJ/mol
    est, ess = eq4_marginals(bias.state_dict(), chunks=4)
    h = 2 * math.pi / N_BINS
    fine = np.linspace(-h / 2, h / 2, 401)[None, :] + axis()[:, None]  # each bin, on a fine grid
    s = torch.zeros(fine.size, 6, dtype=torch.float64)
    s[:, 0] = torch.from_numpy(np.mod(fine.ravel() + math.pi, 2 * math.pi) - math.pi)
    with torch.no_grad():
        v = bias(s).numpy().reshape(fine.shape)
    minus_beta_f = v * 10.0 / 9.0 / KT  # −βF = βV γ/(γ − 1), γ = 10
    expected = -KT * np.log(np.mean(np.exp(minus_beta_f - minus_beta_f.max()), axis=1))
    expected -= expected.min()
    assert np.ptp(expected) > 10.0  # a test with something to find
    d = est[0] - expected  # kJ/mol; the noise: bins of ~22 000 uniform points each, 0.7 % in the count
    assert np.abs(d - d.mean()).max() < 0.12
    # the flat marginals: each bin's weight is a sum over ~ESS/36 effective points
    assert np.abs(est[1:]).max() < 5 * KT / math.sqrt(ess / N_BINS) < 0.5
    assert 0 < ess <= 800_000


def test_eq4_window_averages_the_snapshots_of_the_last_quarter(tmp_path):
    """Snapshot errors that alternate in sign cancel in the window's mean: t = 4 ns averages 3 and 4 ns exactly."""
    ref = _reference()
    root = str(tmp_path / "race4")
    folder = os.path.join(root, "deepves", "1")
    os.makedirs(os.path.join(folder, "snapshots"))
    pattern = np.where(np.arange(N_BINS) % 2, 1.0, -1.0)
    rows = []
    for k in range(1, 5):
        save_snapshot(os.path.join(folder, "snapshots", f"reweighted_{k:.3f}ns.npz"), ref)
        save_snapshot(os.path.join(folder, "snapshots", f"eq4_{k:.3f}ns.npz"), ref + (-1) ** k * 0.8 * pattern)
        rows.append({"t_ns": float(k), "steps": k * 500000, "cpu_s": 100.0 * k, "wall_s": 1, "seg_cpu_s": 1,
                     "fes_cpu_s": 0, "unbiased_cpu_s_per_ns": 100, "speed_ratio": 0.5, "estimate": "reweighted",
                     "estimate_alt": "", "decay_ps": ""})
    race4.write_rows(os.path.join(folder, "progress.csv"), [{k: race4._fmt(v) for k, v in r.items()} for r in rows])
    runs = race4_report.collect(root, ref)
    single = [float(r["rmse_mean"]) for r in runs["deepves (eq4)"][0]]
    window = {float(r["t_ns"]): float(r["rmse_mean"]) for r in runs["deepves (eq4-window)"][0]}
    assert single == pytest.approx([0.8] * 4, abs=1e-9)
    assert window[1.0] == pytest.approx(0.8, abs=1e-9)  # [0.75, 1] ns: one snapshot
    assert window[4.0] == pytest.approx(0.0, abs=1e-9)  # [3, 4] ns: +0.8 and -0.8 cancel
    assert window[3.0] == pytest.approx(0.8, abs=1e-9)  # [2.25, 3] ns: one snapshot


def test_two_lanes_share_the_runs_through_lock_files(tmp_path, capsys):
    """A run held by a live race process is skipped; a lock left by a dead process is taken over."""
    import subprocess

    folder = str(tmp_path / "r" / "metad" / "1")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)  # race4 lane"])
    try:
        os.makedirs(folder)
        with open(os.path.join(folder, race4.LOCK), "w") as fh:
            fh.write(f"{other.pid}\n")
        race4.main(["run", "--methods", "metad", "--seeds", "1", "--time", "1ps", "--every", "1ps",
                    "--unbiased-steps", "100", "--root", str(tmp_path / "r")])
        assert "metad seed 1: run by another process" in capsys.readouterr().out
        assert not os.path.exists(os.path.join(folder, "progress.csv"))
    finally:
        other.kill()
        other.wait()
    # the holder is gone: the lock is stale, the run goes on and releases it
    race4.main(["run", "--methods", "metad", "--seeds", "1", "--time", "1ps", "--every", "1ps",
                "--unbiased-steps", "100", "--root", str(tmp_path / "r")])
    assert os.path.exists(os.path.join(folder, "progress.csv")) and not os.path.exists(os.path.join(folder, "lock"))
    assert race4.claim(folder) and not race4.claim(folder)  # held by this process now
    race4.release(folder)
    with open(os.path.join(folder, race4.LOCK), "w") as fh:
        fh.write("")  # half-written by a process killed while claiming
    assert race4.claim(folder)
    race4.release(folder)


def test_noise_of_identical_blocks_is_zero(tmp_path):
    """race4_noise: four identical blocks of frames have a block standard error of 0; the RMSE is the estimate's."""
    from race4_noise import noise

    ref, x = _reference(), axis()
    n = N_BINS
    one = np.column_stack([x] * 6)  # one frame per bin centre, weights exp(−βF_ref(φ1)) on torsion 0
    frames = np.concatenate([one] * 8)  # the last half (t ≥ 4 n ps of 8 n) holds 4 identical blocks of n frames
    rbias = np.tile(-ref[0], 8)
    path = tmp_path / "colvar"
    with open(path, "w") as fh:
        fh.write("#! FIELDS time " + " ".join(TORSIONS) + " bias rbias\n")
        for i, (row, w) in enumerate(zip(frames, rbias)):
            fh.write(f"{i + 0.5:.1f} " + " ".join(f"{v:.9f}" for v in row) + f" {w:.9f} {w:.9f}\n")
    out, ess, frames_used = noise(str(path), 8 * n / 1000.0, ref)
    assert frames_used == 4 * n
    rmse, se = out["phi1"]
    assert se == pytest.approx(0.0, abs=1e-6) and rmse == pytest.approx(0.0, abs=1e-6)
    assert 0 < ess <= frames_used


def test_time_to_needs_coverage():
    rows = [{"t_ns": t, "cpu_s": 10 * t, "rmse_mean": r, "covered": c}
            for t, r, c in ((1, 3, 1), (2, 0.9, 1), (3, 0.8, 0), (4, 0.8, 1), (5, 0.7, 1))]
    assert race4_report.time_to(rows, 1.0, "t_ns") == 4
    assert race4_report.time_to(rows, 1.0, "cpu_s") == 40
    assert race4_report.time_to(rows, 0.5, "t_ns") == math.inf


def test_first_seed_runs_only_the_later_seeds(tmp_path):
    root = str(tmp_path / "r")
    race4.main(["run", "--methods", "metad", "--seeds", "2", "--first-seed", "2", "--time", "1ps", "--every", "1ps",
                "--unbiased-steps", "100", "--root", root])
    assert sorted(os.listdir(os.path.join(root, "metad"))) == ["2"]
    with pytest.raises(SystemExit, match="--first-seed must be between 1 and --seeds"):
        race4.main(["run", "--methods", "metad", "--seeds", "2", "--first-seed", "3", "--root", root])
