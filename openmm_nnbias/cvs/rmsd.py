"""Root-mean-square deviation from a reference structure (nm)."""

from typing import Optional, Sequence, Tuple

import torch

from ._groups import GroupCV, atom_list, make_whole, number, reference_rows, superpose

__all__ = ["RMSD"]


class RMSD(GroupCV):
    r"""Root-mean-square deviation of a group of atoms from a reference structure, in nm.

    .. math::

        {\rm RMSD} = \min_{R} \sqrt{\frac{1}{m}\sum_{k=1}^m
            |({\bf x}_k - {\bf x}_c) - R\,({\bf y}_k - {\bf y}_c)|^2}

    over rotations R (``align=True``: the optimal superposition, as ``mdtraj.rmsd``, OpenMM's
    ``RMSDForce`` and cvpack's ``RMSD``), or with R = 1 (``align=False``: only the centroids
    superposed, PLUMED's ``TYPE=SIMPLE``). Unweighted. The optimal rotation comes from the
    eigenvector of the largest eigenvalue of Horn's quaternion matrix; the gradient
    ``(x_k - x_c - R (y_k - y_c)) / (m RMSD)`` needs no derivative of R, so it stays exact where the
    rotation is ill-conditioned (planar or symmetric structures, positions equal to the
    reference). At RMSD = 0 (a cusp) the gradient is taken as zero (below 1e-12 nm).

    Parameters
    ----------
    atoms : sequence of int
        The atoms (0-based, distinct). In a periodic box the group is made whole by unwrapping
        each atom to the minimum image of the previous one: list them so that consecutive atoms
        are closer than half the shortest box width in the whole molecule.
    reference : array-like or openmm Quantity
        Reference positions (nm): ``(len(atoms), 3)`` (one row per atom of ``atoms``) or the whole
        system ``(n_atoms, 3)`` (indexed by ``atoms``).
    align : bool
        Optimal rotation (default) or centroids only.
    names : str, optional
        Name of the CV (default ``"rmsd"``).
    lower, upper : float
        Declared range in nm (default [0, 2]).

    Notes
    -----
    ``forward(positions, box=None)``: ``(..., n_atoms, 3)`` nm → ``(..., 1)`` nm;
    ``value_and_jacobian`` gives the gradient ``(1, m, 3)`` (dimensionless).

    Examples
    --------
    >>> import torch
    >>> ref = torch.tensor([[0., 0, 0], [1, 0, 0], [0, 1, 0]], dtype=torch.float64)
    >>> turned = torch.tensor([[0., 0, 0], [0, 1, 0], [-1, 0, 0]], dtype=torch.float64) + 5.0
    >>> abs(float(RMSD([0, 1, 2], ref)(turned)[0])) < 1e-12      # a rotated, shifted copy
    True
    >>> round(float(RMSD([0, 1, 2], ref, align=False)(turned)[0]), 6)
    0.942809
    """

    unit = "nm"  # of its values, for file headers and plot axes
    align: bool

    def __init__(self, atoms: Sequence[int], reference, align: bool = True, names: Optional[str] = "rmsd",
                 lower: float = 0.0, upper: float = 2.0):
        atoms = atom_list(atoms, "atoms", minimum=2)
        if not isinstance(align, bool):
            raise TypeError(f"align must be a bool, got {type(align).__name__}")
        ref = reference_rows(reference, atoms, "reference")
        super().__init__(atoms, 1, names, number(lower, "lower", positive=False), number(upper, "upper"), "RMSD")
        self.register_buffer("reference", (ref - ref.mean(dim=0)).unsqueeze(0))  # (1, m, 3), centred
        self.align = align

    def _residuals(self, positions: torch.Tensor, box: Optional[torch.Tensor]) -> torch.Tensor:
        x = make_whole(self._local(positions), box)
        return superpose(x, self.reference.to(x.dtype), self.align).squeeze(-3)  # (..., m, 3)

    def forward(self, positions: torch.Tensor, box: Optional[torch.Tensor] = None) -> torch.Tensor:
        """RMSD ``(..., 1)`` (nm) of positions ``(..., n_atoms, 3)`` (nm), optional box ``(..., 3, 3)``."""
        r = self._residuals(positions, box)
        return (r * r).sum(dim=(-2, -1)).div(r.shape[-2]).sqrt().unsqueeze(-1)

    @torch.jit.export
    def value_and_jacobian(self, positions: torch.Tensor,
                           box: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Single frame ``(n_atoms, 3)`` (nm) → RMSD ``(1,)`` (nm) and gradient ``(1, m, 3)``."""
        r = self._residuals(positions, box)
        m = r.shape[-2]
        value = (r * r).sum().div(m).sqrt()
        scale = torch.where(value > 1e-12, 1.0 / (m * value.clamp_min(1e-300)), torch.zeros_like(value))
        return value.unsqueeze(0), (r * scale).unsqueeze(0)
