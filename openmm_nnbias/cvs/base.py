"""Collective variables as small TorchScript modules (positions in nm → CV values).

One CV kind = one class. Every class computes *many* CVs of its kind at once from an
``(n, k)`` table of atom indices, so that a :class:`~openmm_nnbias.cvs.CVSet` evaluates all
torsions (or distances, ...) of a bias in one vectorized call. Positions may carry leading
batch dimensions: ``(..., n_atoms, 3)`` → ``(..., n)``.

Periodic boxes: every ``forward`` and ``value_and_jacobian`` takes an optional ``box``, the
OpenMM box vectors as rows ``(a, b, c)`` in nm, shape ``(3, 3)`` or ``(..., 3, 3)`` matching the
leading dimensions of the positions. With a box, distances, angles and torsions use the minimum
image of every difference vector (:func:`minimum_image`); ``box=None`` means no periodicity.
:class:`Position` ignores the box.
"""

import copy
import math
from typing import Optional, Sequence

import torch

__all__ = ["CollectiveVariable", "Torsion", "Distance", "Angle", "Position", "minimum_image",
           "torsion_value_and_jacobian", "distance_value_and_jacobian", "angle_value_and_jacobian"]


def minimum_image(d: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """Minimum image of difference vectors ``d`` (nm) in a periodic box, as OpenMM computes it.

    Parameters
    ----------
    d : torch.Tensor
        Difference vectors ``(..., m, 3)`` in nm.
    box : torch.Tensor
        Box vectors as rows ``(a, b, c)`` in nm, in OpenMM's reduced form (``a`` along x, ``b`` in
        the xy-plane, ``|b_x| <= a_x/2``, ``|c_x| <= a_x/2``, ``|c_y| <= b_y/2``); shape ``(3, 3)``
        or ``(..., 3, 3)`` with the leading dimensions ``...`` of ``d``.

    Returns
    -------
    torch.Tensor
        ``d`` minus ``c·round(d_z/c_z)``, then ``b·round(d_y/b_y)``, then ``a·round(d_x/a_x)``
        (OpenMM's order; the nearest image for vectors shorter than half the shortest box
        width, the range OpenMM's cutoffs allow).

    Examples
    --------
    >>> import torch
    >>> box = torch.diag(torch.tensor([2.0, 2.0, 2.0], dtype=torch.float64))
    >>> minimum_image(torch.tensor([[1.5, -0.25, 3.0]], dtype=torch.float64), box).tolist()
    [[-0.5, -0.25, -1.0]]
    """
    c = box[..., 2:3, :]
    d = d - c * torch.round(d[..., 2:3] / c[..., 2:3])
    b = box[..., 1:2, :]
    d = d - b * torch.round(d[..., 1:2] / b[..., 1:2])
    a = box[..., 0:1, :]
    return d - a * torch.round(d[..., 0:1] / a[..., 0:1])


def _as_index_table(atoms, width: int, kind: str) -> torch.Tensor:
    table = torch.as_tensor(atoms, dtype=torch.long)
    if table.dim() == 1:
        table = table.unsqueeze(0)
    if table.dim() != 2 or table.shape[1] != width:
        raise ValueError(f"{kind} needs {width} atom indices per CV, got shape {tuple(table.shape)}")
    if (table < 0).any():
        raise ValueError(f"{kind}: negative atom index in {table.tolist()}")
    for row in table.tolist():
        if len(set(row)) != len(row):
            raise ValueError(f"{kind}: repeated atom in {tuple(row)}; the atoms of one CV must be distinct")
    return table


class CollectiveVariable(torch.nn.Module):
    """Common contract of all CV kinds.

    Attributes
    ----------
    atoms : torch.Tensor
        ``(n, k)`` long tensor of atom indices (a registered buffer).
    periodic : bool
        Whether the CV is periodic with period ``upper - lower``.
    lower, upper : float
        Declared range in MD units (rad or nm). For periodic CVs the period; for the others
        the range that features are scaled over (values outside are an error when learning).
    names : list[str]
        One name per CV.
    """

    periodic: bool
    lower: float
    upper: float
    atom_width: int = 1

    def __init__(self, atoms, names, lower: float, upper: float,
                 periodic: bool, kind: str):
        super().__init__()
        table = _as_index_table(atoms, self.atom_width, kind)
        self.register_buffer("atoms", table)
        n = table.shape[0]
        if names is None:
            names = [f"{kind.lower()}{i}" for i in range(n)] if n > 1 else [kind.lower()]
        elif isinstance(names, str):
            names = [names]
        if len(names) != n:
            raise ValueError(f"{kind}: {len(names)} names for {n} CVs")
        if not (math.isfinite(lower) and math.isfinite(upper)) or not upper > lower:
            raise ValueError(f"{kind}: range must satisfy lower < upper, got [{lower}, {upper}]")
        self.names = list(names)
        self.periodic = bool(periodic)
        self.lower = float(lower)
        self.upper = float(upper)

    @property
    def n_cvs(self) -> int:
        return int(self.atoms.shape[0])

    @property
    def max_atom_index(self) -> int:
        return int(self.atoms.max())

    def merged_with(self, others: Sequence["CollectiveVariable"]) -> "CollectiveVariable":
        """Return one module of this kind computing this CV group followed by ``others``."""
        merged = copy.deepcopy(self)
        merged.atoms = torch.cat([self.atoms] + [o.atoms for o in others])
        if hasattr(self, "axes"):
            merged.axes = torch.cat([self.axes] + [o.axes for o in others])
        merged.names = self.names + [n for o in others for n in o.names]
        return merged

    def _gather(self, positions: torch.Tensor, column: int) -> torch.Tensor:
        return positions.index_select(-2, self.atoms[:, column])


class Torsion(CollectiveVariable):
    """Dihedral angle(s) in radians, periodic on [-π, π), same sign convention as OpenMM and mdtraj.

    Parameters
    ----------
    atoms : sequence of 4 ints, or (n, 4) array
        Atom indices (0-based) of each torsion.
    names : str or list of str, optional

    Examples
    --------
    >>> import torch
    >>> cv = Torsion([0, 1, 2, 3], names="phi")
    >>> x = torch.tensor([[1., 0, 0], [0, 0, 0], [0, 1, 0], [0, 1, 1]], dtype=torch.float64)
    >>> round(float(cv(x)[0]), 4)  # -90 degrees, as mdtraj.compute_dihedrals gives
    -1.5708

    With a ``box`` (nm, rows a, b, c) the three bond vectors are minimum-imaged, as
    ``mdtraj.compute_dihedrals(..., periodic=True)`` and OpenMM's ``dihedral()`` do.
    """

    unit = "rad"  # of its values, for file headers and plot axes

    atom_width = 4

    def __init__(self, atoms, names=None):
        super().__init__(atoms, names, -math.pi, math.pi, True, "Torsion")

    def forward(self, positions: torch.Tensor, box: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Torsions (rad) of positions ``(..., n_atoms, 3)`` (nm), optional box ``(..., 3, 3)`` (nm)."""
        p0 = self._gather(positions, 0)
        p1 = self._gather(positions, 1)
        p2 = self._gather(positions, 2)
        p3 = self._gather(positions, 3)
        b1 = p1 - p0
        b2 = p2 - p1
        b3 = p3 - p2
        if box is not None:
            b1 = minimum_image(b1, box)
            b2 = minimum_image(b2, box)
            b3 = minimum_image(b3, box)
        n1 = torch.linalg.cross(b1, b2)
        n2 = torch.linalg.cross(b2, b3)
        y = torch.linalg.norm(b2, dim=-1) * (b1 * n2).sum(-1)
        x = (n1 * n2).sum(-1)
        return torch.atan2(y, x)

    @torch.jit.export
    def value_and_jacobian(self, positions: torch.Tensor, box: Optional[torch.Tensor] = None):
        """Single frame ``(n_atoms, 3)`` (nm), optional box ``(3, 3)`` (nm) → values ``(n,)`` (rad)
        and gradients ``(n, 4, 3)`` (rad/nm)."""
        p = positions.index_select(0, self.atoms.reshape(-1)).view(-1, 4, 3)
        return torsion_value_and_jacobian(p, box)


class Distance(CollectiveVariable):
    """Interatomic distance(s) in nm (a non-periodic CV; minimum image when given a box).

    Parameters
    ----------
    atoms : (2,) or (n, 2) ints
    lower, upper : float
        Declared range in nm (features are scaled over it).

    Examples
    --------
    >>> import torch
    >>> cv = Distance([0, 1], lower=0.0, upper=2.0)
    >>> float(cv(torch.tensor([[0., 0, 0], [0.3, 0.4, 0]]))[0])
    0.5
    >>> float(cv(torch.tensor([[0.1, 0, 0], [2.6, 0, 0]]), torch.eye(3) * 3.0)[0])  # across the box
    0.5

    In a periodic box keep ``upper`` at most half the shortest box width
    (:meth:`~openmm_nnbias.cvs.CVSet.check_box`): beyond it the minimum image is not the distance.
    """

    unit = "nm"  # of its values, for file headers and plot axes

    atom_width = 2

    def __init__(self, atoms, lower: float, upper: float, names=None):
        super().__init__(atoms, names, lower, upper, False, "Distance")

    def forward(self, positions: torch.Tensor, box: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Distances (nm) of positions ``(..., n_atoms, 3)`` (nm), optional box ``(..., 3, 3)`` (nm)."""
        d = self._gather(positions, 1) - self._gather(positions, 0)
        if box is not None:
            d = minimum_image(d, box)
        return torch.linalg.norm(d, dim=-1)

    @torch.jit.export
    def value_and_jacobian(self, positions: torch.Tensor, box: Optional[torch.Tensor] = None):
        """Single frame ``(n_atoms, 3)`` (nm), optional box ``(3, 3)`` (nm) → values ``(n,)`` (nm)
        and gradients ``(n, 2, 3)`` (dimensionless)."""
        p = positions.index_select(0, self.atoms.reshape(-1)).view(-1, 2, 3)
        return distance_value_and_jacobian(p, box)


class Angle(CollectiveVariable):
    """Bond angle(s) i-j-k in radians (non-periodic, range [0, π] by default).

    Examples
    --------
    >>> import torch
    >>> cv = Angle([0, 1, 2])
    >>> x = torch.tensor([[1., 0, 0], [0, 0, 0], [0, 1, 0]])
    >>> round(float(cv(x)[0]), 4)
    1.5708

    With a ``box`` (nm, rows a, b, c) both arms are minimum-imaged.
    """

    unit = "rad"  # of its values, for file headers and plot axes

    atom_width = 3

    def __init__(self, atoms, lower: float = 0.0, upper: float = math.pi, names=None):
        super().__init__(atoms, names, lower, upper, False, "Angle")

    def forward(self, positions: torch.Tensor, box: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Angles (rad) of positions ``(..., n_atoms, 3)`` (nm), optional box ``(..., 3, 3)`` (nm)."""
        u = self._gather(positions, 0) - self._gather(positions, 1)
        v = self._gather(positions, 2) - self._gather(positions, 1)
        if box is not None:
            u = minimum_image(u, box)
            v = minimum_image(v, box)
        return torch.atan2(torch.linalg.norm(torch.linalg.cross(u, v), dim=-1), (u * v).sum(-1))

    @torch.jit.export
    def value_and_jacobian(self, positions: torch.Tensor, box: Optional[torch.Tensor] = None):
        """Single frame ``(n_atoms, 3)`` (nm), optional box ``(3, 3)`` (nm) → values ``(n,)`` (rad)
        and gradients ``(n, 3, 3)`` (rad/nm)."""
        p = positions.index_select(0, self.atoms.reshape(-1)).view(-1, 3, 3)
        return angle_value_and_jacobian(p, box)


class Position(CollectiveVariable):
    """Cartesian component(s) of particle positions in nm (for one-particle model potentials).

    Parameters
    ----------
    atoms : int or sequence of ints
        Particle index of each CV.
    axis : str or sequence of str
        ``"x"``, ``"y"`` or ``"z"`` for each CV.
    lower, upper : float
        Declared range in nm.

    Examples
    --------
    >>> import torch
    >>> cv = Position([0, 0], axis=["x", "y"], lower=-3.0, upper=3.0)
    >>> cv(torch.tensor([[1.0, 2.0, 3.0]])).tolist()
    [1.0, 2.0]

    Notes
    -----
    In a periodic box the CV is the coordinate as the Context stores it (unwrapped: a particle
    that left the box keeps its continuous coordinate), identical in the torch and table
    backends on the Reference and CPU platforms (tested). The ``box`` argument is accepted for a
    uniform CV interface and ignored; no periodic wrapping is applied. GPU platforms may hand
    forces coordinates translated by box vectors (they reorder and re-image molecules), so in
    periodic systems prefer CVs built from difference vectors.
    """

    unit = "nm"  # of its values, for file headers and plot axes

    atom_width = 1

    def __init__(self, atoms, axis, lower: float, upper: float, names=None):
        atoms_list = [atoms] if isinstance(atoms, int) else list(atoms)
        axes = [axis] * len(atoms_list) if isinstance(axis, str) else list(axis)
        if len(axes) != len(atoms_list):
            raise ValueError(f"Position: {len(axes)} axes for {len(atoms_list)} particles")
        bad = [a for a in axes if a not in ("x", "y", "z")]
        if bad:
            raise ValueError(f"Position: axis must be 'x', 'y' or 'z', got {bad}")
        if names is None:
            names = axes if len(set(axes)) == len(axes) else [f"{a}{i}" for i, a in zip(atoms_list, axes)]
        super().__init__([[a] for a in atoms_list], names, lower, upper, False, "Position")
        self.register_buffer("axes", torch.tensor(["xyz".index(a) for a in axes], dtype=torch.long))

    def forward(self, positions: torch.Tensor, box: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Coordinates (nm) of positions ``(..., n_atoms, 3)`` (nm); ``box`` is ignored."""
        picked = positions.index_select(-2, self.atoms[:, 0])
        return torch.gather(picked, -1, self.axes.unsqueeze(-1).expand(picked.shape[:-1] + (1,))).squeeze(-1)

    @torch.jit.export
    def value_and_jacobian(self, positions: torch.Tensor, box: Optional[torch.Tensor] = None):
        """Single frame ``(n_atoms, 3)`` (nm) → values ``(n,)`` (nm) and gradients ``(n, 1, 3)``;
        ``box`` is ignored."""
        value = self.forward(positions, box)
        eye = torch.eye(3, dtype=positions.dtype, device=positions.device)
        return value, eye.index_select(0, self.axes).unsqueeze(1)


# --- analytic Jacobians (single frame), used by the fused force kernel --------------------

def torsion_value_and_jacobian(p: torch.Tensor, box: Optional[torch.Tensor] = None):
    """Torsions and their gradients from gathered atoms ``p`` of shape ``(n, 4, 3)``.

    Returns ``(phi (n,), dphi/dp (n, 4, 3))`` (Blondel & Karplus, J. Comput. Chem. 1996).
    Written for few tensor ops (they dominate the cost at this size): all dot products come
    from one batched Gram matrix, and the four atom gradients from one (4×2)·(2×3) product
    with the two plane normals. With a ``box`` (3, 3) the bond vectors are minimum-imaged (the
    image shift is locally constant, so the gradients keep their form).
    """
    b = p[:, 1:] - p[:, :-1]                                    # b1, b2, b3
    if box is not None:
        b = minimum_image(b, box)
    normals = torch.linalg.cross(b[:, :2], b[:, 1:])            # n1 = b1×b2, n2 = b2×b3
    vecs = torch.cat([b, normals], dim=1)                       # (n, 5, 3)
    gram = torch.bmm(vecs, vecs.transpose(1, 2)).view(-1, 25)
    # b1·b2, b2·b2, b3·b2, n1·n1, n2·n2, n1·n2, b1·n2
    b1b2, b2b2, b3b2, n1n1, n2n2, n1n2, b1n2 = gram.index_select(
        1, torch.tensor([1, 6, 11, 18, 24, 19, 4], device=p.device)).unbind(1)
    b2_norm = b2b2.sqrt()
    phi = torch.atan2(b2_norm * b1n2, n1n2)
    c0 = -b2_norm / n1n1
    c3 = b2_norm / n2n2
    f1 = b1b2 / b2b2
    f3 = b3b2 / b2b2
    zero = torch.zeros_like(c0)
    coef = torch.stack([c0, zero, -(f1 + 1.0) * c0, f3 * c3,
                        f1 * c0, -(f3 + 1.0) * c3, zero, c3], dim=1).view(-1, 4, 2)
    return phi, torch.bmm(coef, normals)


def distance_value_and_jacobian(p: torch.Tensor, box: Optional[torch.Tensor] = None):
    """Distances and gradients from gathered atoms ``p`` of shape ``(n, 2, 3)`` (optional box (3, 3))."""
    d = p[:, 1] - p[:, 0]
    if box is not None:
        d = minimum_image(d, box)
    r = torch.linalg.norm(d, dim=-1)
    u = d / r.unsqueeze(-1)
    return r, torch.stack([-u, u], dim=1)


def angle_value_and_jacobian(p: torch.Tensor, box: Optional[torch.Tensor] = None):
    """Angles i-j-k and gradients from gathered atoms ``p`` of shape ``(n, 3, 3)`` (optional box (3, 3))."""
    u = p[:, 0] - p[:, 1]
    v = p[:, 2] - p[:, 1]
    if box is not None:
        u = minimum_image(u, box)
        v = minimum_image(v, box)
    uu = (u * u).sum(-1, keepdim=True)
    vv = (v * v).sum(-1, keepdim=True)
    uv = (u * v).sum(-1, keepdim=True)
    cross = torch.linalg.norm(torch.linalg.cross(u, v), dim=-1, keepdim=True)
    theta = torch.atan2(cross, uv)
    # dθ/du = (uv/|u|² u − v)/|u×v| ; dθ/dv = (uv/|v|² v − u)/|u×v|
    gu = (uv / uu * u - v) / cross
    gv = (uv / vv * v - u) / cross
    return theta.squeeze(-1), torch.stack([gu, -gu - gv, gv], dim=1)
