"""The race's reference FES of vacuum alanine dipeptide: two independent long estimates by different methods, averaged.

1. ``benchmarks/data/ala2_fes_reference_metad40ns.dat``: 40 ns of WT-metadynamics (the package's
   ``openmm-nnbias reference``: γ 6, height 1 kJ/mol, σ 0.35 rad, every 1 ps, 73-point grid, seed 1).
2. A static-bias importance-sampling run made here: MD (same system, 300 K, 2 fs, LangevinMiddle
   1/ps, CPU, 1 thread, seed ``seed``) under the fixed bias V(φ, ψ) = −min(F₁, 25 kJ/mol) tabulated
   from estimate 1 (a periodic bicubic table; it never changes), with (φ, ψ, V) kept every 25 steps
   (50 fs); F = −kT ln Σ exp(βV) over each bin of the 72 × 72 grid of estimate 1 (bins centred on
   its points). A static bias makes this estimate unbiased whatever the quality of F₁ (only its
   variance depends on it), and none of the compared runs uses a static bias.

``fes_reference.dat`` is the mean of the two (aligned by the best constant shift over F < 20 kJ/mol;
F₁ alone on bins the static run never visited). ``reference.json`` gives its uncertainty: the RMSE
between the two estimates (F(φ) and 2-D, kJ/mol; if their errors are independent and equal, the
mean's RMSE is about half of it) and the static estimate's own statistical error (RMSE between its
two halves / 2). Resumable: ``checkpoint.pkl`` (Context checkpoint, step) and ``samples_<k>.npz``
per 0.5 ns chunk; rerunning the command continues.
"""

from __future__ import annotations

import json
import math
import os
import pickle

import numpy as np

from race_methods import TIMESTEP_PS, _simulation
from race_score import CUTOFF, KT, read_fes, rmse_best_shift, score, write_fes

CAP = 25.0  # kJ/mol: the static bias is −min(F₁, CAP)
SAMPLE = 25  # MD steps between samples
CHUNK_NS = 0.5


def _static_bias_run(out, time_ns, seed, f1):
    """Run (or continue) the static-bias MD; returns the samples (n, 3): φ, ψ (rad), V (kJ/mol)."""
    from openmm import unit

    from openmm_nnbias.systems import alanine_dipeptide
    from openmm_nnbias.metad import WellTemperedMetadynamics

    phi, psi, f = f1
    pep = alanine_dipeptide()
    n = len(phi)
    meta = WellTemperedMetadynamics(pep.system, [pep.torsions["phi"], pep.torsions["psi"]], 300.0, 10.0, 1.0,
                                    0.35, 10 ** 9, n + 1)  # used as a static table only: no Gaussians deposited
    v = -np.minimum(f - np.min(f), CAP)  # [phi, psi] on -pi + i 2pi/n
    grid = np.zeros((n + 1, n + 1))
    grid[:n, :n] = v.T  # the table is indexed [psi, phi], its point i at -pi + i 2pi/n, last = first
    grid[n, :] = grid[0, :]
    grid[:, n] = grid[:, 0]
    sim = _simulation(pep, seed)
    meta.setBias(grid, sim.context)
    ckpt = os.path.join(out, "checkpoint.pkl")
    chunk = 0
    if os.path.exists(ckpt):
        with open(ckpt, "rb") as fh:
            st = pickle.load(fh)
        sim.context.loadCheckpoint(st["context"])
        chunk = st["chunk"]
    chunk_ns = min(CHUNK_NS, time_ns)
    per_chunk = int(round(chunk_ns * 1000 / TIMESTEP_PS))
    n_chunks = int(math.ceil(time_ns / chunk_ns - 1e-9))
    while chunk < n_chunks:
        rows = []
        for _ in range(per_chunk // SAMPLE):
            sim.step(SAMPLE)
            e = sim.context.getState(getEnergy=True, groups={meta.forceGroup}).getPotentialEnergy()
            rows.append((*meta.getCollectiveVariables(sim), e.value_in_unit(unit.kilojoule_per_mole)))
        tmp = os.path.join(out, f"samples_{chunk}.tmp.npz")
        np.savez_compressed(tmp, samples=np.array(rows))
        os.replace(tmp, os.path.join(out, f"samples_{chunk}.npz"))
        chunk += 1
        with open(ckpt + ".tmp", "wb") as fh:
            pickle.dump({"context": sim.context.createCheckpoint(), "chunk": chunk}, fh)
        os.replace(ckpt + ".tmp", ckpt)
    parts = [np.load(os.path.join(out, f"samples_{k}.npz"))["samples"] for k in range(n_chunks)]
    return np.concatenate(parts)


def reweighted_fes(samples, n, kT=KT):
    """F[phi, psi] (kJ/mol, min 0, inf where empty) of samples (φ, ψ, V) on n × n bins centred at −π + i·2π/n."""
    h = 2 * math.pi / n
    i = np.mod(np.rint((samples[:, 0] + math.pi) / h).astype(int), n)
    j = np.mod(np.rint((samples[:, 1] + math.pi) / h).astype(int), n)
    logw = samples[:, 2] / kT
    w = np.exp(logw - logw.max())
    hist = np.zeros((n, n))
    np.add.at(hist, (i, j), w)
    with np.errstate(divide="ignore"):
        f = -kT * np.log(hist)
    return f - np.min(f)


def make_reference(out, time_ns, seed, metad_path):
    """Write ``fes_static.dat``, ``fes_reference.dat`` and ``reference.json`` into ``out``; returns the reference path."""
    os.makedirs(out, exist_ok=True)
    f1 = read_fes(metad_path)
    phi, psi, f = f1
    samples = _static_bias_run(out, time_ns, seed, f1)
    fs = reweighted_fes(samples, len(phi))
    half = len(samples) // 2
    fa, fb = reweighted_fes(samples[:half], len(phi)), reweighted_fes(samples[half:], len(phi))
    write_fes(os.path.join(out, "fes_static.dat"), phi, psi, fs)
    ok = np.isfinite(fs)
    region = (f - f.min() < CUTOFF) & ok
    shift = np.mean((fs - f)[region])
    mean = np.where(ok, 0.5 * (fs - shift + f), f)
    mean -= mean.min()
    path = os.path.join(out, "fes_reference.dat")
    write_fes(path, phi, psi, mean)
    between = score((phi, psi, fs), f1)
    halves = score((phi, psi, fa), (phi, psi, fb))
    info = {
        "static_bias_time_ns": time_ns, "seed": seed, "samples": int(len(samples)),
        "unvisited_bins_in_region": int(((f - f.min() < CUTOFF) & ~ok).sum()),
        "rmse_static_vs_metad40ns_phi_kJmol": round(between["rmse_phi"], 3),
        "rmse_static_vs_metad40ns_2d_kJmol": round(between["rmse_2d"], 3),
        "static_statistical_error_phi_kJmol": round(halves["rmse_phi"] / 2, 3),
        "static_statistical_error_2d_kJmol": round(halves["rmse_2d"] / 2, 3),
        "mean_uncertainty_phi_kJmol": round(between["rmse_phi"] / 2, 3),
        "mean_uncertainty_2d_kJmol": round(between["rmse_2d"] / 2, 3),
        "note": "mean_uncertainty = RMSE between the two independent estimates / 2 (independent, equal errors)",
    }
    with open(os.path.join(out, "reference.json"), "w") as fh:
        json.dump(info, fh, indent=1)
    return path


__all__ = ["make_reference", "reweighted_fes", "rmse_best_shift"]
