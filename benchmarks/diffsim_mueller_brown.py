"""DiffSim bias on Müller–Brown A → B at the authors' difficulty (15.4 k_BT barrier).

Trains with the command-line driver (``openmm-nnbias diffsim --system mueller-brown``),
then, on fresh replicas with a different seed (256 by default, the training dynamics:
γ = 0.1 ps⁻¹, dt = 1 fs, same trajectory length):

* success fraction unbiased vs with the trained bias (``enters``: any frame inside the
  product well, as in training; ``closest``: the frame closest to the well centre is inside,
  the authors' wording),
* the check that the exported ``bias.pt`` (TorchScript) equals the trainer's bias,
* the barrier along the A → B path in k_BT on U and on U + B: a string (simplified string
  method: start fixed at the minimum A of U, the other images, the end one started at B
  included, relaxed by steepest descent and re-spaced to equal arc length; the end image
  settles in the product minimum of the surface) gives the minimum-energy path; the barrier is
  the largest climb met going from A to B, ``max_j [E_j − min_{i≤j} E_i]`` (for U: A → A/C
  saddle). Also reported: U + B along the MEP of U.

Writes ``benchmarks/out/diffsim_mb/`` (run folder: bias.pt, checkpoint.pt, diffsim.log,
results.json) and PNGs in ``benchmarks/out/``: ``diffsim_mb_bias.png`` (trained bias and
both paths), ``diffsim_mb_density.png`` (log density of the sampled points, unbiased and
biased), ``diffsim_mb_profile.png`` (energy along the paths). Last line ``RESULT ...``.

    python benchmarks/diffsim_mueller_brown.py --epochs 20
"""

import argparse
import json
import math
import os
import time

import numpy as np
import torch

torch.set_num_threads(1)

from openmm_nnbias.runners.diffsim import run_diffsim  # noqa: E402
from openmm_nnbias.diffsim import LangevinSimulator, maxwell_boltzmann_velocities, success_fraction  # noqa: E402
from openmm_nnbias.recipes.diffsim import MB_MINIMA, MB_SADDLES  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "out")


def sample(setup, n_replicas, seed, bias=None):
    """Fresh replicas from the reactant pool, training dynamics; returns (T, B, 2) CVs and positions."""
    tr = setup.trainer
    g = torch.Generator().manual_seed(seed)
    sim = LangevinSimulator(setup.potential, setup.masses, setup.temperature, tr.simulator.timestep,
                            tr.simulator.friction, generator=g)
    idx = torch.randint(setup.start_positions.shape[0], (n_replicas,), generator=g)
    R0 = setup.start_positions[idx]
    V0 = maxwell_boltzmann_velocities(setup.masses, setup.temperature, n_replicas, generator=g)
    traj = sim.run(R0, V0, tr.n_steps, record_every=1, bias=bias)
    with torch.no_grad():
        return setup.cvs(traj.positions), traj.positions


def string_mep(energy, ends, n_images=64, n_iter=6000, step=2e-4, through=()):
    """Simplified string method on a 2D energy (x, y) → E: start fixed, end relaxed into its minimum."""
    pts = [ends[0], *through, ends[1]]
    seg = np.cumsum([0] + [np.hypot(*np.subtract(b, a)) for a, b in zip(pts[:-1], pts[1:])])
    s = np.linspace(0, seg[-1], n_images)
    path = torch.tensor(np.stack([np.interp(s, seg, [p[k] for p in pts]) for k in range(2)], 1))

    def reparam(p):
        d = torch.cat([torch.zeros(1, dtype=p.dtype), (p[1:] - p[:-1]).norm(dim=1).cumsum(0)])
        t = torch.linspace(0, float(d[-1]), n_images, dtype=p.dtype)
        return torch.stack([torch.tensor(np.interp(t, d, p[:, k])) for k in range(2)], 1)

    for _ in range(n_iter):
        x = path.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(energy(x).sum(), x)
        g[0] = 0.0
        move = step * g
        norm = move.norm(dim=1, keepdim=True)
        move = torch.where(norm > 0.01, move * 0.01 / norm, move)  # at most 0.01 nm per iteration
        path = reparam((path - move).detach())
    with torch.no_grad():
        return path, energy(path)


