"""PNG plots of a run folder: FES (best estimate, bias, reweighted), 1-D marginals of runs with many CVs, CV time
series, KL and learning rate."""

import os

import numpy as np

from ..io import read_colvar, read_grid_file, read_units

__all__ = ["plot_fes", "plot_marginals", "plot_run", "time_axis"]


def _label(name: str, units: dict) -> str:
    """``name (unit)`` from a file's ``#! SET units_*`` lines; the bare name when the file has none."""
    unit = units.get(name)
    return name if unit in (None, "", "1", "-") else f"{name} ({unit})"


def time_axis(times_ps) -> tuple:
    """Times (ps) in the unit that suits the run's length: ``(values, "time (ps)")`` below 1 ns, else in ns.

    Examples
    --------
    >>> time_axis(np.array([0.0, 2.0]))[1], time_axis(np.array([0.0, 5000.0]))
    ('time (ps)', (array([0., 5.]), 'time (ns)'))
    """
    t = np.asarray(times_ps, dtype=float)
    if t.size and np.nanmax(np.abs(t)) >= 1000.0:
        return t / 1000.0, "time (ns)"
    return t, "time (ps)"


def _marker_size(n: int) -> float:
    """Marker size (points) of a scatter of ``n`` samples: visible for a short run, fine for a long one."""
    return 4.0 if n <= 500 else 2.0 if n <= 20_000 else 1.0


def plot_fes(path: str, png: str, title: str = None, vmax: float = None) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts, f, names = read_grid_file(path)
    units = read_units(path)
    fig, ax = plt.subplots(figsize=(5, 4))
    if len(names) == 1:
        ax.plot(pts[:, 0], f)
        ax.set_xlabel(_label(names[0], units))
        ax.set_ylabel("F (kJ/mol)")
    elif len(names) == 2:
        xs, ys = np.unique(pts[:, 0]), np.unique(pts[:, 1])
        z = f.reshape(len(xs), len(ys)).T
        finite = z[np.isfinite(z)]
        top = vmax if vmax is not None else min(float(finite.max()), 60.0)
        cs = ax.contourf(xs, ys, np.where(np.isfinite(z), z, np.nan), levels=np.linspace(0, top, 21), extend="max")
        fig.colorbar(cs, ax=ax, label="F (kJ/mol)")
        ax.set_xlabel(_label(names[0], units))
        ax.set_ylabel(_label(names[1], units))
    else:
        plt.close(fig)
        raise ValueError(f"can only plot 1D or 2D FES, {path} has {len(names)} CVs")
    ax.set_title(title or os.path.basename(path))
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def _marginal_files(run: str) -> dict:
    """{cv: {label: path}} of the 1-D marginal files of a run (``openmm-nnbias marginals`` / ``reweight``)."""
    found: dict = {}
    for prefix, label in (("fes_bias_", "bias (Eq. 4)"), ("fes_colvar_reweighted_", "reweighted")):
        for name in sorted(os.listdir(run)):
            if name.startswith(prefix) and name.endswith(".dat"):
                path = os.path.join(run, name)
                cvs = read_grid_file(path)[2]
                if len(cvs) == 1 and name == f"{prefix}{cvs[0]}.dat":
                    found.setdefault(cvs[0], {})[label] = path
    return found


