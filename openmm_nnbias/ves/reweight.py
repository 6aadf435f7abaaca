"""Free energy by reweighting frames sampled with a static bias (Eq. 11 of Bonati et al.)."""

from __future__ import annotations

import math

import torch

from .grid import CVGrid

__all__ = ["reweighted_fes", "accumulate_log_weights"]


def reweighted_fes(
    samples: torch.Tensor,
    bias_values: torch.Tensor,
    grid: CVGrid,
    kT: float,
    out_of_range: str = "raise",
) -> torch.Tensor:
    """Free-energy surface from biased samples reweighted by ``exp(βV)`` (Eq. 11).

    ``F_i = −kT ln Σ_{t ∈ bin i} e^{β V(s_t)}``, shifted so that ``min F = 0``; bins with no
    sample are ``+inf``. Weights are computed as ``exp(β(V − max V))`` so large biases
    do not overflow. Use the frames of a run with a *static* (frozen) bias, or pass
    ``V − c(t)`` ("rbias") for frames sampled while the bias was changing.

    Parameters
    ----------
    samples : torch.Tensor
        CV values ``(N, n_cv)`` (nm, rad, ...).
    bias_values : torch.Tensor
        Bias V(s_t) of each frame in kJ/mol, ``(N,)``.
    grid : CVGrid
        Histogram grid.
    kT : float
        Thermal energy in kJ/mol (> 0).
    out_of_range : {"raise", "ignore"}
        Handling of samples outside a non-periodic CV's range (see :meth:`CVGrid.histogram`).

    Returns
    -------
    torch.Tensor
        F on the grid, ``(n_points,)`` float64 on the grid's device, kJ/mol;
        ``.reshape(grid.shape)`` gives the array over the CVs.

    Raises
    ------
    ValueError
        On non-finite bias values, mismatched lengths, NaN samples, out-of-range samples
        (with ``out_of_range="raise"``) or ``kT <= 0``.

    Examples
    --------
    >>> import torch
    >>> from openmm_nnbias.ves import CVGrid, reweighted_fes
    >>> grid = CVGrid([0.0], [2.0], [2], [False])
    >>> samples = torch.tensor([[0.5], [1.5]], dtype=torch.float64)
    >>> reweighted_fes(samples, torch.tensor([0.0, 1.0]), grid, kT=1.0).tolist()
    [1.0, 0.0]
    """
    kT = float(kT)
    if not kT > 0:
        raise ValueError(f"kT must be > 0 (kJ/mol), got {kT}")
    v = torch.as_tensor(bias_values).detach().to(grid.device, torch.float64).reshape(-1)
    samples = torch.as_tensor(samples)
    n = samples.shape[0] if samples.ndim >= 1 else 0
    if v.numel() != n:
        raise ValueError(f"bias_values must have one value per sample ({n}), got {v.numel()}")
    if n == 0:
        raise ValueError("no samples to reweight")
    if not torch.isfinite(v).all():
        raise ValueError("bias_values contains NaN or inf")
    log_w = v / kT
    weights = torch.exp(log_w - log_w.max())
    hist = grid.histogram(samples, weights=weights, out_of_range=out_of_range)
    fes = torch.full_like(hist, float("inf"))
    filled = hist > 0
    if not filled.any():
        raise ValueError("no sample falls inside the grid")
    fes[filled] = -kT * torch.log(hist[filled])
    return fes - fes[filled].min()


def accumulate_log_weights(logsum: torch.Tensor | None, index: torch.Tensor, log_weights: torch.Tensor,
                           n_points: int) -> torch.Tensor:
    """Running per-bin ``log Σ exp(βV)`` of Eq. 11, updated with a batch of frames (log-sum-exp safe).

    ``logsum``: the previous ``(n_points,)`` float64 sums (None: start from −inf); ``index``: flat
    grid bin of each frame; ``log_weights``: βV of each frame. ``−kT · logsum`` is the reweighted FES.
    """
    if logsum is None:
        logsum = torch.full((n_points,), -math.inf, dtype=torch.float64)
    logw = log_weights.to(torch.float64)
    per_bin = torch.full_like(logsum, -math.inf).scatter_reduce(0, index, logw, reduce="amax")
    shift = torch.where(torch.isfinite(per_bin), per_bin, torch.zeros_like(per_bin))
    summed = torch.zeros_like(per_bin).index_add_(0, index, torch.exp(logw - shift[index]))
    return torch.logaddexp(logsum, torch.log(summed) + shift)
