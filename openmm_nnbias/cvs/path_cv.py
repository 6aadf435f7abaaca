"""Path collective variables s and z (Branduardi, Gervasio & Parrinello, J. Chem. Phys. 2007)."""

import math
from typing import List, Optional, Sequence, Tuple

import torch

from ._groups import GroupCV, atom_list, make_whole, number, reference_rows, superpose

__all__ = ["PathCV"]


class PathCV(GroupCV):
    r"""Progress ``s`` along, and distance ``z`` from, a path of ``F`` frames (two CVs).

    .. math::

        s = \frac{1}{F-1}\,\frac{\sum_{i=0}^{F-1} i\, e^{-\lambda d_i}}{\sum_{i=0}^{F-1} e^{-\lambda d_i}},
        \qquad z = -\frac{1}{\lambda}\ln\sum_{i=0}^{F-1} e^{-\lambda d_i}

    (Branduardi, Gervasio & Parrinello, J. Chem. Phys. 126, 054103 (2007), with ``s`` scaled to
    [0, 1]), where the metric ``d_i`` is the mean-square deviation (nm²) of the atoms from frame
    ``i`` after optimal superposition (``align=True``: RMSD², as in the paper and cvpack's
    ``PathInRMSDSpace``, whose ``sigma`` is ``1/sqrt(2 λ)``) or after superposing the centroids
    only (``align=False``). ``s`` is dimensionless, ``z`` in nm².

    Parameters
    ----------
    atoms : sequence of int
        The atoms (0-based, distinct). In a periodic box the group is made whole by unwrapping
        each atom to the minimum image of the previous one: list them so that consecutive atoms
        are closer than half the shortest box width in the whole molecule.
    frames : sequence of array-like
        At least two frames, each ``(len(atoms), 3)`` or the whole system ``(n_atoms, 3)`` (nm, or
        openmm Quantities).
    lam : float
        λ in nm⁻²; a common choice is about 2.3 over the mean-square deviation between
        neighbouring frames.
    align : bool
        Optimal rotation (default) or centroids only.
    names : pair of str
        Names of the two CVs (default ``("path_s", "path_z")``).
    zLower, zUpper : float, optional
        Declared range of z in nm² (default [−ln(F)/λ, 1]); ``s`` is declared on [0, 1].

    Notes
    -----
    ``forward(positions, box=None)``: ``(..., n_atoms, 3)`` nm → ``(..., 2)`` (s, z);
    ``value_and_jacobian`` gives analytic gradients ``(2, m, 3)``. The CV's ``units``,
    ``lowers`` and ``uppers`` lists give each output's unit and range (read by
    :class:`~openmm_nnbias.cvs.CVSet`).

    Examples
    --------
    >>> import torch
    >>> line = torch.tensor([[0., 0, 0], [0.1, 0, 0], [0.2, 0, 0]], dtype=torch.float64)
    >>> bent = torch.tensor([[0., 0, 0], [0.1, 0, 0], [0.1, 0.1, 0]], dtype=torch.float64)
    >>> cv = PathCV([0, 1, 2], [line, bent], lam=1000.0)
    >>> cv.names
    ['path_s', 'path_z']
    >>> [round(v, 4) for v in cv(line).tolist()]  # at the first frame
    [0.1567, -0.0002]
    """

    unit = "1"  # of s; see units
    lam: float
    align: bool
    units: List[str]
    lowers: List[float]
    uppers: List[float]

    def __init__(self, atoms: Sequence[int], frames: Sequence, lam: float, align: bool = True,
                 names: Sequence[str] = ("path_s", "path_z"), zLower: Optional[float] = None,
                 zUpper: Optional[float] = None):
        atoms = atom_list(atoms, "atoms", minimum=2)
        if isinstance(frames, (str, bytes)) or not hasattr(frames, "__iter__"):
            raise TypeError(f"frames must be a sequence of positions, got {type(frames).__name__}")
        refs = [reference_rows(f, atoms, f"frames[{i}]") for i, f in enumerate(frames)]
        if len(refs) < 2:
            raise ValueError(f"frames: need at least 2 frames, got {len(refs)}")
        lam = number(lam, "lam")
        if not isinstance(align, bool):
            raise TypeError(f"align must be a bool, got {type(align).__name__}")
        if isinstance(names, str) or len(list(names)) != 2:
            raise ValueError(f"names: need two names (s, z), got {names!r}")
        z_lo = -math.log(len(refs)) / lam if zLower is None else number(zLower, "zLower", positive=False)
        z_hi = 1.0 if zUpper is None else number(zUpper, "zUpper", positive=False)
        if not z_hi > z_lo:
            raise ValueError(f"zUpper must exceed zLower, got [{z_lo}, {z_hi}]")
        super().__init__(atoms, 2, list(names), min(0.0, z_lo), max(1.0, z_hi), "PathCV")
        ref = torch.stack(refs)
        self.register_buffer("frames", ref - ref.mean(dim=1, keepdim=True))  # (F, m, 3), centred
        self.register_buffer("index", torch.arange(len(refs), dtype=torch.float64) / (len(refs) - 1))
        self.lam, self.align = lam, align
        self.units = ["1", "nm^2"]
        self.lowers = [0.0, z_lo]
        self.uppers = [1.0, z_hi]

    def _msd(self, positions: torch.Tensor, box: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        x = make_whole(self._local(positions), box)
        r = superpose(x, self.frames.to(x.dtype), self.align)  # (..., F, m, 3)
        return (r * r).sum(dim=(-2, -1)) / r.shape[-2], r

    def _path(self, d: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(s, z, softmax weights p) of mean-square deviations ``d`` ``(..., F)``."""
        p = torch.softmax(-self.lam * d, dim=-1)
        s = (p * self.index.to(d.dtype)).sum(dim=-1)
        z = -torch.logsumexp(-self.lam * d, dim=-1) / self.lam
        return s, z, p

    def forward(self, positions: torch.Tensor, box: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(s, z) ``(..., 2)`` of positions ``(..., n_atoms, 3)`` (nm)."""
        s, z, _ = self._path(self._msd(positions, box)[0])
        return torch.stack([s, z], dim=-1)

    @torch.jit.export
    def value_and_jacobian(self, positions: torch.Tensor,
                           box: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Single frame ``(n_atoms, 3)`` (nm) → (s, z) ``(2,)`` and gradients ``(2, m, 3)`` (1/nm, nm)."""
        d, r = self._msd(positions, box)
        s, z, p = self._path(d)
        grad_d = r * (2.0 / r.shape[-2])  # (F, m, 3): d d_i / d x
        ds = -self.lam * p * (self.index.to(d.dtype) - s)  # d s / d d_i
        jac = torch.stack([(ds.view(-1, 1, 1) * grad_d).sum(0), (p.view(-1, 1, 1) * grad_d).sum(0)])
        return torch.stack([s, z]), jac