def plot_marginals(run: str, png: str) -> str:
    """One panel per CV with its 1-D marginal files (Eq. 4 of the bias, reweighted); returns ``png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = _marginal_files(run)
    if not found:
        raise ValueError(f"no 1-D marginal files (fes_bias_<cv>.dat, fes_colvar_reweighted_<cv>.dat) in {run!r}")
    cols = min(3, len(found))
    rows = -(-len(found) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, (cv, files) in zip(axes.ravel(), found.items()):
        for label, path in files.items():
            points, f, _ = read_grid_file(path)
            ax.plot(points[:, 0], f, label=label)
        units = read_units(next(iter(files.values())))
        ax.set_xlabel(_label(cv, units))
        ax.set_ylabel("F (kJ/mol)")
    for ax in axes.ravel()[len(found):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def plot_run(run: str) -> list:
    """Write ``fes.png``, ``fes_bias.png``, ``fes_reweighted.png``, ``marginals.png`` (runs with per-CV marginal
    files), ``colvar.png``, ``ves.png``, ``diffsim.png`` into ``run``, for the files it holds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not os.path.isdir(run):
        raise ValueError(f"run folder {run!r} does not exist")
    written = []
    for name in ("fes", "fes_bias", "fes_reweighted"):
        path = os.path.join(run, name + ".dat")
        if os.path.exists(path):
            written.append(plot_fes(path, os.path.join(run, name + ".png")))
    if _marginal_files(run):
        written.append(plot_marginals(run, os.path.join(run, "marginals.png")))
    colvar = os.path.join(run, "colvar")
    if os.path.exists(colvar):
        col, units = read_colvar(colvar), {"rbias": "kJ/mol", **read_units(colvar)}
        cvs = [k for k in col if k not in ("time", "bias", "rbias")]
        fig, axes = plt.subplots(len(cvs) + 1, 1, figsize=(7, 1.8 * (len(cvs) + 1)), sharex=True)
        t, t_label = time_axis(col["time"])
        for ax, k in zip(axes, cvs + ["rbias"]):
            ax.plot(t, col[k], ".", ms=_marker_size(len(t)), alpha=0.5)
            ax.set_ylabel(_label(k, units))
        axes[-1].set_xlabel(t_label)
        fig.tight_layout()
        written.append(os.path.join(run, "colvar.png"))
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    log = os.path.join(run, "ves.log")
    if os.path.exists(log):  # Deep-VES: KL and learning rate per iteration over simulated time
        rows = [ln.split() for ln in open(log) if not ln.startswith("#") and ln.strip()]
        if rows:
            t, t_label = time_axis([float(r[1]) for r in rows])
            kl = np.array([float(r[3]) for r in rows])
            lr = np.array([float(r[4]) for r in rows])
            written.append(_two_panels(os.path.join(run, "ves.png"), t_label,
                                       (t, kl, "KL", dict(yscale="log")),
                                       (t, np.where(lr > 0, lr, np.nan), "learning rate", dict(yscale="log"))))
    dlog = os.path.join(run, "diffsim.log")
    if os.path.exists(dlog):  # differentiable-simulation training: loss and success per epoch
        rows = np.array([[float(v) for v in ln.split()[:3]] for ln in open(dlog)
                         if ln.strip() and not ln.startswith("#")]).reshape(-1, 3)
        if len(rows):
            marker = dict(fmt="o-", ms=3)
            written.append(_two_panels(os.path.join(run, "diffsim.png"), "epoch",
                                       (rows[:, 0], rows[:, 1], "loss (CV units$^2$)",
                                        dict(marker, yscale="symlog", linthresh=1e-3)),
                                       (rows[:, 0], rows[:, 2], "success fraction", dict(marker, ylim=(-0.02, 1.02)))))
    if not written:
        raise ValueError(f"no run files (fes_bias.dat, colvar, ves.log, diffsim.log) found in {run!r}")
    return written


def _two_panels(png: str, xlabel: str, top: tuple, bottom: tuple) -> str:
    """Two stacked panels sharing x; each ``(x, y, ylabel, style)`` with optional style keys
    ``fmt``, ``ms``, ``yscale`` (``linthresh`` for symlog) and ``ylim``. Returns ``png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(7, 4), sharex=True)
    for ax, (x, y, ylabel, style) in zip(axes, (top, bottom)):
        ax.plot(x, y, style.get("fmt", "-"), ms=style.get("ms"))
        if "yscale" in style:
            extra = {"linthresh": style["linthresh"]} if "linthresh" in style else {}
            ax.set_yscale(style["yscale"], **extra)
        if "ylim" in style:
            ax.set_ylim(*style["ylim"])
        ax.set_ylabel(ylabel)
    axes[-1].set_xlabel(xlabel)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png
