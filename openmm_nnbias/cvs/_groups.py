"""Shared pieces of the group CVs (radius of gyration, RMSD, contacts, centroids, paths).

A *group CV* acts on one ordered list of atoms (the union of its groups, one row of its
``atoms`` table per output CV) and indexes into that row only through local index buffers, so
remapping ``atoms`` (as the Deep-VES updater does for the atoms it records) is all a copy of it
needs. Group CVs are never fused with others in a :class:`~openmm_nnbias.cvs.CVSet`.

Periodic boxes: :func:`make_whole` unwraps a group atom by atom, each atom moved to the minimum
image of its difference to the *previous* atom of the group (OpenMM's minimum image, see
:func:`~openmm_nnbias.cvs.base.minimum_image`). The group comes out whole when consecutive
atoms of the group (in the order given) lie closer than half the shortest box width in the
whole molecule: atoms of a protein in topology order, or its Cα atoms, qualify. The image
shifts are locally constant, so gradients with respect to the unwrapped positions are the
gradients with respect to the positions the Context holds.
"""

import copy
import math
import numbers
from typing import List, Optional, Sequence, Tuple

import torch

from .base import CollectiveVariable, minimum_image

__all__ = ["GroupCV", "make_whole", "atom_list", "reference_rows", "weight_list", "number", "integer",
           "rational_switch", "superpose"]


def make_whole(x: torch.Tensor, box: Optional[torch.Tensor]) -> torch.Tensor:
    """Unwrap the group ``x`` ``(..., m, 3)`` (nm): atom k at the minimum image of atom k-1 (no box: ``x``)."""
    if box is None or x.shape[-2] < 2:
        return x
    steps = minimum_image(x.narrow(-2, 1, x.shape[-2] - 1) - x.narrow(-2, 0, x.shape[-2] - 1), box)
    first = x.narrow(-2, 0, 1)
    return torch.cat([first, first + torch.cumsum(steps, dim=-2)], dim=-2)


def atom_list(atoms, name: str, minimum: int = 1) -> List[int]:
    """Validated list of distinct, non-negative atom indices (TypeError / ValueError naming ``name``)."""
    if isinstance(atoms, torch.Tensor):
        atoms = atoms.tolist()
    if isinstance(atoms, (str, bytes)) or not hasattr(atoms, "__iter__"):
        raise TypeError(f"{name} must be a sequence of atom indices, got {type(atoms).__name__}")
    atoms = list(atoms)
    for a in atoms:
        if isinstance(a, bool) or not isinstance(a, numbers.Integral):
            raise TypeError(f"{name} must hold integer atom indices, got {a!r}")
    atoms = [int(a) for a in atoms]
    if len(atoms) < minimum:
        raise ValueError(f"{name}: need at least {minimum} atoms, got {len(atoms)}")
    if min(atoms) < 0:
        raise ValueError(f"{name}: negative atom index in {atoms}")
    if len(set(atoms)) != len(atoms):
        raise ValueError(f"{name}: repeated atom index in {atoms}")
    return atoms


def _nanometers(positions, name: str) -> torch.Tensor:
    try:
        from openmm import unit

        if unit.is_quantity(positions):
            positions = positions.value_in_unit(unit.nanometer)
    except ImportError:  # pragma: no cover - openmm is a dependency
        pass
    try:
        rows = [[float(getattr(c, "_value", c)) for c in row] for row in positions]
        out = torch.tensor(rows, dtype=torch.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be positions (n, 3) in nm or an openmm Quantity, got {type(positions).__name__}") from err
    if out.dim() != 2 or out.shape[1] != 3 or not bool(torch.isfinite(out).all()):
        raise ValueError(f"{name} must be finite positions of shape (n, 3) in nm, got shape {tuple(out.shape)}")
    return out


def reference_rows(positions, atoms: Sequence[int], name: str) -> torch.Tensor:
    """Reference positions of ``atoms`` ``(m, 3)`` (nm) from ``positions``.

    ``positions`` has one row per atom of ``atoms`` (in that order) when it has exactly
    ``len(atoms)`` rows, else it holds the whole system and is indexed by ``atoms``.
    """
    ref = _nanometers(positions, name)
    if ref.shape[0] == len(atoms):
        return ref
    if ref.shape[0] <= max(atoms):
        raise ValueError(f"{name}: {ref.shape[0]} rows, need one per CV atom ({len(atoms)}) or the whole "
                         f"system (more than {max(atoms)})")
    return ref[torch.tensor(atoms, dtype=torch.long)]


def weight_list(weights, n: int, name: str) -> torch.Tensor:
    """``n`` positive weights (e.g. masses; an openmm Quantity list is read in daltons)."""
    if isinstance(weights, (str, bytes)) or not hasattr(weights, "__iter__"):
        raise TypeError(f"{name} must be a sequence of numbers, got {type(weights).__name__}")
    values = []
    for w in weights:
        if hasattr(w, "value_in_unit"):
            from openmm import unit

            w = w.value_in_unit(unit.dalton)
        if isinstance(w, bool) or not isinstance(w, numbers.Real):
            raise TypeError(f"{name} must hold numbers, got {w!r}")
        values.append(float(w))
    if len(values) != n:
        raise ValueError(f"{name}: {len(values)} weights for {n} atoms")
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"{name} must be finite and > 0, got {values}")
    return torch.tensor(values, dtype=torch.float64)


def number(value, name: str, positive: bool = True) -> float:
    """A finite float (``> 0`` when ``positive``); TypeError / ValueError naming ``name``."""
    if hasattr(value, "value_in_unit"):
        from openmm import unit

        value = value.value_in_unit(unit.nanometer)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or (positive and not value > 0):
        raise ValueError(f"{name} must be a finite number{' > 0' if positive else ''}, got {value}")
    return value


