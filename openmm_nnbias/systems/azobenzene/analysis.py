"""Azobenzene crossing analysis: log-density of sampled (CNNC, NNC) points and the mechanism.

Mechanisms (Axelrod et al. 2022; Šípka et al. 2023, section 4.2) in the paper's two angles:

* **rotation**: the CNNC dihedral turns through ±90° while the N=N–C angle stays near its
  minimum value (≈ 115–130°);
* **inversion**: the N=N–C angle opens to ≈ 180° (linear) while the dihedral jumps
  (it is ill-defined at a linear angle) without passing 90° at a bent angle;
* **rotation-assisted inversion**: both at once, the dihedral passes ±90° with the angle
  widened well beyond its minimum but not linear.

:func:`classify_crossings` labels each crossing trajectory by the N=N–C angle at the frame
where |CNNC| is closest to 90° before the first entry into the product well: below
``rotation_max`` (145°) rotation, above ``inversion_min`` (165°) inversion, otherwise
rotation-assisted inversion. Only the one N=N–C angle of the setup's CVs is seen: an
inversion at the other nitrogen reads as rotation here.

Units: rad in, degrees in the plot and in the returned angles.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence

import torch

__all__ = ["classify_crossings", "plot_log_density"]


def classify_crossings(cv: torch.Tensor, first_step: torch.Tensor, rotation_max: float = 145.0,
                       inversion_min: float = 165.0) -> Dict[str, object]:
    """Mechanism of each crossing trajectory.

    Parameters
    ----------
    cv : torch.Tensor
        ``(T, B, 2)`` frames of (CNNC dihedral, N=N–C angle) in rad.
    first_step : torch.Tensor
        ``(B,)`` first frame inside the product well (−1: no crossing).
    rotation_max, inversion_min : float, optional
        Thresholds on the N=N–C angle (degrees) at |CNNC| ≈ 90°.

    Returns
    -------
    dict
        ``labels`` (list per crossed replica), ``nnc_at_90_deg``, ``nnc_max_deg`` (lists, degrees),
        ``counts`` (label → number).

    Examples
    --------
    >>> t = torch.linspace(0, 1, 11)
    >>> cv = torch.stack([torch.deg2rad(30 + 150 * t), torch.full_like(t, math.radians(120))], -1)[:, None]
    >>> classify_crossings(cv, torch.tensor([10]))["labels"]
    ['rotation']
    """
    if not isinstance(cv, torch.Tensor) or cv.ndim != 3 or cv.shape[-1] != 2:
        raise ValueError(f"cv must be a (T, B, 2) tensor in rad, got {getattr(cv, 'shape', type(cv))}")
    if not (0 < rotation_max < inversion_min <= 180):
        raise ValueError(f"need 0 < rotation_max < inversion_min <= 180 degrees, got {rotation_max}, {inversion_min}")
    deg = torch.rad2deg(cv.double())
    labels, at90, nmax = [], [], []
    for b, s in enumerate(first_step.tolist()):
        if s < 0:
            continue
        path = deg[: s + 1, b]
        k = int((path[:, 0].abs() - 90.0).abs().argmin())
        a = float(path[k, 1])
        at90.append(a)
        nmax.append(float(path[:, 1].max()))
        labels.append("rotation" if a < rotation_max else "inversion" if a > inversion_min
                      else "rotation-assisted inversion")
    counts = {name: labels.count(name) for name in ("rotation", "rotation-assisted inversion", "inversion")}
    return {"labels": labels, "nnc_at_90_deg": at90, "nnc_max_deg": nmax, "counts": counts}


def plot_log_density(panels: Sequence[tuple], path: str, wells: Optional[dict] = None, bins: int = 60,
                     folded: bool = False) -> str:
    """PNG of the log-density of sampled (CNNC, N=N–C) points, one panel per run.

    Parameters
    ----------
    panels : sequence of (str, torch.Tensor)
        ``(title, cv)`` with ``cv`` ``(..., 2)`` in rad (all frames of all replicas).
    path : str
        Output PNG.
    wells : dict, optional
        Name → (CNNC, NNC) centre in rad, marked on every panel.
    bins : int, optional
        Histogram bins per axis (CNNC −90…270°, N=N–C 90…180°).
    folded : bool, optional
        Plot |CNNC| on 0…180° instead (cis left, trans right, the rotation saddle at 90° in the
        middle): the potential is the same for both rotation senses (mirror images), so this
        pools them (default False: the signed dihedral).

    Returns
    -------
    str
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    if not panels:
        raise ValueError("panels must not be empty")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False, sharey=True)
    for ax, (title, cv) in zip(axes[0], panels):
        d = torch.rad2deg(torch.as_tensor(cv).double().reshape(-1, 2)).numpy()
        lo, hi = (0.0, 180.0) if folded else (-90.0, 270.0)
        # −90…270°: cis (±30°) and trans (180°) inside, both rotation senses; folded: |CNNC|
        dih = np.abs(d[:, 0]) if folded else (d[:, 0] + 90.0) % 360.0 - 90.0
        h, xe, ye = np.histogram2d(dih, d[:, 1], bins=bins, range=[[lo, hi], [90, 180]], density=True)
        with np.errstate(divide="ignore"):
            logh = np.log(h.T)
        im = ax.pcolormesh(xe, ye, np.where(np.isfinite(logh), logh, np.nan), shading="auto", cmap="viridis")
        fig.colorbar(im, ax=ax, label="ln density (1/deg²)")
        for name, (c, a) in (wells or {}).items():
            c = abs(math.degrees(c)) if folded else (math.degrees(c) + 90.0) % 360.0 - 90.0
            ax.plot([c], [math.degrees(a)], "r+", ms=10)
            ax.annotate(name, (c, math.degrees(a)), color="r", xytext=(4, 4),
                        textcoords="offset points")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("|CNNC dihedral| (deg)" if folded else "CNNC dihedral (deg)")
        ax.set_xlim(lo, hi)
        ax.set_ylim(90, 180)
    axes[0][0].set_ylabel("N=N–C angle (deg)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
