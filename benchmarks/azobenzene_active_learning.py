"""Active learning of the GFN1-xTB azobenzene MLP on the frames DiffSim actually visits (issue 17).

The first fit (``azobenzene_mlp_fit.py``) is good on its own data but 4–5 × worse on the frames of a
biased DiffSim run and of 1 000 K runs. Each round here

1. builds ``azobenzene_setup`` on the current model and trains a DiffSim bias in the paper's two
   stages: 300 K, Adam ``--lr1`` until every replica crosses (at most ``--epochs1`` epochs), then
   ``--epochs2`` epochs at 1 000 K with ``--lr2``;
2. samples frames the model has not seen: the trained bias at 300 K and at 1 000 K (16 replicas,
   2 ps each, from the cis pool) and unbiased 1 000 K runs from cis and from trans;
3. computes GFN1-xTB on ``--per-kind`` random frames of each of the four runs and prints the
   model's errors on them *before* they are added (the out-of-sample error of this round);
4. adds them to the data set and refits from scratch (same settings as ``azobenzene_mlp_fit.py``).

After the last round the same sampling runs once more on the final model, without refitting:
its errors are the acceptance numbers. Everything goes to ``--out`` (``round{k}.pt`` models,
``data_round{k}.npz``, ``active_learning.json``); ``--restart`` continues after the last
finished round.

    OMP_NUM_THREADS=1 python benchmarks/azobenzene_active_learning.py --rounds 3 \\
        --out benchmarks/out/azo_al            # needs tblite; ~10–20 min per round on one core
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from azobenzene_gfn1_data import single_point  # noqa: E402
from azobenzene_mlp_fit import angle, dihedral, errors  # noqa: E402

from openmm_nnbias.systems.azobenzene.molecule import CNNC_DIHEDRAL, NNC_ANGLE, azobenzene_positions  # noqa: E402
from openmm_nnbias.systems.azobenzene.mlp import AzobenzeneMLP, fit  # noqa: E402
from openmm_nnbias.diffsim.langevin import LangevinSimulator  # noqa: E402
from openmm_nnbias.recipes.diffsim.azobenzene import azobenzene_setup, minimize_positions  # noqa: E402
from openmm_nnbias.diffsim.stages import TrainingStage, apply_stage  # noqa: E402
from openmm_nnbias.diffsim.training import maxwell_boltzmann_velocities  # noqa: E402

RUNS = ("biased_300K", "biased_1000K", "unbiased_1000K_cis", "unbiased_1000K_trans")
KIND_AL = 5  # data-set kind code of active-learning points (azobenzene_gfn1_data.KINDS uses 0–4)


def train_bias(model, seed, a):
    """DiffSim in two stages on ``model``; returns the setup and the per-epoch log."""
    s = azobenzene_setup(potential=model, seed=seed)
    log = []
    for stage, max_epochs, until_done in ((TrainingStage(300.0, a.lr1, a.epochs1), a.epochs1, True),
                                          (TrainingStage(1000.0, a.lr2, a.epochs2), a.epochs2, False)):
        apply_stage(s.trainer, stage)
        for _ in range(max_epochs):
            r = s.trainer.train_epoch()
            log.append(dict(T=stage.temperature, lr=stage.lr, epoch=r.epoch, loss=r.mean_loss,
                            success=r.success_fraction, wall_s=r.wall_time_s))
            print(f"  epoch {r.epoch} T {stage.temperature:.0f} loss {r.mean_loss:.3f} success "
                  f"{r.success_fraction:.2f} ({r.wall_time_s:.0f} s)", flush=True)
            if until_done and r.success_fraction == 1.0:
                break
    return s, log


def sample_runs(model, s, seed, n_replicas=16, n_steps=4000):
    """Frames every 20 steps of the four runs (all frames of the biased runs, whose crossing is early; the second
    half of the unbiased ones, after they equilibrate at 1 000 K), and their CV ranges."""
    gen = torch.Generator().manual_seed(seed)
    pool = s.start_positions
    cis = pool[torch.randperm(pool.shape[0], generator=gen)[:n_replicas]]
    x_trans, _, _ = minimize_positions(model, azobenzene_positions("trans"))
    starts = {"biased_300K": (cis, 300.0, True), "biased_1000K": (cis, 1000.0, True),
              "unbiased_1000K_cis": (cis, 1000.0, False),
              "unbiased_1000K_trans": (x_trans.expand(n_replicas, -1, -1).clone(), 1000.0, False)}
    frames, ranges = {}, {}
    for k, (name, (R0, T, biased)) in enumerate(starts.items()):
        sim = LangevinSimulator(model, s.masses, temperature=T, timestep=0.0005, friction=1.0, seed=seed + k)
        V0 = maxwell_boltzmann_velocities(s.masses, T, n_replicas, generator=sim.generator).to(R0.dtype)
        traj = sim.run(R0, V0, n_steps=n_steps, record_every=20, bias=s.trainer.bias_energy if biased else None)
        X = traj.positions
        with torch.no_grad():
            cn = torch.rad2deg(dihedral(X, CNNC_DIHEDRAL)).abs()
            nn = torch.rad2deg(angle(X, NNC_ANGLE))
        ranges[name] = dict(finite=bool(torch.isfinite(X).all()), n_replicas_above_90deg=int((cn > 90).any(0).sum()),
                            cnnc_abs_deg=[float(cn.min()), float(cn.max())], nnc_deg=[float(nn.min()), float(nn.max())])
        frames[name] = X[X.shape[0] // 2:].reshape(-1, 24, 3) if not biased else X.reshape(-1, 24, 3)
    return frames, ranges


def label(frames, per_kind, seed):
    """GFN1-xTB on ``per_kind`` random frames of each run: {run: (x, e, f)}."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, X in frames.items():
        X = X[torch.isfinite(X).reshape(X.shape[0], -1).all(1)]
        pick = X[torch.randperm(X.shape[0], generator=gen)[:per_kind]]
        ref = [single_point(10.0 * fr.numpy()) for fr in pick]
        ok = [i for i, q in enumerate(ref) if q is not None]
        out[name] = (pick[ok], torch.tensor([ref[i][0] for i in ok], dtype=torch.float64),
                     torch.tensor(np.array([ref[i][1] for i in ok]), dtype=torch.float64).reshape(-1, 24, 3))
    return out


