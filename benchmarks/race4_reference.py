"""The tetrapeptide race's reference marginals: MD under a static φ1–φ3 bias, reweighted.

Stage 1 (only makes the static bias): ``openmm_nnbias.systems.run_reference_ala4`` — the package's
``openmm-nnbias reference --system alanine-tetrapeptide``, WT-metaD over φ1, φ2, φ3 with γ 8,
height 1.2 kJ/mol, σ 0.35 rad, every 1 ps, 37³ grid (the package's ``WellTemperedMetadynamics``),
seed ``seed``, ``stage1_ns`` long (default 10 ns), restartable (``stage1_metad/checkpoint.pt``).

Stage 2 (the reference): MD of the same system (300 K, 2 fs, LangevinMiddle 1/ps, CPU, 1 thread,
seed ``seed + 1``) under the fixed bias V(φ1, φ2, φ3) = stage 1's final bias grid (a periodic
tricubic table that never changes), the six torsions and V kept every 50 steps (0.1 ps); each of
the six marginals F = −kT ln Σ exp(βV) per 10° bin. A static bias makes the estimate unbiased
whatever the quality of stage 1 (only its variance depends on it); ψ1–ψ3 are not biased and
cross on their own. None of the race's runs uses a static bias (Deep-VES learns 6-D, WT-metaD and
OPES build theirs on the fly), so the reference shares no protocol with any of them.

Uncertainty (``reference.json``): the block standard error over 4 consecutive blocks (per marginal
RMS over F_ref < 20 kJ/mol of std/√4, each block aligned by its best constant offset) and the
RMSE between the two halves / 2; also the effective sample fraction of the weights and the φ
transitions. Resumable: ``stage2_static/checkpoint.pkl`` (Context checkpoint, chunk) and
``samples_<k>.npz`` per 0.5 ns chunk; CPU seconds of both stages accumulate in ``cost.json``
(a stage-1 call cut by a kill loses its CPU time). Rerunning the command continues.
"""

from __future__ import annotations

import json
import math
import os
import pickle

import numpy as np

from race4_methods import KT, TIMESTEP_PS, TORSIONS, _simulation, dihedrals, tree_cpu
from race4_score import CUTOFF, N_BINS, marginals, rmse_shift, write_reference

SAMPLE = 50  # MD steps between frames of the static-bias run
CHUNK_NS = 0.5
BLOCKS = 4


def _cost(out, key, seconds):
    path = os.path.join(out, "cost.json")
    cost = json.load(open(path)) if os.path.exists(path) else {}
    cost[key] = cost.get(key, 0.0) + seconds
    with open(path + ".tmp", "w") as fh:
        json.dump(cost, fh, indent=1)
    os.replace(path + ".tmp", path)
    return cost


def stage1(out, time_ns, seed):
    """Run (or continue) the WT-metaD that makes the static bias; returns its bias grid (last torsion first)."""
    from openmm_nnbias.runners import run_reference_ala4
    from openmm_nnbias.runners.reference import load_reference_checkpoint

    folder = os.path.join(out, "stage1_metad")
    restart = os.path.exists(os.path.join(folder, "checkpoint.pt"))
    done = restart and load_reference_checkpoint(folder)["step"] >= int(round(time_ns * 1000 / TIMESTEP_PS))
    if not done:
        c0 = tree_cpu()
        run_reference_ala4(folder, time_ns, seed=seed, progress=False, restart=restart)
        _cost(out, "stage1_cpu_s", tree_cpu() - c0)
    return load_reference_checkpoint(folder)["bias"]


