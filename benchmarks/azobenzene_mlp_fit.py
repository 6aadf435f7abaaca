"""Fit :class:`~openmm_nnbias.systems.azobenzene.mlp.AzobenzeneMLP` to the GFN1-xTB set and check it (issue 17).

1. fit on ``azobenzene_gfn1_data.py``'s ``.npz`` (10 % validation split), print the
   validation MAE/RMSE of energies (kJ/mol, meV/atom) and forces (kJ/mol/nm), per kind too;
2. minima: the model minimized from the GFN1 trans/cis minima (L-BFGS), ΔE(cis − trans);
3. scans: on the GFN1 relaxed rotation/inversion geometries (same geometry, GFN1 single
   point vs model) and *model-relaxed* scans (restrained to the same CNNC / NNC values,
   harmonic restraint 2·10⁴ kJ/mol/rad², restraint energy not counted; safeguarded steepest
   descent, :func:`descend` — L-BFGS with a strong-Wolfe line search jumped at some points
   into unphysical geometries far from the data, where the MLP is wrong), barrier maxima;
4. cost per replica-step: forces (``make_force_fn``) and vector–Hessian products
   (``torch.func.vjp`` of the forces) for 1 and 16 replicas, one thread;
5. ``azobenzene_setup(potential=model)`` (minima, well runs) and unbiased Langevin runs of 16
   replicas from cis at 300 K and 1000 K (γ = 1/ps, 0.5 fs, 2 ps): finite? leaves the cis
   well? and GFN1-xTB single points on 48 frames of the second half of each run (errors on
   configurations the model generated itself, not drawn from the training distribution).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/azobenzene_mlp_fit.py \\
        --data /work/main/benchmarks/out/azo_gfn1/azo_gfn1_data.npz \\
        --out /work/main/benchmarks/out/azo_gfn1/azobenzene_mlp.pt
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

from openmm_nnbias.systems.azobenzene.molecule import AZOBENZENE_MASSES, CNNC_DIHEDRAL, NNC_ANGLE
from openmm_nnbias.systems.azobenzene.mlp import AzobenzeneMLP, fit
from openmm_nnbias.diffsim.langevin import LangevinSimulator, make_force_fn
from openmm_nnbias.recipes.diffsim.azobenzene import minimize_positions

KJ_TO_MEV = 1000.0 / 96.48533212
KINDS = ("minimum", "scan", "grid", "perturbed", "md")


def dihedral(x, idx):
    b0, b1, b2 = x[..., idx[1], :] - x[..., idx[0], :], x[..., idx[2], :] - x[..., idx[1], :], \
        x[..., idx[3], :] - x[..., idx[2], :]
    n1, n2 = torch.linalg.cross(b0, b1), torch.linalg.cross(b1, b2)
    m = torch.linalg.cross(n1, b1 / b1.norm(dim=-1, keepdim=True))
    return torch.atan2((m * n2).sum(-1), (n1 * n2).sum(-1))


def angle(x, idx):
    a, b = x[..., idx[0], :] - x[..., idx[1], :], x[..., idx[2], :] - x[..., idx[1], :]
    return torch.atan2(torch.linalg.cross(a, b).norm(dim=-1), (a * b).sum(-1))


def errors(model, x, e, f):
    xr = x.clone().requires_grad_(True)
    pe = model(xr)
    (g,) = torch.autograd.grad(pe.sum(), xr)
    de, df = (pe.detach() - e), (-g - f)
    return dict(n=int(x.shape[0]), e_mae=float(de.abs().mean()), e_rmse=float(de.pow(2).mean().sqrt()),
                f_mae=float(df.abs().mean()), f_rmse=float(df.pow(2).mean().sqrt()))


def descend(U, x0, steps=1500, max_step=0.002, ftol=10.0):
    """Safeguarded steepest descent: step α·F, no atom moves more than ``max_step`` nm per
    step, α grows ×1.2 on success and halves on an energy rise (then the step is undone).
    Unlike L-BFGS with a line search it cannot jump far from the start into a region the
    MLP never saw."""
    x = x0.detach().clone()
    alpha, e_old = 1e-5, None
    for _ in range(steps):
        xr = x.clone().requires_grad_(True)
        e = U(xr[None])[0]
        (g,) = torch.autograd.grad(e, xr)
        if e_old is not None and float(e) > e_old:
            x, alpha = x_prev, alpha * 0.5
            continue
        if float(g.abs().max()) < ftol:
            break
        step = -alpha * g
        scale = float(step.norm(dim=-1).max()) / max_step
        if scale > 1.0:
            step = step / scale
        x_prev, e_old = x, float(e.detach())
        x, alpha = x + step, alpha * 1.2
    return x


def restrained_scan(model, starts, targets, kind, k=2.0e4):
    rows = []
    for x0, t in zip(starts, targets):
        t = float(np.deg2rad(t))
        if kind == "rotation":  # the scan's CNNC may be −t (same point by symmetry): restrain to its sign
            t = t if float(dihedral(x0, CNNC_DIHEDRAL)) >= 0 else -t

        def U(x, t=t):
            if kind == "rotation":
                d = dihedral(x, CNNC_DIHEDRAL) - t
                d = torch.atan2(torch.sin(d), torch.cos(d))
            else:
                d = angle(x, NNC_ANGLE) - t
            return model(x) + k * d ** 2

        x = descend(U, x0)
        with torch.no_grad():
            rows.append((float(model(x)), float(torch.rad2deg(dihedral(x, CNNC_DIHEDRAL))),
                         float(torch.rad2deg(angle(x, NNC_ANGLE)))))
    return rows


def cost(model, reps=20):
    torch.manual_seed(0)
    f = make_force_fn(model)
    out = {}
    from openmm_nnbias.systems.azobenzene.molecule import azobenzene_positions
    for B in (1, 16):
        x = azobenzene_positions("cis") + 0.001 * torch.randn(B, 24, 3, dtype=torch.float64)
        f(x)
        t = time.perf_counter()
        for _ in range(reps):
            f(x)
        tf = (time.perf_counter() - t) / reps
        v = torch.randn_like(x)
        t = time.perf_counter()
        for _ in range(reps):
            _, vjp = torch.func.vjp(f, x)
            vjp(v)
        tv = (time.perf_counter() - t) / reps
        out[B] = dict(force_s=tf, vhp_s=tv, force_per_replica_s=tf / B, vhp_per_replica_s=tv / B)
        print(f"cost B={B:2d}: force {1e3 * tf:.2f} ms ({1e3 * tf / B:.3f} ms/replica), "
              f"force + VHP {1e3 * tv:.2f} ms ({1e3 * tv / B:.3f} ms/replica)", flush=True)
    return out


def langevin_check(model, x_cis, temperature, single_point, n_steps=4000, replicas=16, seed=0, n_check=48):
    masses = torch.tensor(AZOBENZENE_MASSES, dtype=torch.float64)
    sim = LangevinSimulator(model, masses, temperature=temperature, timestep=0.0005, friction=1.0, seed=seed)
    R0 = x_cis.expand(replicas, -1, -1).clone()
    from openmm_nnbias._units import KB

    kT = KB * temperature
    gen = torch.Generator().manual_seed(seed)
    V0 = torch.randn(R0.shape, generator=gen, dtype=torch.float64) * torch.sqrt(kT / masses)[:, None]
    t = time.perf_counter()
    traj = sim.run(R0, V0, n_steps=n_steps, record_every=20)
    wall = time.perf_counter() - t
    X = traj.positions
    with torch.no_grad():
        cnnc = torch.rad2deg(dihedral(X, CNNC_DIHEDRAL)).abs()
        nnc = torch.rad2deg(angle(X, NNC_ANGLE))
        e = model(X) - float(model(x_cis))
        nn = (X[..., 6, :] - X[..., 7, :]).norm(dim=-1)
    res = dict(temperature=temperature, ps=n_steps * 0.0005, replicas=replicas, wall_s=wall,
               finite=bool(torch.isfinite(X).all()), cnnc_abs_deg_range=[float(cnnc.min()), float(cnnc.max())],
               nnc_deg_range=[float(nnc.min()), float(nnc.max())], n_replicas_cnnc_above_90=int(
                   (cnnc > 90).any(0).sum()), energy_above_cis_kj_per_mol_max=float(e.max()),
               energy_above_cis_kj_per_mol_mean=float(e.mean()), nn_nm_range=[float(nn.min()), float(nn.max())])
    # out-of-sample test: GFN1-xTB single points on frames the model itself generated
    frames = X[X.shape[0] // 2:].reshape(-1, 24, 3)
    frames = frames[torch.randperm(frames.shape[0], generator=gen)[:n_check]]
    ref = [single_point(10.0 * fr.numpy()) for fr in frames]
    ok = [i for i, r in enumerate(ref) if r is not None]
    er = errors(model, frames[ok], torch.tensor([ref[i][0] for i in ok], dtype=torch.float64),
                torch.tensor(np.array([ref[i][1] for i in ok]), dtype=torch.float64))
    res["gfn1_on_model_frames"] = er
    print(f"Langevin {temperature:.0f} K: {res}", flush=True)
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="/work/main/benchmarks/out/azo_gfn1/azo_gfn1_data.npz")
    p.add_argument("--out", default="/work/main/benchmarks/out/azo_gfn1/azobenzene_mlp.pt")
    p.add_argument("--json", default=None, help="results JSON (default: next to --out)")
    p.add_argument("--hidden", default="128,64")
    p.add_argument("--epochs", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--force-weight", type=float, default=1.0)
    p.add_argument("--patience", type=int, default=80)
    p.add_argument("--e-max", type=float, default=600.0,
                   help="drop points more than this above the lowest energy, kJ/mol (600)")
    p.add_argument("--load", action="store_true", help="load --out instead of fitting")
    p.add_argument("--no-setup", action="store_true", help="skip the azobenzene_setup / Langevin checks")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from azobenzene_gfn1_data import single_point
    d = np.load(a.data)
    x, e, f = (torch.tensor(d[k], dtype=torch.float64) for k in ("positions", "energies", "forces"))
    kind = torch.tensor(d["kind"])
    keep = e - e.min() <= a.e_max
    print(f"kept {int(keep.sum())} of {keep.numel()} points within {a.e_max} kJ/mol of the lowest", flush=True)
    x, e, f, kind = x[keep], e[keep], f[keep], kind[keep]
    print(f"data: {x.shape[0]} points, counts {dict(zip(KINDS, torch.bincount(kind, minlength=5).tolist()))}",
          flush=True)
    res = {"n_points": int(x.shape[0])}
    t0 = time.time()
    if a.load:
        model = AzobenzeneMLP.load(a.out)
        val = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))[:int(round(0.1 * x.shape[0]))]
    else:
        model = AzobenzeneMLP(hidden=tuple(int(h) for h in a.hidden.split(",")))
        hist = fit(model, x, e, f, force_weight=a.force_weight, epochs=a.epochs, batch_size=a.batch_size,
                   lr=a.lr, patience=a.patience, verbose=20)
        val = hist["val_index"]
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        model.save(a.out)
        res.update(best_epoch=hist["best_epoch"], epochs_run=hist["epochs_run"], fit_s=time.time() - t0)
        print(f"fit: {hist['epochs_run']} epochs (best {hist['best_epoch']}), {time.time() - t0:.0f} s; "
              f"saved {a.out}", flush=True)
    err = errors(model, x[val], e[val], f[val])
    res["validation"] = err
    print(f"validation ({err['n']} points): energy MAE {err['e_mae']:.2f} kJ/mol "
          f"({err['e_mae'] * KJ_TO_MEV / 24:.2f} meV/atom), RMSE {err['e_rmse']:.2f} kJ/mol "
          f"({err['e_rmse'] * KJ_TO_MEV / 24:.2f} meV/atom); force MAE {err['f_mae']:.1f}, "
          f"RMSE {err['f_rmse']:.1f} kJ/mol/nm", flush=True)
    res["validation_by_kind"] = {}
    for k, name in enumerate(KINDS):
        sel = val[kind[val] == k]
        if sel.numel():
            r = errors(model, x[sel], e[sel], f[sel])
            res["validation_by_kind"][name] = r
            print(f"  {name:9s} n={r['n']:4d}  E MAE {r['e_mae']:.2f} RMSE {r['e_rmse']:.2f} kJ/mol; "
                  f"F MAE {r['f_mae']:.1f} RMSE {r['f_rmse']:.1f} kJ/mol/nm", flush=True)
    # minima
    g = {k: torch.tensor(d[k], dtype=torch.float64) for k in ("trans", "cis")}
    e_gfn = {k: single_point(10.0 * d[k])[0] for k in ("trans", "cis")}
    mins = {}
    for k in ("trans", "cis"):
        xm, em, fm = minimize_positions(model, g[k], max_steps=500)
        mins[k] = xm
        rmsd = float(((xm - xm.mean(0)) - (g[k] - g[k].mean(0))).norm(dim=-1).pow(2).mean().sqrt())
        res[f"{k}_model_min"] = dict(energy=em, max_force=fm,
                                     cnnc_deg=float(torch.rad2deg(dihedral(xm, CNNC_DIHEDRAL))),
                                     nnc_deg=float(torch.rad2deg(angle(xm, NNC_ANGLE))),
                                     gfn1_single_point_rel_trans=single_point(10.0 * xm.numpy())[0] - e_gfn["trans"],
                                     shift_from_gfn1_min_nm=rmsd)
    de_model = res["cis_model_min"]["energy"] - res["trans_model_min"]["energy"]
    de_gfn = e_gfn["cis"] - e_gfn["trans"]
    with torch.no_grad():
        de_model_at_gfn = float(model(g["cis"]) - model(g["trans"]))
    res.update(delta_e_model=de_model, delta_e_gfn1=de_gfn, delta_e_model_at_gfn1_geometries=de_model_at_gfn)
    print(f"ΔE(cis − trans): model {de_model:.1f} kJ/mol ({de_model / 96.485:.3f} eV) at its minima, "
          f"{de_model_at_gfn:.1f} at the GFN1 minima; GFN1 {de_gfn:.1f} ({de_gfn / 96.485:.3f} eV)", flush=True)
    print(f"  model minima: trans {res['trans_model_min']}\n  cis {res['cis_model_min']}", flush=True)
    e_model_trans = res["trans_model_min"]["energy"]
    with torch.no_grad():
        e_model_trans_g = float(model(g["trans"]))
    res["scans"] = {}
    for name, kind_ in (("rotation", "rotation"), ("inversion_trans", "inversion"), ("inversion_cis", "inversion")):
        geo = torch.tensor(d[f"scan_{name}"], dtype=torch.float64)
        targets = d[f"scan_{name}_deg"].tolist()
        gfn = [single_point(10.0 * xi.numpy())[0] - e_gfn["trans"] for xi in geo]
        with torch.no_grad():
            same = (model(geo) - e_model_trans_g).tolist()
        relaxed = restrained_scan(model, list(geo), targets, kind_)
        rows = [dict(target_deg=t, gfn1=gv, model_same_geometry=sv, model_relaxed=r[0] - e_model_trans,
                     model_relaxed_cnnc=r[1], model_relaxed_nnc=r[2])
                for t, gv, sv, r in zip(targets, gfn, same, relaxed)]
        res["scans"][name] = rows
        print(f"{name} scan (kJ/mol rel. trans; GFN1 relaxed geometry: GFN1 | model; model-relaxed):", flush=True)
        for r in rows:
            print(f"  {r['target_deg']:6.1f}°  {r['gfn1']:7.1f} | {r['model_same_geometry']:7.1f}   "
                  f"{r['model_relaxed']:7.1f}  (CNNC {r['model_relaxed_cnnc']:6.1f}, "
                  f"NNC {r['model_relaxed_nnc']:5.1f})", flush=True)
        for key in ("gfn1", "model_same_geometry", "model_relaxed"):
            res["scans"][f"{name}_max_{key}"] = max(r[key] for r in rows)
        print(f"  max: GFN1 {res['scans'][f'{name}_max_gfn1']:.1f}, model same geometry "
              f"{res['scans'][f'{name}_max_model_same_geometry']:.1f}, model relaxed "
              f"{res['scans'][f'{name}_max_model_relaxed']:.1f} kJ/mol", flush=True)
    res["cost"] = cost(model)
    if not a.no_setup:
        from openmm_nnbias.recipes.diffsim.azobenzene import azobenzene_setup
        t = time.time()
        setup = azobenzene_setup(potential=AzobenzeneMLP.load(a.out), n_replicas=4, n_steps=100, adjoint_steps=50,
                                 batch_size=20)
        keys = ("cis_cnnc_nnc", "trans_cnnc_nnc", "delta_e_cis_trans_kj_per_mol", "delta_e_cis_trans_ev",
                "minimized_max_force_kj_per_mol_nm", "n_start_configurations")
        res["setup"] = {k: setup.info[k] for k in keys}
        res["setup"]["seconds"] = time.time() - t
        print(f"azobenzene_setup(potential=AzobenzeneMLP): {res['setup']}", flush=True)
        res["langevin"] = [langevin_check(model, mins["cis"], T, single_point) for T in (300.0, 1000.0)]
    path = a.json or os.path.splitext(a.out)[0] + ".json"
    with open(path, "w") as fh:
        json.dump(res, fh, indent=1)
    print(f"results: {path}; total {time.time() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