def refit(x, e, f, a):
    keep = e - e.min() <= a.e_max
    model = AzobenzeneMLP(hidden=(128, 64))
    hist = fit(model, x[keep], e[keep], f[keep], epochs=a.fit_epochs, batch_size=128, lr=3e-3, patience=80,
               verbose=50)
    val = hist["val_index"]
    return model, errors(model, x[keep][val], e[keep][val], f[keep][val]), int(keep.sum()), hist["best_epoch"]


def one_round(model, k, a, data, results, final=False):
    t0 = time.time()
    print(f"round {k}{' (final check)' if final else ''}: training DiffSim on the current model", flush=True)
    s, log = train_bias(model, seed=100 + k, a=a)
    frames, ranges = sample_runs(model, s, seed=200 + k)
    labelled = label(frames, a.per_kind, seed=300 + k)
    err = {name: errors(model, *labelled[name]) for name in RUNS}
    for name in RUNS:
        print(f"  {name:22s} {ranges[name]}  GFN1 vs model: {err[name]}", flush=True)
    rec = dict(round=k, final=final, training=log, ranges=ranges, errors_before_refit=err)
    if not final:
        x, e, f, kind = data
        add = [labelled[n] for n in RUNS]
        x = torch.cat([x] + [q[0] for q in add]); e = torch.cat([e] + [q[1] for q in add])
        f = torch.cat([f] + [q[2] for q in add])
        kind = torch.cat([kind] + [torch.full((q[0].shape[0],), KIND_AL) for q in add])
        data = (x, e, f, kind)
        model, val, n_fit, best = refit(x, e, f, a)
        rec.update(validation_after_refit=val, n_points=n_fit, best_epoch=best)
        print(f"  refit on {n_fit} points (best epoch {best}): validation {val}", flush=True)
        model.save(os.path.join(a.out, f"round{k + 1}.pt"))
        np.savez(os.path.join(a.out, f"data_round{k + 1}.npz"), positions=x.numpy(), energies=e.numpy(),
                 forces=f.numpy(), kind=kind.numpy())
    rec["wall_s"] = time.time() - t0
    results.append(rec)
    with open(os.path.join(a.out, "active_learning.json"), "w") as fh:
        json.dump(results, fh, indent=1)
    return model, data


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="benchmarks/out/azo_gfn1/azo_gfn1_data.npz")
    p.add_argument("--model", default="benchmarks/out/azo_gfn1/azobenzene_mlp.pt", help="round-0 model")
    p.add_argument("--out", default="benchmarks/out/azo_al")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--per-kind", type=int, default=100, help="GFN1 points per run and round (100)")
    p.add_argument("--lr1", type=float, default=3e-3)
    p.add_argument("--epochs1", type=int, default=12)
    p.add_argument("--lr2", type=float, default=3e-4)
    p.add_argument("--epochs2", type=int, default=3)
    p.add_argument("--fit-epochs", type=int, default=600)
    p.add_argument("--e-max", type=float, default=600.0)
    p.add_argument("--restart", action="store_true")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    os.makedirs(a.out, exist_ok=True)
    d = np.load(a.data)
    data = tuple(torch.tensor(d[k], dtype=torch.float64) for k in ("positions", "energies", "forces")) + (
        torch.tensor(d["kind"]),)
    model, results, start = AzobenzeneMLP.load(a.model), [], 0
    if a.restart:
        results = json.load(open(os.path.join(a.out, "active_learning.json")))
        results = [r for r in results if not r["final"]]
        start = len(results)
        model = AzobenzeneMLP.load(os.path.join(a.out, f"round{start}.pt"))
        d = np.load(os.path.join(a.out, f"data_round{start}.npz"))
        data = tuple(torch.tensor(d[k], dtype=torch.float64) for k in ("positions", "energies", "forces")) + (
            torch.tensor(d["kind"]),)
    for k in range(start, a.rounds):
        model, data = one_round(model, k, a, data, results)
    one_round(model, a.rounds, a, data, results, final=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
