"""The free energy a Deep-VES bias implies (Eq. 4), as 1-D marginals over any number of CVs.

With the target p(s) of the run, a converged bias gives F(s) = −V(s) − kT ln p(s) (Eq. 4): for the well-tempered
target p ∝ e^{−βF/γ}, F = −V γ/(γ − 1); for the uniform target F = −V. Over more than three CVs no grid holds F, but
its 1-D marginals F_k(s_k) = −kT ln ∫ e^{−βF(s)} ds_{≠k} are integrals that uniform points of the CV box estimate:
each point weighs e^{−βF}. :func:`bias_marginals` does this for a bias network, :func:`bias_marginals_run` for a run
folder (``openmm-nnbias marginals``). The effective sample size (Σw)²/Σw² of the weights says how many points count;
while the bias learns, F is the current bias's estimate, as ``fes_bias.dat`` is for up to 3 CVs.

MD units: CV units (nm, rad), kJ/mol.
"""

from __future__ import annotations

import math
import os
from typing import Iterator, Optional

import numpy as np

from ..io import read_units, write_grid_file

__all__ = ["bias_log_weights", "bias_marginals", "bias_marginals_run"]

#: uniform points per evaluation of the network
CHUNK = 200_000


def _free_energy_scale(biasFactor: Optional[float]) -> float:
    """−βF = scale · βV: γ/(γ − 1) for the well-tempered target, 1 for the uniform one (``biasFactor`` None)."""
    if biasFactor is None:
        return 1.0
    gamma = float(biasFactor)
    if not (gamma > 1 and math.isfinite(gamma)):
        raise ValueError(f"biasFactor must be a finite number > 1 (or None for a uniform target), got {biasFactor}")
    return gamma / (gamma - 1.0)


def bias_log_weights(bias, kT: float, biasFactor: Optional[float], points: int, seed: int = 0,
                     chunk: int = CHUNK) -> Iterator[tuple]:
    """Uniform points of the bias's CV box and their log-weights −βF = βV γ/(γ − 1), ``chunk`` at a time.

    ``bias``: a :class:`~openmm_nnbias.bias.NeuralBias` (or its TorchScript form) with ``lower``, ``upper``; yields
    ``(s (m, n_cvs), logw (m,))`` NumPy arrays, ``points`` in all.
    """
    import torch

    kT = float(kT)
    if not (kT > 0 and math.isfinite(kT)):
        raise ValueError(f"kT must be a finite number > 0 (kJ/mol), got {kT}")
    if int(points) < 1:
        raise ValueError(f"points must be >= 1, got {points}")
    scale = _free_energy_scale(biasFactor) / kT
    lower = torch.tensor(list(bias.lower), dtype=torch.float64)
    width = torch.tensor(list(bias.upper), dtype=torch.float64) - lower
    gen = torch.Generator().manual_seed(int(seed))
    left = int(points)
    with torch.no_grad():
        while left > 0:
            m = min(chunk, left)
            s = lower + torch.rand(m, len(lower), generator=gen, dtype=torch.float64) * width
            v = bias(s).reshape(-1).to(torch.float64)
            yield s.numpy(), (v * scale).numpy()
            left -= m


def bias_marginals(bias, kT: float, biasFactor: Optional[float], bins: int = 50, points: int = 12_000_000,
                   seed: int = 0, chunk: int = CHUNK) -> tuple:
    """The 1-D marginals of the FES implied by ``bias`` (Eq. 4), by uniform Monte Carlo over its CV box.

    Returns ``(axes, fes, ess)``: per CV the bin centres and F (kJ/mol, min 0; bins as
    :func:`~openmm_nnbias.analysis.histogram.histogram_fes`), and the effective sample size of the weights.

    Examples
    --------
    >>> import math
    >>> from openmm_nnbias.bias import NeuralBias
    >>> bias = NeuralBias([True] * 4, [-math.pi] * 4, [math.pi] * 4, seed=0)   # V = 0: every marginal flat
    >>> axes, fes, ess = bias_marginals(bias, kT=2.494, biasFactor=10.0, bins=12, points=20_000)
    >>> len(fes), fes[0].shape, float(abs(fes[2]).max()) < 0.5, round(ess)
    (4, (12,), True, 20000)
    """
    bins = int(bins)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    lower, upper = np.array(list(bias.lower), float), np.array(list(bias.upper), float)
    sums = np.zeros((len(lower), bins))  # Σ e^{logw − shift} per bin of each CV
    s1 = s2 = 0.0  # Σw and Σw², for the effective sample size
    shift = None
    for s, logw in bias_log_weights(bias, kT, biasFactor, points, seed, chunk):
        top = float(logw.max())
        if shift is None or top > shift:  # one reference for all chunks, raised when a chunk exceeds it
            if shift is not None:
                factor = math.exp(shift - top)
                sums, s1, s2 = sums * factor, s1 * factor, s2 * factor ** 2
            shift = top
        w = np.exp(logw - shift)
        idx = np.clip(np.floor((s - lower) / (upper - lower) * bins).astype(int), 0, bins - 1)
        for k in range(len(lower)):
            sums[k] += np.bincount(idx[:, k], weights=w, minlength=bins)
        s1, s2 = s1 + float(w.sum()), s2 + float((w ** 2).sum())
    axes, fes = [], []
    for k in range(len(lower)):
        with np.errstate(divide="ignore"):
            f = -float(kT) * np.log(sums[k])
        fes.append(f - f[np.isfinite(f)].min())
        axes.append(lower[k] + (np.arange(bins) + 0.5) * (upper[k] - lower[k]) / bins)
    return axes, fes, s1 ** 2 / s2


