"""Exact reference free energies of the model potentials (numerical quadrature)."""

import numpy as np

from .model_potentials import _wq_poly

__all__ = ["exact_free_energy_x_wolfe_quapp"]


def exact_free_energy_x_wolfe_quapp(
    x_grid: np.ndarray, kT: float = 1.0, y_range: tuple[float, float] = (-4.0, 4.0), n_y: int = 4001
) -> np.ndarray:
    """Exact free energy along x of the Wolfe-Quapp potential.

    ``F(x) = -kT ln ∫ exp(-U(x, y)/kT) dy`` by trapezoidal quadrature in log
    space, shifted so that ``min F = 0``.

    Parameters
    ----------
    x_grid : numpy.ndarray
        1-D array of x values (nm).
    kT : float, optional
        Thermal energy in kJ/mol (default 1.0, i.e. T = ``WQ_TEMPERATURE``).
    y_range : tuple of float, optional
        Integration limits in y (default ``(-4, 4)``).
    n_y : int, optional
        Number of y grid points (default 4001).

    Returns
    -------
    numpy.ndarray
        F(x) in kJ/mol, same shape as ``x_grid``, minimum 0.

    Examples
    --------
    >>> F = exact_free_energy_x_wolfe_quapp(np.linspace(-3, 3, 601))
    >>> float(F.min())
    0.0
    """
    x = np.asarray(x_grid, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"x_grid must be a non-empty 1-D array, got shape {x.shape}")
    if not kT > 0:
        raise ValueError(f"kT must be positive (kJ/mol), got {kT!r}")
    if not y_range[1] > y_range[0]:
        raise ValueError(f"y_range must be increasing, got {y_range!r}")
    if n_y < 3:
        raise ValueError(f"n_y must be >= 3, got {n_y!r}")
    y = np.linspace(y_range[0], y_range[1], int(n_y))
    logw = -_wq_poly(x[:, None], y[None, :]) / kT
    w = np.full(y.size, y[1] - y[0])
    w[0] *= 0.5
    w[-1] *= 0.5
    m = logw.max(axis=1, keepdims=True)
    log_z = m[:, 0] + np.log(np.sum(w * np.exp(logw - m), axis=1))
    F = -kT * log_z
    return F - F.min()