def stage2(out, time_ns, seed, bias):
    """Run (or continue) the static-bias MD; returns the frames (n, 7): six torsions (rad), V (kJ/mol)."""
    from openmm import unit

    from openmm_nnbias.systems import alanine_tetrapeptide
    from openmm_nnbias.metad import WellTemperedMetadynamics

    folder = os.path.join(out, "stage2_static")
    os.makedirs(folder, exist_ok=True)
    pep = alanine_tetrapeptide()
    meta = WellTemperedMetadynamics(pep.system, [pep.torsions[t] for t in ("phi1", "phi2", "phi3")], 300.0, 8.0,
                                    1.2, 0.35, 10 ** 9, bias.shape[0])  # a static table: no Gaussian is deposited
    sim = _simulation(pep, pep.system, seed)
    meta.setBias(bias, sim.context)
    quads = np.array([pep.torsions[t] for t in TORSIONS])
    ckpt = os.path.join(folder, "checkpoint.pkl")
    chunk = 0
    if os.path.exists(ckpt):
        with open(ckpt, "rb") as fh:
            st = pickle.load(fh)
        if not np.array_equal(st["bias"], bias):
            raise ValueError(f"{ckpt}: made with another static bias (stage 1 changed); remove {folder} to redo")
        sim.context.loadCheckpoint(st["context"])
        chunk = st["chunk"]
    chunk_ns = min(CHUNK_NS, time_ns)
    per_chunk = int(round(chunk_ns * 1000 / TIMESTEP_PS))
    n_chunks = int(math.ceil(time_ns / chunk_ns - 1e-9))
    while chunk < n_chunks:
        c0 = tree_cpu()
        rows = []
        for _ in range(per_chunk // SAMPLE):
            sim.step(SAMPLE)
            st = sim.context.getState(getPositions=True)
            pos = st.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
            e = sim.context.getState(getEnergy=True, groups={meta.forceGroup}).getPotentialEnergy()
            rows.append((*dihedrals(pos, quads), e.value_in_unit(unit.kilojoule_per_mole)))
        tmp = os.path.join(folder, f"samples_{chunk}.tmp.npz")
        np.savez_compressed(tmp, samples=np.array(rows))
        os.replace(tmp, os.path.join(folder, f"samples_{chunk}.npz"))
        chunk += 1
        with open(ckpt + ".tmp", "wb") as fh:
            pickle.dump({"context": sim.context.createCheckpoint(), "chunk": chunk, "bias": bias}, fh)
        os.replace(ckpt + ".tmp", ckpt)
        _cost(out, "stage2_cpu_s", tree_cpu() - c0)
    return np.concatenate([np.load(os.path.join(folder, f"samples_{k}.npz"))["samples"] for k in range(n_chunks)])


def _aligned(f, ref, cutoff=CUTOFF):
    region = np.isfinite(ref) & (ref - ref[np.isfinite(ref)].min() < cutoff) & np.isfinite(f)
    return f - np.mean((f - ref)[region]), region


def uncertainty(samples, est, blocks=BLOCKS):
    """Per torsion: block standard error and RMSE(first half, second half)/2 (kJ/mol)."""
    parts = np.array_split(samples, blocks)
    blk = [marginals(p[:, :6], p[:, 6] / KT) for p in parts]
    half = len(samples) // 2
    a, b = marginals(samples[:half, :6], samples[:half, 6] / KT), marginals(samples[half:, :6], samples[half:, 6] / KT)
    out = {}
    for j, name in enumerate(TORSIONS):
        ref = est[j]
        region = np.isfinite(ref) & (ref - ref[np.isfinite(ref)].min() < CUTOFF)
        stack = []
        for f in blk:
            g, _ = _aligned(f[j], ref)
            stack.append(np.where(np.isfinite(g), g, np.nan))
        stack = np.array(stack)[:, region]
        se = float(np.sqrt(np.nanmean(np.nanstd(stack, axis=0, ddof=1) ** 2) / blocks))
        out[name] = {"block_se": round(se, 3), "halves_rmse_over_2": round(rmse_shift(a[j], b[j])[0] / 2, 3)}
    return out


def make_reference(out, time_ns, stage1_ns, seed):
    """Write ``fes_reference_<cv>.dat``, ``fes_reference.npz``, ``reference.json`` into ``out``; returns ``out``."""
    from openmm_nnbias.recipes import count_transitions

    os.makedirs(out, exist_ok=True)
    bias = stage1(out, stage1_ns, seed)
    samples = stage2(out, time_ns, seed + 1, bias)
    est = marginals(samples[:, :6], samples[:, 6] / KT)
    write_reference(out, est)
    logw = samples[:, 6] / KT
    w = np.exp(logw - logw.max())
    cost = json.load(open(os.path.join(out, "cost.json")))
    info = {
        "method": "MD under a static bias V(phi1, phi2, phi3) (stage 1 WT-metaD's final grid), reweighted exp(beta V)",
        "stage1_wtmetad_ns": stage1_ns, "stage2_static_ns": time_ns, "seed_stage1": seed, "seed_stage2": seed + 1,
        "frames": int(len(samples)), "bins": N_BINS, "cutoff_kJmol": CUTOFF,
        "effective_sample_fraction": round(float(w.sum() ** 2 / (w ** 2).sum() / len(w)), 4),
        "phi_transitions_stage2": [int(x) for x in count_transitions(samples[:, [0, 2, 4]])],
        "uncertainty_kJmol": uncertainty(samples, est),
        "cpu_s": {k.replace("_cpu_s", ""): round(v, 1) for k, v in cost.items()},
        "cpu_hours_total": round(sum(cost.values()) / 3600, 3),
        "note": "block_se: standard error of the mean of 4 blocks; halves_rmse_over_2: RMSE between the halves / 2",
    }
    with open(os.path.join(out, "reference.json"), "w") as fh:
        json.dump(info, fh, indent=1)
    return out


__all__ = ["make_reference", "uncertainty"]