def _run_target(run: str) -> tuple:
    """(temperature K, bias factor or None) of a run from its ``checkpoint.pt`` (the run configuration)."""
    import torch

    path = os.path.join(run, "checkpoint.pt")
    if not os.path.exists(path) and os.path.exists(os.path.join(run, "checkpoint.0.pt")):  # walkers: rank 0's
        path = os.path.join(run, "checkpoint.0.pt")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist: the run's temperature and target are read from it")
    config = torch.load(path, weights_only=True, map_location="cpu").get("config")
    if not isinstance(config, dict) or "temperature" not in config or "target" not in config:
        raise ValueError(f"{path} holds no run configuration (temperature, target): not a Deep-VES checkpoint")
    target = config["target"]
    return float(config["temperature"]), (target.get("biasFactor") if target.get("kind") != "Uniform" else None)


def _snapshots(run: str, window: float) -> list:
    """The ``bias_<iteration>.pt`` files of the last ``window`` of the run's snapshots (iteration ≥ (1 − window)·last)."""
    found = []
    for name in os.listdir(run):
        stem = name[len("bias_"):-len(".pt")] if name.startswith("bias_") and name.endswith(".pt") else ""
        if stem.isdigit():
            found.append((int(stem), os.path.join(run, name)))
    if not found:
        raise ValueError(f"window: {run} has no bias snapshots (bias_<iteration>.pt; the updater writes them every "
                         "snapshotInterval iterations)")
    last = max(it for it, _ in found)
    return [path for it, path in sorted(found) if it >= (1.0 - window) * last]


def bias_marginals_run(run: str, bins: int = 50, points: int = 12_000_000, seed: int = 0,
                       window: float = 0.0) -> tuple:
    """Write the Eq. 4 marginals of a Deep-VES run folder: ``RUN/fes_bias_<cv>.dat``, one per CV.

    ``window`` 0: the bias of ``RUN/bias.pt`` (the network at the last FES interval or at the end). ``window`` in
    (0, 1]: the mean of the marginals of the bias snapshots ``RUN/bias_<iteration>.pt`` of that last fraction of
    the run (0.25: the rule of ``fes.dat`` while the bias learns; ``points`` for each snapshot). The temperature and
    the target are ``RUN/checkpoint.pt``'s. Returns ``(paths, ess)`` (the smallest effective sample size).
    """
    import torch

    from .._units import KB

    window = float(window)
    if not 0.0 <= window <= 1.0:
        raise ValueError(f"window must be a fraction of the run in [0, 1], got {window}")
    model_path = os.path.join(run, "bias.pt")
    if not os.path.exists(model_path):
        raise FileNotFoundError(f"{model_path} does not exist: not a Deep-VES run folder, or no FES interval yet")
    temperature, bias_factor = _run_target(run)
    model = torch.jit.load(model_path, map_location="cpu")  # names and domain; the bias itself unless window > 0
    names = list(model.cv_names)
    snapshots = _snapshots(run, window) if window > 0 else []
    biases = [torch.jit.load(p, map_location="cpu") for p in snapshots] or [model]
    fes_all, ess = [], math.inf
    for m in biases:
        axes, fes, e = bias_marginals(m.bias, KB * temperature, bias_factor, bins, points, seed)
        fes_all.append(fes)
        ess = min(ess, e)
    fes = [np.mean([f[k] for f in fes_all], axis=0) for k in range(len(names))]
    fes = [f - f[np.isfinite(f)].min() for f in fes]
    settings = {"estimator": "bias-eq4-marginal" if window == 0 else "bias-eq4-marginal-window",
                "points": int(points), "ess": round(ess)}
    if window > 0:
        settings["snapshots"] = ",".join(os.path.basename(p) for p in snapshots)
    periodic = [bool(p) for p in model.bias.periodic]
    lower, upper = list(model.bias.lower), list(model.bias.upper)
    colvar = os.path.join(run, "colvar")
    units = read_units(colvar) if os.path.exists(colvar) else {}
    paths = []
    for k, name in enumerate(names):
        path = os.path.join(run, f"fes_bias_{name}.dat")
        write_grid_file(path, [name], [axes[k]], fes[k], [periodic[k]], lower=[lower[k]], upper=[upper[k]],
                        units=[units[name]] if name in units else None, settings=settings)
        paths.append(path)
    return paths, ess
