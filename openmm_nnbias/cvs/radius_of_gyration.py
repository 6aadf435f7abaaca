"""Radius of gyration of a group of atoms (nm)."""

from typing import Optional, Sequence, Tuple

import torch

from ._groups import GroupCV, atom_list, make_whole, number, weight_list

__all__ = ["RadiusOfGyration"]


class RadiusOfGyration(GroupCV):
    r"""Radius of gyration of a group of atoms, in nm.

    .. math::

        R_g = \sqrt{\frac{\sum_i w_i |{\bf r}_i - {\bf r}_c|^2}{\sum_i w_i}},\qquad
        {\bf r}_c = \frac{\sum_i w_i {\bf r}_i}{\sum_i w_i}

    with all :math:`w_i = 1` (``mdtraj.compute_rg``, cvpack's ``RadiusOfGyration``) unless
    ``weights`` are given (e.g. the atom masses: the mass-weighted radius of gyration,
    ``mdtraj.compute_rg(traj, masses=...)``).

    Parameters
    ----------
    atoms : sequence of int
        The atoms (0-based, distinct). In a periodic box the group is made whole first by
        unwrapping each atom to the minimum image of the previous one (see
        :mod:`openmm_nnbias.cvs._groups`): list them so that consecutive atoms are closer than half
        the shortest box width in the whole molecule (topology order of a protein qualifies).
    weights : sequence of float, optional
        One positive weight per atom (masses in Da, or openmm Quantities of mass).
    names : str, optional
        Name of the CV (default ``"radius_of_gyration"``, as cvpack).
    lower, upper : float
        Declared range in nm (features of the bias are scaled over it); default [0, 3].

    Notes
    -----
    ``forward(positions, box=None)`` maps ``(..., n_atoms, 3)`` (nm) and an optional box
    ``(..., 3, 3)`` (nm, rows a, b, c) to ``(..., 1)``; ``value_and_jacobian`` gives the analytic
    gradient ``(1, m, 3)`` (dimensionless) ``w_i (r_i - r_c) / (W R_g)``.

    Examples
    --------
    >>> import torch
    >>> cv = RadiusOfGyration([0, 1, 2, 3])
    >>> x = torch.tensor([[1., 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]], dtype=torch.float64)
    >>> float(cv(x)[0])
    1.0
    >>> round(float(RadiusOfGyration([0, 1], weights=[3.0, 1.0])(x)[0]), 6)  # sqrt(3)/2
    0.866025
    """

    unit = "nm"  # of its values, for file headers and plot axes

    def __init__(self, atoms: Sequence[int], weights: Optional[Sequence[float]] = None,
                 names: Optional[str] = "radius_of_gyration", lower: float = 0.0, upper: float = 3.0):
        atoms = atom_list(atoms, "atoms", minimum=2)
        w = torch.ones(len(atoms), dtype=torch.float64) if weights is None else weight_list(weights, len(atoms), "weights")
        super().__init__(atoms, 1, names, number(lower, "lower", positive=False), number(upper, "upper"),
                         "RadiusOfGyration")
        self.register_buffer("weights", (w / w.sum()).unsqueeze(-1))  # (m, 1), normalized

    def _centred(self, positions: torch.Tensor, box: Optional[torch.Tensor]) -> torch.Tensor:
        x = make_whole(self._local(positions), box)
        w = self.weights.to(x.dtype)
        return x - (w * x).sum(dim=-2, keepdim=True)

    def forward(self, positions: torch.Tensor, box: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Radius of gyration ``(..., 1)`` (nm) of positions ``(..., n_atoms, 3)`` (nm)."""
        d = self._centred(positions, box)
        return (self.weights.to(d.dtype) * d * d).sum(dim=(-2, -1)).sqrt().unsqueeze(-1)

    @torch.jit.export
    def value_and_jacobian(self, positions: torch.Tensor,
                           box: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Single frame ``(n_atoms, 3)`` (nm), optional box ``(3, 3)`` → value ``(1,)`` (nm) and
        gradient ``(1, m, 3)``."""
        d = self._centred(positions, box)
        w = self.weights.to(d.dtype)
        rg = (w * d * d).sum().sqrt()
        return rg.unsqueeze(0), (w * d / rg).unsqueeze(0)
