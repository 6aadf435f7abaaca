"""PNG plots of a run folder: FES (bias and reweighted), CV time series, KL and learning rate."""

import os

import numpy as np

from ..io import read_colvar, read_grid_file

__all__ = ["plot_fes", "plot_run"]


def plot_fes(path: str, png: str, title: str = None, vmax: float = None) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts, f, names = read_grid_file(path)
    fig, ax = plt.subplots(figsize=(5, 4))
    if len(names) == 1:
        ax.plot(pts[:, 0], f)
        ax.set_xlabel(names[0])
        ax.set_ylabel("F (kJ/mol)")
    elif len(names) == 2:
        xs, ys = np.unique(pts[:, 0]), np.unique(pts[:, 1])
        z = f.reshape(len(xs), len(ys)).T
        finite = z[np.isfinite(z)]
        top = vmax if vmax is not None else min(float(finite.max()), 60.0)
        cs = ax.contourf(xs, ys, np.where(np.isfinite(z), z, np.nan), levels=np.linspace(0, top, 21), extend="max")
        fig.colorbar(cs, ax=ax, label="F (kJ/mol)")
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
    else:
        plt.close(fig)
        raise ValueError(f"can only plot 1D or 2D FES, {path} has {len(names)} CVs")
    ax.set_title(title or os.path.basename(path))
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def plot_run(run: str) -> list:
    """Write ``fes_bias.png``, ``fes_reweighted.png``, ``colvar.png``, ``ves.png``, ``diffsim.png`` into ``run``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not os.path.isdir(run):
        raise ValueError(f"run folder {run!r} does not exist")
    written = []
    for name in ("fes_bias", "fes_reweighted"):
        path = os.path.join(run, name + ".dat")
        if os.path.exists(path):
            written.append(plot_fes(path, os.path.join(run, name + ".png")))
    colvar = os.path.join(run, "colvar")
    if os.path.exists(colvar):
        col = read_colvar(colvar)
        cvs = [k for k in col if k not in ("time", "bias", "rbias")]
        fig, axes = plt.subplots(len(cvs) + 1, 1, figsize=(7, 1.8 * (len(cvs) + 1)), sharex=True)
        t = col["time"] / 1000.0
        for ax, k in zip(axes, cvs + ["rbias"]):
            ax.plot(t, col[k], ",", alpha=0.5)
            ax.set_ylabel(k)
        axes[-1].set_xlabel("time (ns)")
        fig.tight_layout()
        written.append(os.path.join(run, "colvar.png"))
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    log = os.path.join(run, "ves.log")
    if os.path.exists(log):
        rows = [ln.split() for ln in open(log) if not ln.startswith("#") and ln.strip()]
        if rows:
            t = np.array([float(r[1]) for r in rows]) / 1000.0
            kl = np.array([float(r[3]) for r in rows])
            lr = np.array([float(r[4]) for r in rows])
            fig, (a1, a2) = plt.subplots(2, 1, figsize=(7, 4), sharex=True)
            a1.semilogy(t, kl)
            a1.set_ylabel("KL")
            a2.semilogy(t, np.where(lr > 0, lr, np.nan))
            a2.set_ylabel("learning rate")
            a2.set_xlabel("time (ns)")
            fig.tight_layout()
            written.append(os.path.join(run, "ves.png"))
            fig.savefig(written[-1], dpi=110)
            plt.close(fig)
    dlog = os.path.join(run, "diffsim.log")
    if os.path.exists(dlog):  # differentiable-simulation training: loss and success per epoch
        rows = np.array([[float(v) for v in ln.split()[:3]] for ln in open(dlog)
                         if ln.strip() and not ln.startswith("#")]).reshape(-1, 3)
        if len(rows):
            fig, (a1, a2) = plt.subplots(2, 1, figsize=(7, 4), sharex=True)
            a1.plot(rows[:, 0], rows[:, 1], "o-", ms=3)
            a1.set_yscale("symlog", linthresh=1e-3)
            a1.set_ylabel("loss (CV units$^2$)")
            a2.plot(rows[:, 0], rows[:, 2], "o-", ms=3)
            a2.set_ylim(-0.02, 1.02)
            a2.set_ylabel("success fraction")
            a2.set_xlabel("epoch")
            fig.tight_layout()
            written.append(os.path.join(run, "diffsim.png"))
            fig.savefig(written[-1], dpi=110)
            plt.close(fig)
    if not written:
        raise ValueError(f"no run files (fes_bias.dat, colvar, ves.log, diffsim.log) found in {run!r}")
    return written
