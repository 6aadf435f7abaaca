"""Internal-coordinate helpers (NeRF atom placement)."""

from __future__ import annotations

import numpy as np

__all__ = ["place_atom"]


def place_atom(
    a: np.ndarray, b: np.ndarray, c: np.ndarray, bond: float, angle_deg: float, dihedral_deg: float
) -> np.ndarray:
    """Place atom D from A, B, C and the internal coordinates of D (NeRF).

    Parameters
    ----------
    a, b, c : numpy.ndarray
        Cartesian positions of the three reference atoms, shape ``(3,)`` (nm).
    bond : float
        Bond length ``|C-D|`` in nm.
    angle_deg : float
        Bond angle ``B-C-D`` in degrees.
    dihedral_deg : float
        Dihedral ``A-B-C-D`` in degrees (IUPAC sign convention).

    Returns
    -------
    numpy.ndarray
        Position of D, shape ``(3,)``.

    Examples
    --------
    >>> d = place_atom(np.array([0., 1, 0]), np.zeros(3), np.array([1., 0, 0]), 1.0, 90.0, 180.0)
    >>> np.round(d, 6).tolist()
    [1.0, -1.0, 0.0]
    """
    a, b, c = (np.asarray(v, dtype=float) for v in (a, b, c))
    theta = np.deg2rad(angle_deg)
    chi = np.deg2rad(dihedral_deg)
    bc = c - b
    bc /= np.linalg.norm(bc)
    n = np.cross(b - a, bc)
    nn = np.linalg.norm(n)
    if nn < 1e-12:
        raise ValueError("reference atoms A, B, C are collinear; the dihedral is undefined")
    n /= nn
    m = np.cross(n, bc)
    d2 = bond * np.array([-np.cos(theta), np.sin(theta) * np.cos(chi), np.sin(theta) * np.sin(chi)])
    return c + d2[0] * bc + d2[1] * m + d2[2] * n
