"""A set of collective variables evaluated together: positions (nm) → CV vector."""

import math
from typing import List, Optional, Sequence

import torch

from .base import CollectiveVariable, Distance
from .force_cv import ForceCV

__all__ = ["CVSet"]


class CVSet(torch.nn.Module):
    """Ordered set of CVs; maps positions ``(..., n_atoms, 3)`` in nm to ``(..., n_cvs)``.

    CVs of the same kind are fused into one vectorized module, so two torsions cost one
    torsion evaluation. The set knows each CV's name, periodicity and declared range.

    Parameters
    ----------
    cvs : sequence of CollectiveVariable or ForceCV
        CV modules (each may itself hold several CVs of its kind), or OpenMM forces wrapped in
        :class:`~openmm_nnbias.cvs.ForceCV` (cvpack CVs, ``CustomCVForce``, ...). Their order
        defines the order of the output vector. A set holds either kind, not both: the values
        of Force CVs come from OpenMM (a Context), not from positions in torch.

    Notes
    -----
    ``forward(positions, box=None)`` and ``value_and_jacobians(positions, box=None)`` take the
    periodic box vectors (rows a, b, c in nm, shape ``(3, 3)`` or ``(..., 3, 3)``); with a box
    every distance, angle and torsion uses the minimum image, and :meth:`check_box` tells whether
    the declared distance ranges fit into the box.

    Examples
    --------
    >>> import torch
    >>> from openmm_nnbias.cvs import CVSet, Torsion
    >>> cvs = CVSet([Torsion([4, 6, 8, 14], "phi"), Torsion([6, 8, 14, 16], "psi")])
    >>> cvs.names, cvs.periodic
    (['phi', 'psi'], [True, True])
    >>> cvs(torch.randn(22, 3, dtype=torch.float64)).shape
    torch.Size([2])
    """

    __jit_unused_properties__ = ["n_cvs", "max_atom_index", "has_force_cvs"]
    names: List[str]
    units: List[str]
    periodic: List[bool]
    lower: List[float]
    upper: List[float]

    def __init__(self, cvs: Sequence[CollectiveVariable]):
        super().__init__()
        cvs = list(cvs)
        if not cvs:
            raise ValueError("CVSet needs at least one collective variable")
        _check_kinds(cvs)
        names: List[str] = []
        units: List[str] = []
        periodic: List[bool] = []
        lower: List[float] = []
        upper: List[float] = []
        kinds: dict = {}
        order: List[tuple] = []  # (kind, position within kind) for each output CV
        for cv in cvs:
            names += cv.names
            units += [str(u) for u in getattr(cv, "units", [getattr(cv, "unit", "1")] * cv.n_cvs)]
            periodic += [cv.periodic] * cv.n_cvs
            lower += list(getattr(cv, "lowers", [cv.lower] * cv.n_cvs))  # per output where a CV declares them (PathCV)
            upper += list(getattr(cv, "uppers", [cv.upper] * cv.n_cvs))
            if isinstance(cv, ForceCV):  # computed by OpenMM: no torch group
                continue
            kind = type(cv) if getattr(cv, "fusable", True) else id(cv)  # a ModelCV is its own group
            kinds.setdefault(kind, [])
            start = sum(m.n_cvs for m in kinds[kind])
            kinds[kind].append(cv)
            for j in range(cv.n_cvs):
                order.append((kind, start + j))
        if len(set(names)) != len(names):
            raise ValueError(f"CV names must be unique, got {names}")
        groups = [members[0].merged_with(members[1:]) for members in kinds.values()]
        offsets = {}
        total = 0
        for kind, g in zip(kinds, groups):
            offsets[kind] = total
            total += g.n_cvs
        perm = [offsets[kind] + j for kind, j in order]
        self.groups = torch.nn.ModuleList(groups)
        self.register_buffer("permutation", torch.tensor(perm, dtype=torch.long))
        self.identity_order = perm == list(range(len(perm)))
        self.names = names
        self.units = units  # "rad", "nm" or a model CV's own ("1": dimensionless)
        self.periodic = periodic
        self.lower = lower
        self.upper = upper
        self.sources = cvs

    @property
    def n_cvs(self) -> int:
        return len(self.names)

    @property
    def max_atom_index(self) -> int:
        return max(int(g.atoms.max()) for g in self.groups)

    @property
    def has_force_cvs(self) -> bool:
        """True for a set of :class:`~openmm_nnbias.cvs.ForceCV`: OpenMM computes the values."""
        return isinstance(self.sources[0], ForceCV)

    def check_system(self, num_particles: int) -> None:
        """Raise ValueError if any CV refers to an atom index ≥ ``num_particles``."""
        for cv in self.sources:
            if isinstance(cv, ForceCV):  # OpenMM checks a force's atoms when the Context is made
                continue
            bad = [row for row in cv.atoms.tolist() if max(row) >= num_particles]
            if bad:
                raise ValueError(
                    f"CV {cv.names} uses atom index {max(bad[0])} but the system has only "
                    f"{num_particles} particles (valid indices 0..{num_particles - 1})")

    def check_box(self, box) -> None:
        """Raise ValueError if a distance range does not fit into the periodic ``box``.

        With the minimum image a distance can't exceed half the shortest box width, so a
        non-periodic :class:`~openmm_nnbias.cvs.Distance` CV whose declared ``upper`` bound is
        larger would silently fold back. :meth:`NeuralBiasForce.addToSystem
        <openmm_nnbias.bias.NeuralBiasForce.addToSystem>` calls this with
        ``system.getDefaultPeriodicBoxVectors()`` for periodic Systems.

        Parameters
        ----------
        box : array-like (3, 3) or openmm.unit.Quantity
            Box vectors as rows (a, b, c), in nm unless a Quantity, in OpenMM's reduced form
            (a along x, b in the xy-plane); the box widths are then ``a_x, b_y, c_z``.

        Raises
        ------
        TypeError
            If ``box`` is not numeric.
        ValueError
            If ``box`` is not a reduced-form (3, 3) box with positive widths, or a Distance
            CV's ``upper`` exceeds half the shortest width (naming the CV, the bound and the box).
        """
        from .._units import strip_unit

        try:
            rows = [[strip_unit(x, "nanometer") for x in row] for row in box]
            if isinstance(box, str) or any(isinstance(row, str) for row in box):
                raise TypeError("text is not a box")
            vectors = torch.tensor(rows, dtype=torch.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(f"box must be 3 box vectors (3, 3) in nm, got {box!r}") from err
        if vectors.shape != (3, 3):
            raise ValueError(f"box must have shape (3, 3) (rows a, b, c), got {tuple(vectors.shape)}")
        widths = vectors.diagonal().tolist()
        if not all(w > 0 for w in widths) or bool(vectors.triu(1).abs().max() > 0):
            raise ValueError("box must be in OpenMM's reduced form (a along x, b in the xy-plane, "
                             f"positive a_x, b_y, c_z), got {vectors.tolist()}")
        half = 0.5 * min(widths)
        for cv in self.sources:
            if isinstance(cv, Distance) and not cv.periodic and cv.upper > half:
                raise ValueError(
                    f"Distance CV {cv.names[0] if cv.n_cvs == 1 else cv.names!r}: its upper bound {cv.upper} nm "
                    f"exceeds half the shortest box width {half:g} nm (box {vectors.tolist()} nm); under the "
                    "minimum image a distance can't exceed that: lower upper or enlarge the box")

    def check_range(self, values: torch.Tensor, times=None) -> None:
        """Raise ValueError naming the first value ``(N, n_cvs)`` of a non-periodic CV outside its declared
        range (with its time in ps when ``times`` is given)."""
        for j, name in enumerate(self.names):
            col = values[:, j]
            out = (col < self.lower[j]) | (col > self.upper[j])
            if not self.periodic[j] and bool(out.any()):
                i = int(torch.nonzero(out)[0])
                when = f" at t = {float(times[i]):.3f} ps" if times is not None else f" (sample {i})"
                raise ValueError(f"CV {name!r} = {float(col[i]):.4f}{when} is outside its declared range "
                                 f"[{self.lower[j]}, {self.upper[j]}]; widen the range of the CV (and of the bias grid)")

    def period(self) -> List[float]:
        """Period of each CV (``math.inf`` for non-periodic ones)."""
        return [u - lo if p else math.inf for p, lo, u in zip(self.periodic, self.lower, self.upper)]

    @torch.jit.export
    def value_and_jacobians(self, positions: torch.Tensor, box: Optional[torch.Tensor] = None):
        """Single frame: CV vector ``(n_cvs,)`` and, per fused group, ``(atoms, jacobian)``.

        ``atoms`` is the group's ``(n, k)`` index table and ``jacobian`` the ``(n, k, 3)``
        gradients; the group's CVs sit at positions ``inverse_permutation`` of the output.
        Positions ``(n_atoms, 3)`` and the optional periodic ``box`` ``(3, 3)`` are in nm.
        """
        values: List[torch.Tensor] = []
        jacobians: List[torch.Tensor] = []
        for g in self.groups:
            v, j = g.value_and_jacobian(positions, box)
            values.append(v)
            jacobians.append(j)
        out = values[0] if len(values) == 1 else torch.cat(values, dim=-1)
        if not self.identity_order:
            out = out.index_select(-1, self.permutation)
        return out, jacobians

    @torch.jit.export
    def apply_forces(self, dvds: torch.Tensor, jacobians: List[torch.Tensor],
                     forces: torch.Tensor) -> torch.Tensor:
        """Accumulate ``-dV/ds · ds/dx`` into ``forces`` (n_atoms, 3) and return it."""
        if not self.identity_order:
            dvds = torch.zeros_like(dvds).index_copy(0, self.permutation, dvds)
        offset = 0
        i = 0
        for g in self.groups:
            j = jacobians[i]
            n = j.shape[0]
            contrib = (dvds.narrow(0, offset, n).view(-1, 1, 1) * j).view(-1, 3)
            forces = forces.index_add(0, g.atoms.reshape(-1), contrib, alpha=-1.0)
            offset += n
            i += 1
        return forces

    def forward(self, positions: torch.Tensor, box: Optional[torch.Tensor] = None) -> torch.Tensor:
        """CVs ``(..., n_cvs)`` of positions ``(..., n_atoms, 3)`` (nm); ``box`` (nm) as in the Notes."""
        if len(self.groups) == 0:
            raise ValueError("the CVs of this set are OpenMM forces (ForceCV): read their values from a Context "
                             "(NeuralBiasForce.getCollectiveVariables), not from positions")
        values = [g(positions, box) for g in self.groups]
        out = values[0] if len(values) == 1 else torch.cat(values, dim=-1)
        if self.identity_order:
            return out
        return out.index_select(-1, self.permutation)


def _check_kinds(cvs: list) -> None:
    """TypeError for a member that is neither a CollectiveVariable nor a ForceCV, or a mixed set."""
    import openmm as mm

    for i, cv in enumerate(cvs):
        if isinstance(cv, mm.Force):
            raise TypeError(f"cvs[{i}] is an OpenMM force ({type(cv).__name__}): wrap it as "
                            "openmm_nnbias.cvs.ForceCV(force, lower, upper, name=...) to declare its range")
        if not isinstance(cv, (CollectiveVariable, ForceCV)):
            raise TypeError(f"CVSet takes CollectiveVariable modules or ForceCV, got {type(cv).__name__} (cvs[{i}])")
    forces = [isinstance(cv, ForceCV) for cv in cvs]
    if any(forces) and not all(forces):
        raise ValueError(
            "CVSet cannot mix Force CVs (ForceCV) with TorchScript CVs "
            f"({sorted({type(cv).__name__ for cv in cvs if not isinstance(cv, ForceCV)})}): "
            "wrap those as ForceCV too (e.g. cvpack.Torsion, cvpack.Distance) for the 'cvforce' backend, "
            "or use only this package's CVs (openmm_nnbias.cvs.RadiusOfGyration, ...) with the 'torch' backend")
