"""Regular bin-centre grids over the collective-variable (CV) domain.

The grid carries the target distribution of Deep-VES (the second average of Eq. 10 of
Bonati, Zhang & Parrinello, PNAS 2019 is a quadrature over its points), the biased
histogram of the KL monitor (Eq. 12) and the reweighted free energy (Eq. 11).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

__all__ = ["CVGrid"]


def _as_float_list(values: Sequence[float] | float, name: str) -> list[float]:
    if isinstance(values, (int, float)):
        values = [values]
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r}") from exc
    return out


class CVGrid:
    """Regular grid of bin centres over a box of CV space.

    Bin ``i`` of CV ``k`` spans ``[lower_k + i*w_k, lower_k + (i+1)*w_k)`` with width
    ``w_k = (upper_k - lower_k) / bins_k``; its point is the bin centre
    ``lower_k + (i + 0.5) * w_k`` (for periodic CVs too, so no point is duplicated across
    the periodic boundary). Points are flattened in C order (last CV fastest).

    Parameters
    ----------
    lower, upper : sequence of float
        Domain bounds, one entry per CV, in the CV's unit (nm, rad, ...). For a periodic CV
        the period is ``upper - lower`` (e.g. ``[-pi, pi)``).
    bins : sequence of int
        Number of bins per CV (>= 1).
    periodic : sequence of bool
        Whether each CV is periodic.
    dtype : torch.dtype, optional
        Floating dtype of :attr:`points` (default ``torch.float64``).
    device : torch.device or str, optional
        Device of :attr:`points` (default CPU).

    Raises
    ------
    ValueError
        If the sequences differ in length, are empty, ``upper <= lower``, a bound is not
        finite or ``bins < 1``.

    Examples
    --------
    >>> import math, torch
    >>> from openmm_nnbias.ves import CVGrid
    >>> grid = CVGrid([-math.pi, 0.0], [math.pi, 1.0], [4, 2], [True, False])
    >>> grid.shape, grid.points.shape
    ((4, 2), torch.Size([8, 2]))
    >>> grid.index(torch.tensor([[math.pi + 0.1, 0.9]], dtype=torch.float64)).tolist()
    [1]
    >>> grid.histogram(torch.tensor([[0.1, 0.2], [0.2, 0.3]], dtype=torch.float64)).sum().item()
    2.0
    """

    def __init__(
        self,
        lower: Sequence[float],
        upper: Sequence[float],
        bins: Sequence[int],
        periodic: Sequence[bool],
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> None:
        lower_l = _as_float_list(lower, "lower")
        upper_l = _as_float_list(upper, "upper")
        if isinstance(bins, int):
            bins = [bins]
        if isinstance(periodic, bool):
            periodic = [periodic]
        bins_l = [int(b) for b in bins]
        periodic_l = [bool(p) for p in periodic]
        n_cv = len(lower_l)
        if n_cv == 0:
            raise ValueError("CVGrid needs at least one CV (lower is empty)")
        lengths = {"upper": len(upper_l), "bins": len(bins_l), "periodic": len(periodic_l)}
        for name, length in lengths.items():
            if length != n_cv:
                raise ValueError(f"{name} has {length} entries but lower has {n_cv}; need one per CV")
        for k in range(n_cv):
            if not (math.isfinite(lower_l[k]) and math.isfinite(upper_l[k])):
                raise ValueError(f"CV {k}: bounds must be finite, got [{lower_l[k]}, {upper_l[k]}]")
            if upper_l[k] <= lower_l[k]:
                raise ValueError(f"CV {k}: upper ({upper_l[k]}) must be > lower ({lower_l[k]})")
            if bins_l[k] < 1:
                raise ValueError(f"CV {k}: bins must be >= 1, got {bins_l[k]}")
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating dtype, got {dtype}")
        self.lower_list = lower_l
        self.upper_list = upper_l
        self.bins_list = bins_l
        self.periodic_list = periodic_l
        self.dtype = dtype
        self._build(torch.device(device) if device is not None else torch.device("cpu"))

    def _build(self, device: torch.device) -> None:
        kw = dict(dtype=self.dtype, device=device)
        self.lower = torch.tensor(self.lower_list, **kw)
        self.upper = torch.tensor(self.upper_list, **kw)
        self.bin_width = (self.upper - self.lower) / torch.tensor(self.bins_list, **kw)
        self.periodic = torch.tensor(self.periodic_list, dtype=torch.bool, device=device)
        axes = [
            self.lower[k] + (torch.arange(b, **kw) + 0.5) * self.bin_width[k]
            for k, b in enumerate(self.bins_list)
        ]
        mesh = torch.meshgrid(*axes, indexing="ij")
        self.points = torch.stack([m.reshape(-1) for m in mesh], dim=1)
        strides = [1] * self.n_cv
        for k in range(self.n_cv - 2, -1, -1):
            strides[k] = strides[k + 1] * self.bins_list[k + 1]
        self._strides = torch.tensor(strides, dtype=torch.long, device=device)
        self._bins_t = torch.tensor(self.bins_list, dtype=torch.long, device=device)

    # ------------------------------------------------------------------ properties
    @property
    def n_cv(self) -> int:
        """Number of CVs."""
        return len(self.bins_list)

    @property
    def shape(self) -> tuple[int, ...]:
        """Bins per CV; ``values.reshape(grid.shape)`` turns flat grid data into an array."""
        return tuple(self.bins_list)

    @property
    def n_points(self) -> int:
        """Total number of grid points (product of :attr:`shape`)."""
        return math.prod(self.bins_list)

    @property
    def cell_volume(self) -> float:
        """Volume of one bin (product of bin widths, in CV units)."""
        return float(torch.prod(self.bin_width).item())

    @property
    def device(self) -> torch.device:
        """Device of :attr:`points`."""
        return self.points.device

    def to(self, device: torch.device | str) -> "CVGrid":
        """Move the grid tensors to ``device`` in place and return ``self``."""
        self._build(torch.device(device))
        return self

    # ------------------------------------------------------------------ binning
    def _prepare(self, samples: torch.Tensor) -> torch.Tensor:
        samples = torch.as_tensor(samples)
        if samples.ndim == 1 and self.n_cv == 1:
            samples = samples.reshape(-1, 1)
        if samples.ndim != 2 or samples.shape[1] != self.n_cv:
            raise ValueError(
                f"samples must have shape (N, {self.n_cv}), got {tuple(samples.shape)}"
            )
        samples = samples.to(device=self.device, dtype=self.dtype)
        if torch.isnan(samples).any():
            bad = torch.nonzero(torch.isnan(samples))[0].tolist()
            raise ValueError(f"sample {bad[0]} has NaN in CV {bad[1]}")
        return samples

    def in_range(self, samples: torch.Tensor) -> torch.Tensor:
        """Boolean mask ``(N,)``: True where every non-periodic CV lies in ``[lower, upper]``.

        Periodic CVs are always in range (they are wrapped). NaN raises ``ValueError``.
        """
        samples = self._prepare(samples)
        inside = (samples >= self.lower) & (samples <= self.upper)
        inside = inside | self.periodic
        return inside.all(dim=1)

    def index(self, samples: torch.Tensor) -> torch.Tensor:
        """Flat bin index of each sample.

        Parameters
        ----------
        samples : torch.Tensor
            CV values, shape ``(N, n_cv)`` (or ``(N,)`` for one CV), any dtype/device.

        Returns
        -------
        torch.Tensor
            ``long`` tensor ``(N,)`` on the grid's device. Periodic CVs are wrapped into
            ``[lower, upper)``; a non-periodic value equal to ``upper`` goes to the last bin.

        Raises
        ------
        ValueError
            On a NaN, or on a non-periodic value outside ``[lower, upper]`` (the message
            names the CV index, the value and the range).
        """
        samples = self._prepare(samples)
        period = self.upper - self.lower
        wrapped = self.lower + torch.remainder(samples - self.lower, period)
        values = torch.where(self.periodic, wrapped, samples)
        outside = ((values < self.lower) | (values > self.upper)) & ~self.periodic
        if torch.isinf(samples).any() or outside.any():
            bad_mask = outside | torch.isinf(samples)
            row, k = torch.nonzero(bad_mask)[0].tolist()
            raise ValueError(
                f"CV {k}: sample {row} has value {samples[row, k].item()!r} outside the grid "
                f"range [{self.lower_list[k]}, {self.upper_list[k]}]"
            )
        idx = torch.floor((values - self.lower) / self.bin_width).to(torch.long)
        idx = torch.minimum(torch.clamp(idx, min=0), self._bins_t - 1)
        return (idx * self._strides).sum(dim=1)

    def histogram(
        self,
        samples: torch.Tensor,
        weights: torch.Tensor | None = None,
        out_of_range: str = "raise",
    ) -> torch.Tensor:
        """(Weighted) counts of samples per grid bin.

        Parameters
        ----------
        samples : torch.Tensor
            CV values ``(N, n_cv)``.
        weights : torch.Tensor, optional
            Per-sample weights ``(N,)`` (default 1 each).
        out_of_range : {"raise", "ignore"}
            What to do with samples outside the range of a non-periodic CV: raise
            ``ValueError`` (default) or leave them out of the histogram.

        Returns
        -------
        torch.Tensor
            Counts ``(n_points,)`` in :attr:`dtype` on the grid's device.
        """
        if out_of_range not in ("raise", "ignore"):
            raise ValueError(f"out_of_range must be 'raise' or 'ignore', got {out_of_range!r}")
        samples = self._prepare(samples)
        if weights is None:
            weights = torch.ones(samples.shape[0], dtype=self.dtype, device=self.device)
        else:
            weights = torch.as_tensor(weights).to(device=self.device, dtype=self.dtype)
            if weights.shape != (samples.shape[0],):
                raise ValueError(
                    f"weights must have shape ({samples.shape[0]},), got {tuple(weights.shape)}"
                )
        if out_of_range == "ignore":
            keep = self.in_range(samples) & torch.isfinite(samples).all(dim=1)
            samples, weights = samples[keep], weights[keep]
        counts = torch.zeros(self.n_points, dtype=self.dtype, device=self.device)
        return counts.index_add_(0, self.index(samples), weights)

    def __repr__(self) -> str:
        return (
            f"CVGrid(lower={self.lower_list}, upper={self.upper_list}, bins={self.bins_list}, "
            f"periodic={self.periodic_list})"
        )
