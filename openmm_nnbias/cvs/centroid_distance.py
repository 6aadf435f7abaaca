"""Distance between the centroids (or centres of mass) of two groups of atoms (nm)."""

from typing import Optional, Sequence, Tuple

import torch

from ._groups import GroupCV, atom_list, make_whole, number, weight_list
from .base import minimum_image

__all__ = ["CentroidDistance"]


class CentroidDistance(GroupCV):
    r"""Distance between the centroids of two groups of atoms, in nm.

    .. math::

        d = |{\bf c}_B - {\bf c}_A|,\qquad {\bf c}_G = \frac{\sum_{i\in G} w_i {\bf r}_i}{\sum_{i\in G} w_i}

    with all :math:`w_i = 1` (geometric centroids, cvpack's ``CentroidFunction("distance(g1,g2)")``)
    or the given ``weights`` (masses: centres of mass, ``weighByMass=True`` there).

    Parameters
    ----------
    groupA, groupB : sequence of int
        The two groups (0-based, distinct atoms within each group; the groups may overlap).
        In a periodic box each group is made whole by unwrapping each atom to the minimum image
        of the previous atom of its group (list them so that consecutive atoms are closer than
        half the shortest box width in the whole molecule), and the centroid difference is
        minimum-imaged.
    weights : sequence of float, optional
        One positive weight per atom of ``groupA`` followed by one per atom of ``groupB``
        (masses in Da or openmm Quantities of mass).
    names : str, optional
        Name of the CV (default ``"centroid_distance"``).
    lower, upper : float
        Declared range in nm (default [0, 3]); in a periodic box keep ``upper`` below half the
        shortest box width.

    Notes
    -----
    ``forward(positions, box=None)``: ``(..., n_atoms, 3)`` nm → ``(..., 1)`` nm;
    ``value_and_jacobian`` gives the gradient ``(1, m, 3)`` over the union of the groups.

    Examples
    --------
    >>> import torch
    >>> cv = CentroidDistance([0, 1], [2])
    >>> x = torch.tensor([[0., 0, 0], [0, 0.2, 0], [0.4, 0.1, 0]], dtype=torch.float64)
    >>> round(float(cv(x)[0]), 6)
    0.4
    >>> round(float(CentroidDistance([0, 1], [2], weights=[1.0, 3.0, 1.0])(x)[0]), 6)
    0.403113
    """

    unit = "nm"  # of its values, for file headers and plot axes

    def __init__(self, groupA: Sequence[int], groupB: Sequence[int], weights: Optional[Sequence[float]] = None,
                 names: Optional[str] = "centroid_distance", lower: float = 0.0, upper: float = 3.0):
        a = atom_list(groupA, "groupA")
        b = atom_list(groupB, "groupB")
        if weights is None:
            w = torch.ones(len(a) + len(b), dtype=torch.float64)
        else:
            w = weight_list(weights, len(a) + len(b), "weights")
        atoms = a + [i for i in b if i not in set(a)]
        local = {atom: k for k, atom in enumerate(atoms)}
        super().__init__(atoms, 1, names, number(lower, "lower", positive=False), number(upper, "upper"),
                         "CentroidDistance")
        wa, wb = w[: len(a)], w[len(a):]
        self.register_buffer("index_a", torch.tensor([local[i] for i in a], dtype=torch.long))
        self.register_buffer("index_b", torch.tensor([local[i] for i in b], dtype=torch.long))
        self.register_buffer("weights_a", (wa / wa.sum()).unsqueeze(-1))
        self.register_buffer("weights_b", (wb / wb.sum()).unsqueeze(-1))

    def _vector(self, positions: torch.Tensor, box: Optional[torch.Tensor]) -> torch.Tensor:
        x = self._local(positions)
        ca = (self.weights_a.to(x.dtype) * make_whole(x.index_select(-2, self.index_a), box)).sum(dim=-2)
        cb = (self.weights_b.to(x.dtype) * make_whole(x.index_select(-2, self.index_b), box)).sum(dim=-2)
        d = cb - ca
        if box is not None:
            d = minimum_image(d.unsqueeze(-2), box).squeeze(-2)
        return d

    def forward(self, positions: torch.Tensor, box: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Centroid distance ``(..., 1)`` (nm) of positions ``(..., n_atoms, 3)`` (nm)."""
        return torch.linalg.vector_norm(self._vector(positions, box), dim=-1, keepdim=True)

    @torch.jit.export
    def value_and_jacobian(self, positions: torch.Tensor,
                           box: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Single frame ``(n_atoms, 3)`` (nm) → distance ``(1,)`` (nm) and gradient ``(1, m, 3)``."""
        d = self._vector(positions, box)
        r = torch.linalg.vector_norm(d)
        u = (d / r).unsqueeze(0)
        jac = torch.zeros(self.atoms.shape[1], 3, dtype=d.dtype, device=d.device)
        jac = jac.index_add(0, self.index_b, self.weights_b.to(d.dtype) * u)
        jac = jac.index_add(0, self.index_a, self.weights_a.to(d.dtype) * u, alpha=-1.0)
        return r.unsqueeze(0), jac.unsqueeze(0)