def climb(e):
    """Largest climb met going along the path: max_j (E_j − min_{i≤j} E_i)."""
    e = np.asarray(e)
    return float(np.max(e - np.minimum.accumulate(e)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--replicas", type=int, default=64)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--eval-replicas", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--restart", action="store_true")
    ap.add_argument("--run", default=os.path.join(OUT, "diffsim_mb"))
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    t0 = time.perf_counter()
    setup = run_diffsim("mueller-brown", args.run, args.epochs, replicas=args.replicas, steps=args.steps,
                        seed=args.seed, threads=1, progress=False, restart=args.restart)
    t_setup_train = time.perf_counter() - t0
    tr, kT, well = setup.trainer, setup.kT, setup.product_well
    t_train = sum(h["wall_time_s"] for h in tr.history)  # epochs only (also over restarts)
    print(f"trained {tr.epoch} epochs ({t_train:.0f} s in epochs, {t_setup_train:.0f} s this run incl. setup); "
          f"info {json.dumps(setup.info)}", flush=True)

    res = {"info": setup.info, "epochs": tr.epoch, "train_wall_s": t_train,
           "train_success": [h["success_fraction"] for h in tr.history],
           "train_loss": [h["mean_loss"] for h in tr.history]}
    cv0, pos0 = sample(setup, args.eval_replicas, 1000 + args.seed)
    cv1, pos1 = sample(setup, args.eval_replicas, 2000 + args.seed, bias=tr.bias_energy)
    for tag, cv in (("unbiased", cv0), ("trained", cv1)):
        res[f"success_{tag}"] = success_fraction(cv, well)
        res[f"success_closest_{tag}"] = success_fraction(cv, well, "closest")
        print(f"{tag}: success (enters) {res[f'success_{tag}']:.3f}, (closest) "
              f"{res[f'success_closest_{tag}']:.3f} over {cv.shape[1]} replicas x {tr.n_steps} steps",
              flush=True)

    scripted = torch.jit.load(os.path.join(args.run, "bias.pt"))
    x = pos1[::50].reshape(-1, 1, 3)
    with torch.no_grad():
        res["bias_pt_max_abs_diff_kj"] = float((scripted(x) - tr.bias_energy(x)).abs().max())
    print(f"bias.pt vs trainer bias: max |dB| = {res['bias_pt_max_abs_diff_kj']:.2e} kJ/mol", flush=True)

    def U(xy):
        return setup.potential(torch.cat([xy, torch.zeros_like(xy[:, :1])], 1)[:, None, :])

    def UB(xy):
        x3 = torch.cat([xy, torch.zeros_like(xy[:, :1])], 1)[:, None, :]
        return setup.potential(x3) + tr.bias_energy(x3)

    ends = (MB_MINIMA["A"], MB_MINIMA["B"])
    via = (MB_SADDLES["AC"], MB_MINIMA["C"], MB_SADDLES["CB"])
    path_u, e_u = string_mep(U, ends, through=via)
    path_ub, e_ub = string_mep(UB, ends, through=via)
    with torch.no_grad():
        eub_on_u = UB(path_u)
    res["barrier_U_kT"] = climb(e_u / kT)
    res["barrier_UB_kT"] = climb(e_ub / kT)
    res["barrier_UB_on_U_path_kT"] = climb(eub_on_u / kT)
    with torch.no_grad():
        b_ends = tr.bias_energy(torch.tensor([[[*MB_MINIMA[k], 0.0]] for k in "ACB"], dtype=torch.float64))
    res["bias_at_A_C_B_kj"] = b_ends.tolist()
    print(f"barrier A->B: U {res['barrier_U_kT']:.2f} kT, U+B (MEP of U+B) {res['barrier_UB_kT']:.2f} kT, "
          f"U+B along the MEP of U {res['barrier_UB_on_U_path_kT']:.2f} kT; B(A, C, B) = "
          f"{[round(v, 1) for v in res['bias_at_A_C_B_kj']]} kJ/mol", flush=True)
    json.dump(res, open(os.path.join(args.run, "results.json"), "w"), indent=1)
    plots(setup, pos0, pos1, (path_u, e_u, path_ub, e_ub, eub_on_u), res)
    print(f"RESULT diffsim mueller-brown epochs={tr.epoch} replicas={tr.n_replicas} steps={tr.n_steps} "
          f"success_unbiased={res['success_unbiased']:.3f} success_trained={res['success_trained']:.3f} "
          f"(closest {res['success_closest_unbiased']:.3f} -> {res['success_closest_trained']:.3f}) "
          f"barrier_U_kT={res['barrier_U_kT']:.2f} barrier_UplusB_kT={res['barrier_UB_kT']:.2f} "
          f"train_wall_s={t_train:.0f} total_wall_s={time.perf_counter() - t0:.0f}")


def plots(setup, pos0, pos1, paths, res):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kT, tr = setup.kT, setup.trainer
    path_u, e_u, path_ub, e_ub, eub_on_u = paths
    xs, ys = np.linspace(-1.5, 1.2, 136), np.linspace(-0.2, 2.0, 111)
    X, Y = np.meshgrid(xs, ys)
    grid = torch.tensor(np.stack([X.ravel(), Y.ravel(), 0 * X.ravel()], 1))[:, None, :]
    with torch.no_grad():
        Ug = (setup.potential(grid).numpy().reshape(X.shape) - setup.potential(grid).min().item()) / kT
        Bg = tr.bias_energy(grid).numpy().reshape(X.shape) / kT
    levels = np.arange(0, 30, 2.0)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3))
    cs = axes[0].contourf(X, Y, Bg - Bg.min(), 30, cmap="viridis")
    fig.colorbar(cs, ax=axes[0], label="B − min B (k_BT)")
    axes[0].contour(X, Y, Ug, levels=levels, colors="w", linewidths=0.5)
    axes[0].set_title("trained bias B(x, y), U contours (2 k_BT)")
    UBg = Ug + Bg
    cs = axes[1].contourf(X, Y, np.clip(UBg - UBg.min(), 0, 60), 30, cmap="magma")
    fig.colorbar(cs, ax=axes[1], label="U + B − min (k_BT)")
    axes[1].set_title("U + B")
    for ax in axes:
        ax.plot(path_u[:, 0], path_u[:, 1], "c--", lw=1.5, label="MEP of U")
        ax.plot(path_ub[:, 0], path_ub[:, 1], "r-", lw=1.5, label="MEP of U + B")
        ax.set_xlabel("x (nm)")
        ax.set_ylabel("y (nm)")
    axes[0].legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "diffsim_mb_bias.png"), dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3), sharey=True)
    for ax, pos, tag, key in ((axes[0], pos0, "unbiased", "success_unbiased"),
                              (axes[1], pos1, "trained bias", "success_trained")):
        p = pos[:, :, 0, :2].reshape(-1, 2).numpy()
        H, xe, ye = np.histogram2d(p[:, 0], p[:, 1], bins=[xs, ys], density=True)
        ax.contour(X, Y, Ug, levels=levels, colors="k", linewidths=0.4)
        im = ax.pcolormesh(xe, ye, np.log(np.where(H > 0, H, np.nan)).T, cmap="inferno", shading="flat")
        fig.colorbar(im, ax=ax, label="log density")
        ax.set_title(f"{tag}: success {res[key]:.2f} ({pos.shape[1]} replicas, {tr.n_steps} steps)")
        ax.set_xlabel("x (nm)")
    axes[0].set_ylabel("y (nm)")
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "diffsim_mb_density.png"), dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for path, e, lab in ((path_u, e_u, f"U on MEP(U): climb {res['barrier_U_kT']:.1f} k_BT"),
                         (path_u, eub_on_u, f"U+B on MEP(U): climb {res['barrier_UB_on_U_path_kT']:.1f} k_BT"),
                         (path_ub, e_ub, f"U+B on MEP(U+B): climb {res['barrier_UB_kT']:.1f} k_BT")):
        d = torch.cat([torch.zeros(1, dtype=path.dtype), (path[1:] - path[:-1]).norm(dim=1).cumsum(0)])
        ax.plot(d / d[-1], (e - e[0]) / kT, label=lab)
    ax.set_xlabel("path coordinate A → B (normalized arc length)")
    ax.set_ylabel("E − E(A) (k_BT)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "diffsim_mb_profile.png"), dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
