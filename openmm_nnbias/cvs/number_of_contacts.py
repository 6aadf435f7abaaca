"""Number of contacts (PLUMED COORDINATION) and native contacts Q."""

from typing import Optional, Sequence, Tuple

import torch

from ._groups import GroupCV, atom_list, integer, number, rational_switch, reference_rows
from .base import minimum_image

__all__ = ["NumberOfContacts"]


class NumberOfContacts(GroupCV):
    r"""Number of contacts between atoms (PLUMED's ``COORDINATION``), or native contacts Q.

    .. math::

        N = \sum_{\{i,j\}} s(r_{ij}/r_0),\qquad s(x) = \frac{1 - x^{nn}}{1 - x^{mm}}

    over the unordered pairs: all pairs of ``groupA`` (``groupB=None``), or the pairs with one atom
    in ``groupA`` and one in ``groupB`` (a pair of two distinct atoms counted once, also when the
    groups overlap; an atom is never paired with itself). At ``r = r0`` the limit ``nn/mm`` is used.
    With the default ``nn=6, mm=12``, ``s(x) = 1/(1 + x^6)``: cvpack's ``NumberOfContacts`` with its
    default step function and no cut-off. There is no cut-off: every listed pair is evaluated
    (O(pairs) per call); bonded pairs are not excluded.

    Native contacts: with ``reference`` positions only the pairs closer than
    ``referenceCutoff`` (default ``r0``) in the reference structure count (plain distances in the
    reference: give it whole). With ``normalize=True`` the sum is divided by the number of
    counted pairs (Q as a fraction, between 0 and 1).

    Parameters
    ----------
    groupA : sequence of int
        Atoms (0-based, distinct).
    groupB : sequence of int, optional
        Second group (distinct atoms); ``None`` pairs ``groupA`` with itself.
    r0 : float
        Switching distance ``r_0`` (nm; PLUMED ``R_0``, cvpack ``thresholdDistance``); default 0.3.
    nn, mm : int
        Exponents of the rational switch (PLUMED ``NN``, ``MM``), ``nn != mm``; default 6 and 12.
    reference : array-like or openmm Quantity, optional
        Reference positions (nm) for native contacts: one row per atom of the system, or one per
        atom of ``groupA`` followed by those of ``groupB`` not in ``groupA``.
    referenceCutoff : float, optional
        Native-contact cut-off (nm) in the reference; default ``r0``.
    normalize : bool
        Divide by the number of counted pairs.
    names : str, optional
        Name of the CV (default ``"number_of_contacts"``).
    lower, upper : float, optional
        Declared range (default [0, number of pairs], or [0, 1] when normalized).

    Notes
    -----
    With a box every pair vector is minimum-imaged (no need to make the groups whole).
    ``forward(positions, box=None)``: ``(..., n_atoms, 3)`` nm → ``(..., 1)``; ``value_and_jacobian``
    gives the gradient ``(1, m, 3)`` (1/nm) over the ``m`` atoms of the union of the groups.

    Examples
    --------
    >>> import torch
    >>> cv = NumberOfContacts([0], [1, 2], r0=0.3)
    >>> x = torch.tensor([[0., 0, 0], [0.3, 0, 0], [0, 0.6, 0]], dtype=torch.float64)
    >>> round(float(cv(x)[0]), 6)  # s(1) = 1/2 and s(2) = 1/(1 + 2^6)
    0.515385
    >>> native = NumberOfContacts([0, 1, 2], r0=0.3, reference=x, referenceCutoff=0.35)
    >>> native.n_pairs, round(float(native(x)[0]), 6)  # only the pair (0, 1) is native
    (1, 0.5)
    """

    unit = "1"  # of its values: a number of contacts
    r0: float
    nn: int
    mm: int
    n_pairs: int
    factor: float

    def __init__(self, groupA: Sequence[int], groupB: Optional[Sequence[int]] = None, r0: float = 0.3,
                 nn: int = 6, mm: int = 12, reference=None, referenceCutoff: Optional[float] = None,
                 normalize: bool = False, names: Optional[str] = "number_of_contacts",
                 lower: Optional[float] = None, upper: Optional[float] = None):
        a = atom_list(groupA, "groupA")
        b = None if groupB is None else atom_list(groupB, "groupB")
        r0 = number(r0, "r0")
        nn, mm = integer(nn, "nn"), integer(mm, "mm")
        if nn == mm:
            raise ValueError(f"nn and mm must differ, got nn = mm = {nn}")
        if not isinstance(normalize, bool):
            raise TypeError(f"normalize must be a bool, got {type(normalize).__name__}")
        atoms = a + ([] if b is None else [i for i in b if i not in set(a)])
        local = {atom: k for k, atom in enumerate(atoms)}
        if b is None:
            pairs = [(i, j) for i in range(len(a)) for j in range(i + 1, len(a))]
        else:
            seen = set()
            pairs = []
            for i in a:
                for j in b:
                    key = (min(i, j), max(i, j))
                    if i != j and key not in seen:
                        seen.add(key)
                        pairs.append((local[i], local[j]))
        if reference is not None:
            cut = r0 if referenceCutoff is None else number(referenceCutoff, "referenceCutoff")
            ref = reference_rows(reference, atoms, "reference")
            pairs = [(i, j) for i, j in pairs if float(torch.linalg.norm(ref[i] - ref[j])) < cut]
        elif referenceCutoff is not None:
            raise ValueError("referenceCutoff needs reference positions")
        if not pairs:
            raise ValueError("NumberOfContacts: no pair of atoms to count (check the groups and the reference)")
        lower = 0.0 if lower is None else number(lower, "lower", positive=False)
        upper = (1.0 if normalize else float(len(pairs))) if upper is None else number(upper, "upper")
        super().__init__(atoms, 1, names, lower, upper, "NumberOfContacts")
        idx = torch.tensor(pairs, dtype=torch.long)
        self.register_buffer("pair_i", idx[:, 0].contiguous())
        self.register_buffer("pair_j", idx[:, 1].contiguous())
        self.r0, self.nn, self.mm = r0, nn, mm
        self.n_pairs = len(pairs)
        self.factor = 1.0 / len(pairs) if normalize else 1.0

    def _vectors(self, positions: torch.Tensor, box: Optional[torch.Tensor]) -> torch.Tensor:
        x = self._local(positions)
        d = x.index_select(-2, self.pair_j) - x.index_select(-2, self.pair_i)
        if box is not None:
            d = minimum_image(d, box)
        return d

    def forward(self, positions: torch.Tensor, box: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Number of contacts ``(..., 1)`` of positions ``(..., n_atoms, 3)`` (nm)."""
        r = torch.linalg.vector_norm(self._vectors(positions, box), dim=-1)
        s = rational_switch(r / self.r0, self.nn, self.mm)[0]
        return s.sum(dim=-1, keepdim=True) * self.factor

    @torch.jit.export
    def value_and_jacobian(self, positions: torch.Tensor,
                           box: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Single frame ``(n_atoms, 3)`` (nm) → count ``(1,)`` and gradient ``(1, m, 3)`` (1/nm)."""
        d = self._vectors(positions, box)
        r = torch.linalg.vector_norm(d, dim=-1)
        s, ds = rational_switch(r / self.r0, self.nn, self.mm)
        g = d * (ds * self.factor / (self.r0 * r)).unsqueeze(-1)  # d s / d r_j
        jac = torch.zeros(self.atoms.shape[1], 3, dtype=d.dtype, device=d.device)
        jac = jac.index_add(0, self.pair_j, g).index_add(0, self.pair_i, g, alpha=-1.0)
        return (s.sum() * self.factor).unsqueeze(0), jac.unsqueeze(0)
