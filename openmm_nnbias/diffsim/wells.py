"""Reactant/product wells in CV space and the barrier-crossing loss (Eq. 5).

A well is the ellipsoid ``dᵀ Σ⁻¹ d < χ²_{1−p}(dim)`` around the mean ``μ`` of
CV samples from a short unbiased run, with ``d = s − μ`` (wrapped into
``[−P/2, P/2)`` for periodic CVs of period ``P``) and ``Σ`` their covariance.

Reading of NOTES' "χ²(p = 0.1, dim)": ``p`` is the tail probability, so the
threshold is the ``1 − p`` = 90 % quantile, ``scipy.stats.chi2.ppf(1 - p, dim)``;
for Gaussian-distributed samples the well holds 90 % of them.

Loss (Eq. 5), per trajectory: 0 if any recorded frame lies in the target well,
otherwise ``min_t ‖ξ(x_t) − ξ_target‖²`` (wrapped differences); the frame of the
minimum is the *loss frame* from which the adjoint starts.

Units: those of the CVs (rad, nm).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from scipy.stats import chi2

__all__ = ["Well", "LossResult", "wrapped_difference", "crossing_loss", "success_fraction",
           "loss_position_gradient"]


def _periods(period, dim: int) -> list[float]:
    if period is None:
        return [math.inf] * dim
    if isinstance(period, (int, float)):
        period = [float(period)] * dim
    out = [math.inf if (p is None or not math.isfinite(float(p))) else float(p) for p in period]
    if len(out) != dim:
        raise ValueError(f"period has {len(out)} entries for {dim} CVs")
    if any(p <= 0 for p in out):
        raise ValueError(f"periods must be positive (or inf/None for non-periodic CVs), got {out}")
    return out


def wrapped_difference(s: torch.Tensor, target: torch.Tensor, period: Sequence[float]) -> torch.Tensor:
    """``s − target`` with periodic components wrapped into ``[−P/2, P/2)``.

    Parameters
    ----------
    s, target : torch.Tensor
        Broadcastable ``(..., D)`` CV values.
    period : sequence of float
        Period of each CV, ``math.inf`` for non-periodic ones (as
        :meth:`openmm_nnbias.cvs.CVSet.period` returns). The wrap is a constant
        shift, so the derivative is that of ``s − target``.

    Returns
    -------
    torch.Tensor

    Examples
    --------
    >>> import math
    >>> d = wrapped_difference(torch.tensor([3.0, 3.0]), torch.tensor([-3.0, -3.0]), [2 * math.pi, math.inf])
    >>> [round(v, 4) for v in d.tolist()]
    [-0.2832, 6.0]
    """
    d = s - target
    per = torch.tensor([p if math.isfinite(p) else 0.0 for p in period], dtype=d.dtype, device=d.device)
    if bool((per > 0).any()):
        safe = torch.where(per > 0, per, torch.ones_like(per))
        shift = torch.where(per > 0, safe * torch.floor(d.detach() / safe + 0.5), torch.zeros_like(d))
        d = d - shift
    return d


@dataclass
class Well:
    """Ellipsoidal well in CV space.

    Attributes
    ----------
    mean : torch.Tensor
        ``(D,)`` centre (circular mean for periodic CVs), float64.
    covariance : torch.Tensor
        ``(D, D)`` covariance of the (wrapped) deviations, float64.
    period : list of float
        Per-CV period (``math.inf`` = non-periodic).
    p : float
        Tail probability; ``threshold = chi2.ppf(1 - p, D)``.
    threshold : float
        Squared Mahalanobis radius.
    samples : torch.Tensor or None
        ``(S, D)`` samples kept for random loss targets (Γ of the paper).
    """

    mean: torch.Tensor
    covariance: torch.Tensor
    period: list
    p: float
    threshold: float
    samples: Optional[torch.Tensor] = None

    @classmethod
    def from_samples(cls, cv_samples, p: float = 0.1, period=None,
                     max_samples: int = 2000) -> "Well":
        """Fit a well to CV samples of a short unbiased run.

        Parameters
        ----------
        cv_samples : array-like
            ``(S, D)`` CV values (S > D).
        p : float, optional
            Tail probability in (0, 1) (default 0.1 → 90 % quantile).
        period : sequence of float or float, optional
            Per-CV period, ``math.inf``/None for non-periodic CVs (default: all
            non-periodic); pass ``cvs.period()`` for a CVSet.
        max_samples : int, optional
            At most this many samples (evenly strided) are kept as targets.

        Returns
        -------
        Well

        Raises
        ------
        ValueError
            Bad shapes, non-finite samples, ``p`` outside (0, 1), or a singular covariance.

        Examples
        --------
        >>> g = torch.Generator().manual_seed(0)
        >>> w = Well.from_samples(torch.randn(500, 2, generator=g, dtype=torch.float64))
        >>> round(w.threshold, 3), bool(w.contains(torch.zeros(2)))
        (4.605, True)
        """
        s = torch.as_tensor(np.asarray(cv_samples, dtype=np.float64)) if not isinstance(cv_samples, torch.Tensor) \
            else cv_samples.detach().to("cpu", torch.float64)
        if s.ndim != 2 or s.shape[0] <= s.shape[1]:
            raise ValueError(f"cv_samples must have shape (S, D) with S > D, got {tuple(s.shape)}")
        if not bool(torch.isfinite(s).all()):
            raise ValueError("cv_samples contain NaN or inf")
        if not 0.0 < float(p) < 1.0:
            raise ValueError(f"p must lie in (0, 1), got {p!r}")
        dim = s.shape[1]
        per = _periods(period, dim)
        mean = s.mean(0)
        for k, P in enumerate(per):
            if math.isfinite(P):
                ang = s[:, k] * (2 * math.pi / P)
                mean[k] = torch.atan2(torch.sin(ang).mean(), torch.cos(ang).mean()) * (P / (2 * math.pi))
        d = wrapped_difference(s, mean, per)
        d = d - d.mean(0)
        cov = d.T @ d / (s.shape[0] - 1)
        try:
            torch.linalg.cholesky(cov)
        except RuntimeError as exc:
            raise ValueError(f"the covariance of the CV samples is singular: {cov.tolist()}") from exc
        stride = max(1, math.ceil(s.shape[0] / int(max_samples)))
        return cls(mean=mean, covariance=cov, period=per, p=float(p),
                   threshold=float(chi2.ppf(1.0 - float(p), dim)), samples=s[::stride].clone())

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def mahalanobis2(self, s: torch.Tensor) -> torch.Tensor:
        """Squared Mahalanobis distance ``dᵀΣ⁻¹d`` of ``s`` ``(..., D)`` → ``(...)``."""
        if s.shape[-1] != self.dim:
            raise ValueError(f"expected CV values of shape (..., {self.dim}), got {tuple(s.shape)}")
        mean = self.mean.to(s.device, s.dtype)
        prec = torch.linalg.inv(self.covariance).to(s.device, s.dtype)
        d = wrapped_difference(s, mean, self.period)
        return torch.einsum("...i,ij,...j->...", d, prec, d)

    def contains(self, s: torch.Tensor) -> torch.Tensor:
        """Boolean ``(...)``: ``dᵀΣ⁻¹d < threshold`` for CV values ``s`` ``(..., D)``."""
        return self.mahalanobis2(s) < self.threshold

    def to_dict(self) -> dict:
        """Plain-data form (for checkpoints); inverse of :meth:`from_dict`."""
        return {"mean": self.mean.tolist(), "covariance": self.covariance.tolist(),
                "period": list(self.period), "p": self.p, "threshold": self.threshold,
                "samples": None if self.samples is None else self.samples.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "Well":
        """Rebuild a well written by :meth:`to_dict`."""
        f64 = torch.float64
        return cls(mean=torch.tensor(d["mean"], dtype=f64), covariance=torch.tensor(d["covariance"], dtype=f64),
                   period=[float(p) for p in d["period"]], p=float(d["p"]), threshold=float(d["threshold"]),
                   samples=None if d.get("samples") is None else torch.tensor(d["samples"], dtype=f64))


@dataclass
class LossResult:
    """Per-trajectory Eq. 5 loss.

    Attributes
    ----------
    loss : torch.Tensor
        ``(B,)`` 0 for trajectories that entered the target well, else the
        minimal squared (wrapped) distance to the target point.
    loss_frame : torch.Tensor
        ``(B,)`` long, frame of the minimal distance (first entry frame for
        successful trajectories).
    entered : torch.Tensor
        ``(B,)`` bool, the trajectory entered the target well.
    min_sqdist : torch.Tensor
        ``(B,)`` minimal squared distance, also for successful trajectories.
    """

    loss: torch.Tensor
    loss_frame: torch.Tensor
    entered: torch.Tensor
    min_sqdist: torch.Tensor


def crossing_loss(cv_traj: torch.Tensor, well: Well, target: Optional[torch.Tensor] = None) -> LossResult:
    """Eq. 5 for every trajectory of a batch.

    Parameters
    ----------
    cv_traj : torch.Tensor
        ``(T, B, D)`` CV values of the recorded frames.
    well : Well
        Target well.
    target : torch.Tensor, optional
        ``(D,)`` or ``(B, D)`` target point(s) ξ_target; default the well mean.

    Returns
    -------
    LossResult

    Examples
    --------
    >>> w = Well(torch.zeros(1, dtype=torch.float64), torch.eye(1, dtype=torch.float64), [math.inf], 0.1, 1.0)
    >>> traj = torch.tensor([[[3.0], [3.0]], [[2.0], [0.5]], [[4.0], [4.0]]], dtype=torch.float64)
    >>> r = crossing_loss(traj, w)
    >>> r.loss.tolist(), r.loss_frame.tolist(), r.entered.tolist()
    ([4.0, 0.0], [1, 1], [False, True])
    """
    if cv_traj.ndim != 3 or cv_traj.shape[-1] != well.dim:
        raise ValueError(f"cv_traj must have shape (T, B, {well.dim}), got {tuple(cv_traj.shape)}")
    s = cv_traj.detach()
    tgt = well.mean if target is None else torch.as_tensor(target)
    tgt = tgt.to(s.device, s.dtype)
    if tgt.shape not in ((well.dim,), (s.shape[1], well.dim)):
        raise ValueError(f"target must have shape ({well.dim},) or ({s.shape[1]}, {well.dim}), "
                         f"got {tuple(tgt.shape)}")
    sq = (wrapped_difference(s, tgt, well.period) ** 2).sum(-1)  # (T, B)
    inside = well.contains(s)
    entered = inside.any(0)
    min_sq, frame = sq.min(0)
    first_in = torch.argmax(inside.to(torch.int8), dim=0)
    loss = torch.where(entered, torch.zeros_like(min_sq), min_sq)
    return LossResult(loss=loss, loss_frame=torch.where(entered, first_in, frame), entered=entered,
                      min_sqdist=min_sq)


def loss_position_gradient(cvs, positions: torch.Tensor, target: torch.Tensor,
                           period) -> torch.Tensor:
    """``∇_R ‖wrap(ξ(R) − ξ_target)‖²`` for positions ``(B, N, 3)`` (nm) and targets ``(B, D)`` or ``(D,)``.

    ``cvs`` maps positions to ``(B, D)`` CVs; ``period`` as in :func:`wrapped_difference`.
    Returns ``(B, N, 3)`` in (CV unit)²/nm, the start of the adjoint.

    Examples
    --------
    >>> from openmm_nnbias.cvs import CVSet, Position
    >>> cvs = CVSet([Position([0], "x", -1.0, 1.0)])
    >>> loss_position_gradient(cvs, torch.ones(1, 1, 3), torch.zeros(1), [math.inf]).tolist()
    [[[2.0, 0.0, 0.0]]]
    """
    with torch.enable_grad():
        x = positions.detach().requires_grad_(True)
        d = wrapped_difference(cvs(x), target.to(x.device, x.dtype), period)
        (g,) = torch.autograd.grad((d ** 2).sum(), x)
    return g


def success_fraction(cv_traj: torch.Tensor, well: Well, criterion: str = "enters") -> float:
    """Fraction of trajectories that reach the target well.

    Parameters
    ----------
    cv_traj : torch.Tensor
        ``(T, B, D)`` CV values.
    well : Well
    criterion : str, optional
        ``"enters"`` (default): any recorded frame is inside the well.
        ``"closest"``: the frame closest to the well mean is inside (NOTES'
        wording of the authors' metric).

    Returns
    -------
    float
        In [0, 1].

    Examples
    --------
    >>> w = Well(torch.zeros(1, dtype=torch.float64), torch.eye(1, dtype=torch.float64), [math.inf], 0.1, 1.0)
    >>> success_fraction(torch.tensor([[[3.0], [3.0]], [[0.5], [2.0]]], dtype=torch.float64), w)
    0.5
    """
    if criterion == "enters":
        return float(crossing_loss(cv_traj, well).entered.double().mean())
    if criterion == "closest":
        sq = (wrapped_difference(cv_traj.detach(), well.mean.to(cv_traj.device, cv_traj.dtype),
                                 well.period) ** 2).sum(-1)
        closest = cv_traj.detach()[sq.argmin(0), torch.arange(cv_traj.shape[1], device=cv_traj.device)]
        return float(well.contains(closest).double().mean())
    raise ValueError(f"criterion must be 'enters' or 'closest', got {criterion!r}")
