"""Alpha-helix Ramachandran (torsion) content of a sequence of residues."""

import math
from typing import Optional, Sequence, Tuple

import torch

from ._groups import GroupCV, integer
from .base import torsion_value_and_jacobian, minimum_image

__all__ = ["HelixTorsionContent"]


def _radians(value, name: str) -> float:
    if hasattr(value, "value_in_unit"):
        from openmm import unit

        value = value.value_in_unit(unit.radian)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be an angle in rad (or an openmm Quantity), got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return float(value)


class HelixTorsionContent(GroupCV):
    r"""Alpha-helix torsion content of a contiguous sequence of ``n`` residues (cvpack's definition).

    .. math::

        \alpha_{\phi,\psi} = \frac{1}{2}\sum_{i=2}^{n-1}\left[
            B_m\!\left(\frac{\phi_i - \phi_{\rm ref}}{\theta_{\rm tol}}\right) +
            B_m\!\left(\frac{\psi_i - \psi_{\rm ref}}{\theta_{\rm tol}}\right)\right],\qquad
        B_m(x) = \frac{1}{1 + x^{2m}}

    exactly cvpack's ``HelixTorsionContent`` (Hovmöller et al. 2002 references φ = −63.8°,
    ψ = −41.1°, tolerance 25°, m = 3; the angle differences wrapped into [−π, π)). The first and
    last residues only supply atoms of the φ, ψ of their neighbours. With ``normalize=True`` the sum
    is divided by ``n − 2`` (range [0, 1]).

    Parameters
    ----------
    residues : sequence of openmm.app.Residue
        Contiguous residues of one chain, N- to C-terminus (each needs atoms ``N``, ``CA``, ``C``).
    phiReference, psiReference, tolerance : float or openmm Quantity
        Angles in rad (or Quantities of angle).
    halfExponent : int
        ``m`` of the boxcar.
    normalize : bool
        Divide by the number of inner residues.
    names : str, optional
        Name of the CV (default ``"helix_torsion_content"``, as cvpack).
    lower, upper : float, optional
        Declared range (dimensionless; default [0, n − 2], or [0, 1] when normalized).

    Notes
    -----
    With a box every bond vector of a torsion is minimum-imaged. ``forward(positions, box=None)``:
    ``(..., n_atoms, 3)`` nm → ``(..., 1)``; ``value_and_jacobian`` gives the gradient ``(1, m, 3)``
    (1/nm) over the backbone atoms used.

    Examples
    --------
    >>> from openmm import app, unit
    >>> import os, torch
    >>> pdb = app.PDBFile(os.path.join(os.path.dirname(app.__file__), "data", "test.pdb"))
    >>> residues = list(pdb.topology.residues())[:35]              # villin headpiece (35 residues)
    >>> cv = HelixTorsionContent(residues)
    >>> x = torch.tensor(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer), dtype=torch.float64)
    >>> round(float(cv(x)[0]), 3)
    22.799
    """

    unit = "1"  # of its values: a number of residues
    coef: float
    tol: float
    m: int

    def __init__(self, residues: Sequence, phiReference=-63.8 * math.pi / 180, psiReference=-41.1 * math.pi / 180,
                 tolerance=25 * math.pi / 180, halfExponent: int = 3, normalize: bool = False,
                 names: Optional[str] = "helix_torsion_content", lower: Optional[float] = None,
                 upper: Optional[float] = None):
        if isinstance(residues, (str, bytes)) or not hasattr(residues, "__iter__"):
            raise TypeError(f"residues must be a sequence of openmm.app.Residue, got {type(residues).__name__}")
        residues = list(residues)
        if not all(hasattr(r, "atoms") for r in residues):
            raise TypeError("residues must be openmm.app.Residue objects")
        if len(residues) < 3:
            raise ValueError(f"residues: need at least 3 contiguous residues, got {len(residues)}")
        for prev, res in zip(residues[:-1], residues[1:]):
            if res.chain is not prev.chain or res.index != prev.index + 1:
                raise ValueError("residues must be contiguous residues of one chain, N- to C-terminus")
        if not isinstance(normalize, bool):
            raise TypeError(f"normalize must be a bool, got {type(normalize).__name__}")
        m = integer(halfExponent, "halfExponent")
        phi_ref, psi_ref = _radians(phiReference, "phiReference"), _radians(psiReference, "psiReference")
        tol = _radians(tolerance, "tolerance")
        if not tol > 0:
            raise ValueError(f"tolerance must be > 0, got {tol}")

        def atom(res, name):
            for a in res.atoms():
                if a.name == name:
                    return a.index
            raise ValueError(f"residues: no atom {name} in residue {res.name}{res.id}")

        quads, refs = [], []
        for i in range(1, len(residues) - 1):
            quads.append([atom(residues[i - 1], "C"), atom(residues[i], "N"), atom(residues[i], "CA"),
                          atom(residues[i], "C")])
            quads.append([atom(residues[i], "N"), atom(residues[i], "CA"), atom(residues[i], "C"),
                          atom(residues[i + 1], "N")])
            refs += [phi_ref, psi_ref]
        atoms = sorted({a for q in quads for a in q})
        local = {a: k for k, a in enumerate(atoms)}
        inner = len(residues) - 2
        lower = 0.0 if lower is None else float(lower)
        upper = (1.0 if normalize else float(inner)) if upper is None else float(upper)
        super().__init__(atoms, 1, names, lower, upper, "HelixTorsionContent")
        self.register_buffer("torsions", torch.tensor([[local[a] for a in q] for q in quads], dtype=torch.long))
        self.register_buffer("theta_ref", torch.tensor(refs, dtype=torch.float64))
        self.coef = 1.0 / (2 * inner) if normalize else 0.5
        self.tol, self.m = tol, m

    def _angles(self, x: torch.Tensor, box: Optional[torch.Tensor]) -> torch.Tensor:
        p = [x.index_select(-2, self.torsions[:, k]) for k in range(4)]
        b1, b2, b3 = p[1] - p[0], p[2] - p[1], p[3] - p[2]
        if box is not None:
            b1, b2, b3 = minimum_image(b1, box), minimum_image(b2, box), minimum_image(b3, box)
        n1 = torch.linalg.cross(b1, b2)
        n2 = torch.linalg.cross(b2, b3)
        return torch.atan2(torch.linalg.vector_norm(b2, dim=-1) * (b1 * n2).sum(-1), (n1 * n2).sum(-1))

    def _boxcar(self, theta: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        delta = theta - self.theta_ref.to(theta.dtype)
        x = (delta - 2 * math.pi * torch.floor(delta / (2 * math.pi) + 0.5)) / self.tol
        x2m1 = x ** (2 * self.m - 1)
        b = 1.0 / (1.0 + x2m1 * x)
        return b, -2 * self.m * x2m1 * b * b / self.tol

    def forward(self, positions: torch.Tensor, box: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Helix content ``(..., 1)`` of positions ``(..., n_atoms, 3)`` (nm)."""
        b = self._boxcar(self._angles(self._local(positions), box))[0]
        return b.sum(dim=-1, keepdim=True) * self.coef

    @torch.jit.export
    def value_and_jacobian(self, positions: torch.Tensor,
                           box: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Single frame ``(n_atoms, 3)`` (nm) → content ``(1,)`` and gradient ``(1, m, 3)`` (1/nm)."""
        x = self._local(positions)
        p = x.index_select(0, self.torsions.reshape(-1)).view(-1, 4, 3)
        theta, dtheta = torsion_value_and_jacobian(p, box)
        b, db = self._boxcar(theta)
        g = (dtheta * (db * self.coef).view(-1, 1, 1)).reshape(-1, 3)
        jac = torch.zeros(x.shape[0], 3, dtype=x.dtype, device=x.device).index_add(0, self.torsions.reshape(-1), g)
        return (b.sum() * self.coef).unsqueeze(0), jac.unsqueeze(0)
