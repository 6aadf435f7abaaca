"""A bias that is a fixed grid of Gaussians with trainable heights (the authors' 2-D Müller–Brown bias).

.. math::

    B(s) = \\sum_{i} h_i \\exp\\left(-\\frac{\\lVert s - c_i \\rVert^2}{2\\sigma^2}\\right)

with the centres ``c_i`` on a regular grid (``numpy.meshgrid(..., indexing="ij")`` order)
and one width ``σ`` for all of them. Šípka et al.'s ``GridGaussians`` (``rarediffsim``,
``models/gaussian_models.py``) is this with 50 × 50 centres and ``σ² = 9`` Å², heights
initialised to 0.01 kcal/mol and trained. Only the heights are parameters.

:class:`GridBiasEnergy` wraps CVs and grid into a self-contained TorchScript module
(positions → kJ/mol), the ``bias.pt`` of :meth:`BidirectionalDiffSimTrainer.export
<openmm_nnbias.diffsim.bidirectional.BidirectionalDiffSimTrainer.export>`.

Units: those of the CVs for centres and width, kJ/mol for heights and energies.
"""

from __future__ import annotations

import copy
import math
from typing import Optional, Sequence

import torch

from ..bias.modules import BiasEnergy

__all__ = ["GaussianGridBias", "GridBiasEnergy", "export_grid_bias"]


class GaussianGridBias(torch.nn.Module):
    """Sum of Gaussians on a regular grid, heights trainable.

    Parameters
    ----------
    grid_lower, grid_upper : sequence of float
        First and last centre along each CV (CV units); ``len`` = number of CVs D.
    points : int or sequence of int
        Centres per CV (≥ 1 each; 1 puts the centre at ``grid_lower``).
    sigma : float
        Gaussian width σ in CV units (> 0).
    height : float, optional
        Initial height of every Gaussian in kJ/mol (default 0).
    lower, upper : sequence of float, optional
        Declared CV ranges (metadata, as on :class:`~openmm_nnbias.bias.NeuralBias`;
        default the grid bounds).
    dtype : torch.dtype, optional
        float64 (default) or float32.

    Attributes
    ----------
    n_cvs : int
    heights : torch.nn.Parameter
        ``(n_centres,)`` kJ/mol.
    centres : torch.Tensor
        ``(n_centres, D)`` buffer, CV units.

    Examples
    --------
    >>> g = GaussianGridBias([0.0, 0.0], [1.0, 1.0], 3, sigma=0.5, height=1.0)
    >>> g.centres.shape, round(g(torch.zeros(2, dtype=torch.float64)).item(), 4)
    (torch.Size([9, 2]), 3.0341)
    """

    def __init__(self, grid_lower: Sequence[float], grid_upper: Sequence[float], points, sigma: float,
                 height: float = 0.0, lower: Optional[Sequence[float]] = None,
                 upper: Optional[Sequence[float]] = None, dtype: torch.dtype = torch.float64):
        super().__init__()
        if not isinstance(dtype, torch.dtype):
            raise TypeError(f"dtype must be a torch.dtype, got {type(dtype).__name__}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        lo, hi = [float(v) for v in grid_lower], [float(v) for v in grid_upper]
        if len(lo) == 0 or len(lo) != len(hi):
            raise ValueError(f"grid_lower and grid_upper must be non-empty and of equal length, got {lo}, {hi}")
        n = [int(points)] * len(lo) if isinstance(points, (int, float)) else [int(p) for p in points]
        if len(n) != len(lo) or any(p < 1 for p in n):
            raise ValueError(f"points must be >= 1 per CV ({len(lo)} CVs), got {points!r}")
        if not all(math.isfinite(a) and math.isfinite(b) and b >= a for a, b in zip(lo, hi)):
            raise ValueError(f"grid_upper must be >= grid_lower (finite), got {lo}, {hi}")
        if not (math.isfinite(float(sigma)) and float(sigma) > 0):
            raise ValueError(f"sigma must be positive and finite (CV units), got {sigma!r}")
        if not math.isfinite(float(height)):
            raise ValueError(f"height must be finite (kJ/mol), got {height!r}")
        axes = [torch.linspace(a, b, p, dtype=dtype) for a, b, p in zip(lo, hi, n)]
        mesh = torch.meshgrid(*axes, indexing="ij")
        self.register_buffer("centres", torch.stack([m.reshape(-1) for m in mesh], dim=-1))
        self.heights = torch.nn.Parameter(torch.full((self.centres.shape[0],), float(height), dtype=dtype))
        self.n_cvs = len(lo)
        self.grid_lower, self.grid_upper, self.points = lo, hi, n
        self.sigma = float(sigma)
        self.initial_height = float(height)
        self.periodic = [False] * self.n_cvs
        self.lower = list(lo) if lower is None else [float(v) for v in lower]
        self.upper = list(hi) if upper is None else [float(v) for v in upper]

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        """Bias ``(..., D)`` CVs → ``(...)`` kJ/mol.

        In 2-D the Gaussians factorize, ``B = g_x(s_x)ᵀ H g_y(s_y)`` with ``H`` the
        ``(n_x, n_y)`` heights: ``O(n_x + n_y)`` exponentials per point instead of ``n_x n_y``.
        """
        c = -0.5 / (self.sigma * self.sigma)
        if self.n_cvs == 2:
            nx, ny = self.points[0], self.points[1]
            ax = self.centres[::ny, 0]
            ay = self.centres[:ny, 1]
            gx = torch.exp(c * (s[..., 0:1] - ax) ** 2)
            gy = torch.exp(c * (s[..., 1:2] - ay) ** 2)
            return ((gx @ self.heights.reshape(nx, ny)) * gy).sum(-1)
        d2 = ((s.unsqueeze(-2) - self.centres) ** 2).sum(-1)
        return torch.exp(c * d2) @ self.heights

    def config(self) -> dict:
        """Constructor arguments (JSON-serializable), for checkpoints."""
        return {"kind": "gaussian_grid", "grid_lower": self.grid_lower, "grid_upper": self.grid_upper,
                "points": self.points, "sigma": self.sigma, "height": self.initial_height,
                "lower": self.lower, "upper": self.upper, "dtype": str(self.heights.dtype).replace("torch.", "")}

    def check_finite(self) -> None:
        """Raise ValueError if a height is NaN or infinite."""
        if not bool(torch.isfinite(self.heights).all()):
            raise ValueError("bias parameter 'heights' contains non-finite values (NaN or inf)")


class GridBiasEnergy(BiasEnergy):
    """Self-contained ``positions (nm) → kJ/mol`` of CVs and a :class:`GaussianGridBias` (scriptable):
    :class:`~openmm_nnbias.bias.BiasEnergy` with the Gaussian grid as V(s)."""

    def __init__(self, cvs, bias: GaussianGridBias):
        super().__init__(cvs, bias)


def export_grid_bias(cvs, bias: GaussianGridBias, path: str) -> None:
    """Write ``GridBiasEnergy(cvs, bias)`` as TorchScript to ``path`` (atomically)."""
    from openmm_nnbias._io import atomic_write

    if not isinstance(bias, GaussianGridBias):
        raise TypeError(f"bias must be a GaussianGridBias, got {type(bias).__name__}")
    module = torch.jit.script(GridBiasEnergy(copy.deepcopy(cvs).cpu(), copy.deepcopy(bias).cpu()))
    atomic_write(path, module.save, suffix=".pt")