def integer(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def rational_switch(x: torch.Tensor, nn: int, mm: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """PLUMED's rational switch ``s(x) = (1 - x^nn) / (1 - x^mm)`` and ``ds/dx``.

    Within 1e-6 of ``x = 1`` the first-order expansion around the limit is used
    (``s(1) = nn/mm``, ``s'(1) = nn (nn - mm) / (2 mm)``), error O(1e-12).
    """
    near = (x - 1.0).abs() < 1e-6
    xs = torch.where(near, torch.full_like(x, 0.5), x)  # a safe value where the expansion is used
    xn1 = xs ** (nn - 1)
    xm1 = xs ** (mm - 1)
    num = 1.0 - xn1 * xs
    den = 1.0 - xm1 * xs
    s = num / den
    ds = (-nn * xn1 * den + mm * xm1 * num) / (den * den)
    slope = nn * (nn - mm) / (2.0 * mm)
    s = torch.where(near, nn / mm + slope * (x - 1.0), s)
    ds = torch.where(near, torch.full_like(x, slope), ds)
    return s, ds


def _rotation(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` of unit quaternions ``q`` ``(..., 4)`` (w, x, y, z)."""
    w, a, b, c = q.unbind(-1)
    rows = [w * w + a * a - b * b - c * c, 2.0 * (a * b - w * c), 2.0 * (a * c + w * b),
            2.0 * (a * b + w * c), w * w - a * a + b * b - c * c, 2.0 * (b * c - w * a),
            2.0 * (a * c - w * b), 2.0 * (b * c + w * a), w * w - a * a - b * b + c * c]
    return torch.stack(rows, dim=-1).reshape(q.shape[:-1] + (3, 3))


def superpose(x: torch.Tensor, refs: torch.Tensor, align: bool) -> torch.Tensor:
    """Residuals ``x_c - R y_c`` ``(..., F, m, 3)`` of positions ``x`` ``(..., m, 3)`` after the optimal
    superposition of each centred reference ``refs`` ``(F, m, 3)`` (nm).

    ``x_c`` is ``x`` minus its centroid. With ``align`` R is the rotation that minimizes the
    mean-square deviation, from the eigenvector of the largest eigenvalue of Horn's 4×4 quaternion
    matrix (Horn, J. Opt. Soc. Am. A 1987; Coutsias, Seok & Dill, J. Comput. Chem. 2004);
    otherwise R = 1 (centroids superposed only).

    The mean-square deviation is ``mean_k |r_k|^2`` and its gradient ``2 r_k / m`` (the rotation is
    optimal, so its own derivative drops out): exact also where the lower eigenvalues are
    degenerate (planar or symmetric structures, ``x`` equal to a reference). For autograd (second
    derivatives), R carries the first-order perturbation of the top eigenvector through the
    detached eigenvectors, ``dq = Σ_j v_j v_jᵀ dN q / (λ - λ_j)``, renormalized; its value is unchanged.
    """
    xc = x - x.mean(dim=-2, keepdim=True)
    xc = xc.unsqueeze(-3)  # (..., 1, m, 3)
    if not align:
        return xc - refs
    s = torch.matmul(refs.transpose(-1, -2), xc)  # (..., F, 3, 3): S_ab = Σ_k y_ka x_kb
    sxx, sxy, sxz = s[..., 0, 0], s[..., 0, 1], s[..., 0, 2]
    syx, syy, syz = s[..., 1, 0], s[..., 1, 1], s[..., 1, 2]
    szx, szy, szz = s[..., 2, 0], s[..., 2, 1], s[..., 2, 2]
    n = torch.stack([sxx + syy + szz, syz - szy, szx - sxz, sxy - syx,
                     syz - szy, sxx - syy - szz, sxy + syx, szx + sxz,
                     szx - sxz, sxy + syx, syy - sxx - szz, syz + szy,
                     sxy - syx, szx + sxz, syz + szy, szz - sxx - syy], dim=-1)
    n = n.reshape(n.shape[:-1] + (4, 4))
    nd = n.detach()
    evals, evecs = torch.linalg.eigh(nd)
    q = evecs[..., 3]  # largest eigenvalue
    if n.requires_grad:
        gap = evals[..., 3:4] - evals[..., :3]  # (..., F, 3)
        scale = evals.abs().amax(dim=-1, keepdim=True).clamp_min(1e-300)
        gap = gap.clamp_min(1e-12 * scale)
        others = evecs[..., :3]  # (..., F, 4, 3)
        dn_q = torch.matmul(n - nd, q.unsqueeze(-1))  # zero value, carries dN q
        coef = torch.matmul(others.transpose(-1, -2), dn_q).squeeze(-1) / gap
        q = q + torch.matmul(others, coef.unsqueeze(-1)).squeeze(-1)
        q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)  # second order of |q| = 1
    rot = _rotation(q)
    return xc - torch.matmul(refs, rot.transpose(-1, -2))


class GroupCV(CollectiveVariable):
    """Base of the CVs over a list of atoms: one ``atoms`` row per output CV, never fused."""

    fusable = False  # its own group of a CVSet

    def __init__(self, atoms: Sequence[int], n_outputs: int, names, lower: float, upper: float, kind: str):
        self.atom_width = len(atoms)
        super().__init__([list(atoms)] * n_outputs, names, lower, upper, False, kind)

    def merged_with(self, others: Sequence[CollectiveVariable]) -> "GroupCV":
        """A copy of this CV (group CVs are never fused with others)."""
        if others:
            raise ValueError(f"{type(self).__name__}: cannot be fused with other CVs")
        return copy.deepcopy(self)

    def _local(self, positions: torch.Tensor) -> torch.Tensor:
        return positions.index_select(-2, self.atoms[0])
