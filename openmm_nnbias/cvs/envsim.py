"""Number of crystal-like atoms from the environment similarity of Piaggi & Parrinello (2019).

For atom i with neighbours j (minimum-image vectors ``r_ij``) and a reference environment χ of
``n`` vectors ``r_l^χ``, the similarity kernel is

    k_χ(i) = (1/n) Σ_{l=1..n} Σ_j exp(−|r_ij − r_l^χ|² / (4σ²)),

the neighbours counted with a hard step ``lcutoff < |r_ij| < max_l |r_l^χ| + cutoff·σ``. Several
reference environments (cubic diamond has two: its two sublattices) are combined by PLUMED's
soft maximum ``k(i) = (1/λ) ln Σ_χ exp(λ k_χ(i))``. The CV is PLUMED's ``MORE_THAN`` count

    N_χ = Σ_i [1 − s(k(i)/R0)],   s(x) = (1 − x^nn) / (1 − x^mm),

exactly PLUMED's ``ENVIRONMENTSIMILARITY ... MORE_THAN={RATIONAL R_0 NN MM}`` (src/envsim), with
PLUMED's defaults λ = 100, cutoff = 3σ, lcutoff = 10⁻⁴ nm. The reference vectors are fixed in the
*box frame* (x, y, z of the positions), as in PLUMED: a crystal whose cubic axes are rotated
against x, y, z is not counted (45° about z gives ≈ 0); a rotation that maps the reference set
onto itself or onto the other sublattice's (90° about a cube axis) leaves the count unchanged.

Units: nm; the CV is a (dimensionless) number of atoms.
"""

import math
import numbers
from typing import List, Optional, Sequence, Tuple

import torch

from .base import CollectiveVariable, minimum_image

__all__ = ["EnvironmentSimilarity", "diamond_references"]


def diamond_references(lattice: float) -> torch.Tensor:
    """The two cubic-diamond reference environments ``(2, 4, 3)`` (nm) of lattice constant ``lattice`` (nm).

    Environment 0: (a/4)(±1, ±1, ±1) with an even number of minus signs; environment 1: odd
    (PLUMED's order).

    Examples
    --------
    >>> diamond_references(0.4)[0].tolist()[0]
    [0.1, 0.1, 0.1]
    """
    even = [[1, 1, 1], [-1, -1, 1], [1, -1, -1], [-1, 1, -1]]
    odd = [[1, -1, 1], [-1, 1, 1], [1, 1, -1], [-1, -1, -1]]
    return torch.tensor([even, odd], dtype=torch.float64) * (float(lattice) / 4.0)


def _number(value, name: str, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or (positive and not value > 0) or (not positive and value < 0):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value}")
    return value


class EnvironmentSimilarity(CollectiveVariable):
    """Number of atoms whose environment matches a reference crystal (PLUMED's ``ENVIRONMENTSIMILARITY``).

    Parameters
    ----------
    atoms : sequence of int
        The atoms (PLUMED ``SPECIES``): each is a centre and a neighbour of the others.
    lattice : float
        Lattice constant (nm) of the default cubic-diamond references (PLUMED
        ``LATTICE_CONSTANTS``); silicon 0.5431.
    sigma : float
        Gaussian width σ (nm); the authors used 0.04.
    references : array-like, optional
        Reference environments ``(n_env, n_vectors, 3)`` (nm, box frame) instead of cubic diamond.
    lam : float
        λ of the soft maximum over the environments (PLUMED ``LAMBDA``, 100).
    cutoff : float
        Neighbour cut-off in multiples of σ beyond the longest reference vector (PLUMED ``CUTOFF``, 3).
    lcutoff : float
        Neighbours closer than this (nm) are ignored (PLUMED ``LCUTOFF``, 1e-4).
    r0 : float
        ``R_0`` of the rational switch (dimensionless, like k); 0.5.
    nn, mm : int
        Exponents of the rational switch (12, 24).
    names : str, optional
        Name of the CV (default ``"n_diamond"``).
    lower, upper : float, optional
        Declared range (default [0, number of atoms]).
    skin : float
        Verlet-list skin (nm) beyond the cut-off; 0 screens all pairs at every call.

    Notes
    -----
    ``forward(positions, box=None)`` takes ``(..., n_atoms, 3)`` and optional box ``(..., 3, 3)``
    (nm, OpenMM's reduced rows a, b, c; triclinic allowed) and returns ``(..., 1)``. With a box the
    pair vectors are minimum-imaged, so the cut-off must be below half the shortest box width
    (ValueError otherwise). :meth:`value_and_jacobian` gives analytic gradients ``(1, n_atoms, 3)``
    (1/nm). A Verlet list (cut-off + ``skin``) is kept in the module and rebuilt from all pairs when
    atoms or the box moved too far, so a call costs O(listed pairs).
    The hard step at the cut-off makes the CV jump by at most exp(−9/4)/n per neighbour crossing
    it (the force has no impulse there), as in PLUMED.

    Examples
    --------
    >>> from openmm_nnbias.systems.silicon import silicon_crystal
    >>> xtal = silicon_crystal(2)
    >>> cv = EnvironmentSimilarity(range(64), lattice=0.5431, sigma=0.04)
    >>> x, box = torch.as_tensor(xtal.positions), torch.as_tensor(xtal.box)
    >>> round(float(cv(x, box)[0]), 2)
    63.98
    """

    unit = "1"  # of its values: a number of atoms
    fusable = False  # its own group of a CVSet
    sigma: float
    lam: float
    rc: float
    lcut: float
    r0: float
    nn: int
    mm: int
    skin: float
    n_builds: int

    def __init__(self, atoms: Sequence[int], lattice: float = 0.5431, sigma: float = 0.04, references=None,
                 lam: float = 100.0, cutoff: float = 3.0, lcutoff: float = 1e-4, r0: float = 0.5,
                 nn: int = 12, mm: int = 24, names: Optional[str] = "n_diamond",
                 lower: Optional[float] = None, upper: Optional[float] = None, skin: float = 0.1):
        if isinstance(atoms, (str, bytes)) or not hasattr(atoms, "__iter__"):
            raise TypeError(f"atoms must be a sequence of atom indices, got {type(atoms).__name__}")
        atoms = [int(a) for a in atoms]
        if len(atoms) < 2:
            raise ValueError(f"atoms: need at least 2 atoms, got {len(atoms)}")
        sigma = _number(sigma, "sigma")
        lam = _number(lam, "lam")
        cutoff = _number(cutoff, "cutoff", positive=False)
        lcutoff = _number(lcutoff, "lcutoff", positive=False)
        r0 = _number(r0, "r0")
        for name, value in (("nn", nn), ("mm", mm)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if nn == mm:
            raise ValueError(f"nn and mm must differ, got nn = mm = {nn}")
        if references is None:
            refs = diamond_references(_number(lattice, "lattice"))
        else:
            refs = torch.as_tensor(references, dtype=torch.float64)
            if refs.dim() == 2:
                refs = refs.unsqueeze(0)
            if refs.dim() != 3 or refs.shape[-1] != 3 or refs.shape[1] < 1:
                raise ValueError(f"references must have shape (n_env, n_vectors, 3) in nm, got {tuple(refs.shape)}")
        self.atom_width = len(atoms)
        lower = 0.0 if lower is None else lower
        upper = float(len(atoms)) if upper is None else upper
        super().__init__([atoms], names, lower, upper, False, "EnvironmentSimilarity")
        self.register_buffer("references", refs)
        n_env, n_vec = refs.shape[0], refs.shape[1]
        self.register_buffer("ref_rows", refs.reshape(-1, 3).contiguous())  # (E·L, 3)
        # (E, E·L): row e averages the L Gaussians of environment e
        self.register_buffer("env_sum", torch.kron(torch.eye(n_env, dtype=torch.float64),
                                                   torch.full((1, n_vec), 1.0 / n_vec, dtype=torch.float64)))
        pairs = torch.triu_indices(len(atoms), len(atoms), 1)  # local indices into the gathered atoms
        self.register_buffer("pair_i", pairs[0].contiguous())
        self.register_buffer("pair_j", pairs[1].contiguous())
        # Verlet list state (rebuilt on demand by _pairs)
        self.skin = _number(skin, "skin", positive=False)
        self.n_builds = 0
        self.register_buffer("cand_i", pairs[0].contiguous())
        self.register_buffer("cand_j", pairs[1].contiguous())
        self.register_buffer("ref_x", torch.zeros(3, len(atoms), dtype=torch.float64))
        self.register_buffer("ref_box", torch.zeros(3, 3, dtype=torch.float64))
        self.register_buffer("n_image", torch.ones(3, dtype=torch.float64))
        self.sigma, self.lam, self.r0 = sigma, lam, r0
        self.rc = float(refs.norm(dim=-1).max()) + cutoff * sigma
        self.lcut = lcutoff
        self.nn, self.mm = int(nn), int(mm)

    def merged_with(self, others: Sequence[CollectiveVariable]) -> "EnvironmentSimilarity":
        """A copy of this CV (it is never fused with others)."""
        if others:
            raise ValueError("EnvironmentSimilarity: cannot be fused with other CVs")
        import copy

        return copy.deepcopy(self)

    # ------------------------------------------------------------------ kernels
    def _screen(self, xt: torch.Tensor, box: Optional[torch.Tensor], pi: torch.Tensor, pj: torch.Tensor,
                reach: float) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pairs ``(pi, pj)`` of ``xt`` ``(3, m)`` closer than ``reach`` (nm): their indices and ``x_j − x_i``
        ``(3, Q)`` under OpenMM's minimum image (c, then b, then a), in a (component, pair) layout
        (row operations on contiguous memory; reductions over a length-3 axis are slow on the CPU)."""
        d = torch.gather(xt, 1, pj.expand(3, -1)) - torch.gather(xt, 1, pi.expand(3, -1))
        if box is not None:
            for k in (2, 1, 0):
                n = torch.round(d[k] / box[k, k])
                d = d - box[k].unsqueeze(1) * n.unsqueeze(0)
        r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
        inside = torch.nonzero((r2 < reach * reach) & (r2 > self.lcut * self.lcut)).view(-1)
        return torch.gather(pi, 0, inside), torch.gather(pj, 0, inside), torch.gather(d, 1, inside.expand(3, -1))

    def _pairs(self, x: torch.Tensor, box: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(i, j, r_ij = x_j − x_i as (3, Q))`` of the ordered pairs within the cut-off; ``x`` ``(m, 3)``,
        box ``(3, 3)`` or None.

        A Verlet list (pairs within cut-off + ``skin`` of all ``m(m−1)/2``) is rebuilt when
        2·max|Δx| + Σ_k n_k |Δbox_k| reaches the skin (n_k bounds the image index of a pair:
        positions are not wrapped), so every call screens only the listed pairs.
        """
        xt = x.t().contiguous().detach()
        if box is not None and bool(torch.min(torch.diagonal(box)) <= 2.0 * self.rc):
            raise ValueError("EnvironmentSimilarity: the neighbour cut-off must be below half the "
                             "shortest box width; enlarge the box")
        rebuild = self.n_builds == 0 or self.ref_x.shape != xt.shape
        if not rebuild:
            delta = xt - self.ref_x.to(xt.dtype)
            moved = float(torch.max(delta[0] * delta[0] + delta[1] * delta[1] + delta[2] * delta[2])) ** 0.5
            strain = 0.0
            if box is not None:
                strain = float(torch.dot(self.n_image.to(xt.dtype),
                                         torch.linalg.vector_norm(box.detach() - self.ref_box.to(xt.dtype), dim=1)))
            rebuild = 2.0 * moved + strain >= self.skin
        if rebuild:
            ci, cj, _ = self._screen(xt, box, self.pair_i, self.pair_j, self.rc + self.skin)
            self.cand_i, self.cand_j = ci, cj
            self.ref_x = xt.clone()
            if box is not None:
                self.ref_box = box.detach().clone()
                span = xt.max(dim=1)[0] - xt.min(dim=1)[0]
                self.n_image = torch.ceil(span / torch.diagonal(self.ref_box)) + 1.0
            self.n_builds += 1
        i, j, r = self._screen(x.t().contiguous(), box, self.cand_i, self.cand_j, self.rc)
        return torch.cat([i, j]), torch.cat([j, i]), torch.cat([r, -r], dim=1)

    def _switch(self, k: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``1 − s(k/R0)`` and its derivative with respect to k."""
        x = k / self.r0
        near = (x - 1.0).abs() < 1e-6
        xs = torch.where(near, torch.full_like(x, 0.5), x)  # safe value where the limit is used
        xn1, xm1 = xs ** (self.nn - 1), xs ** (self.mm - 1)
        num, den = 1.0 - xn1 * xs, 1.0 - xm1 * xs
        s = num / den
        ds = (-self.nn * xn1 * den + self.mm * xm1 * num) / (den * den)
        s = torch.where(near, torch.full_like(x, self.nn / self.mm), s)
        ds = torch.where(near, torch.full_like(x, self.nn * (self.nn - self.mm) / (2.0 * self.mm)), ds)
        return 1.0 - s, -ds / self.r0

    def _kernels(self, x: torch.Tensor, box: Optional[torch.Tensor]):
        """Per-atom k ``(m,)``, weights ``(E, m)`` (softmax over environments), pairs ``i, j, r (3, Q)``
        and Gaussians ``(E·L, Q)``."""
        i, j, r = self._pairs(x, box)
        ref = self.ref_rows.to(x.dtype)  # (E·L, 3)
        d0 = r[0].unsqueeze(0) - ref[:, 0:1]
        d1 = r[1].unsqueeze(0) - ref[:, 1:2]
        d2 = r[2].unsqueeze(0) - ref[:, 2:3]
        g = torch.exp((d0 * d0 + d1 * d1 + d2 * d2) * (-0.25 / (self.sigma * self.sigma)))
        per_env = torch.mm(self.env_sum.to(x.dtype), g)  # (E, Q): (1/L) Σ_l
        k_env = torch.zeros(per_env.shape[0], x.shape[0], dtype=x.dtype, device=x.device).index_add(1, i, per_env)
        if k_env.shape[0] == 1:
            k = k_env[0]
            w = torch.ones_like(k_env)
        else:
            k = torch.logsumexp(self.lam * k_env, dim=0) / self.lam
            w = torch.softmax(self.lam * k_env, dim=0)
        return k, w, i, j, r, g

    @torch.jit.export
    def per_atom(self, positions: torch.Tensor, box: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Similarity k(i) ``(m,)`` of each CV atom in one frame ``(n_atoms, 3)`` (nm); 1 in the perfect crystal."""
        x = positions.index_select(0, self.atoms[0])
        return self._kernels(x, box)[0]

    def _value(self, x: torch.Tensor, box: Optional[torch.Tensor]) -> torch.Tensor:
        k = self._kernels(x, box)[0]
        return self._switch(k)[0].sum().unsqueeze(0)

    def forward(self, positions: torch.Tensor, box: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Count ``(..., 1)`` of positions ``(..., n_atoms, 3)`` (nm), optional box ``(..., 3, 3)`` (nm)."""
        x = positions.index_select(-2, self.atoms[0])
        if x.dim() == 2:
            return self._value(x, box)
        batch: List[int] = list(x.shape[:-2])
        flat = x.reshape(-1, x.shape[-2], 3)
        boxes: Optional[torch.Tensor] = None
        if box is not None:
            boxes = box.reshape(-1, 3, 3) if box.dim() > 2 else box.expand(flat.shape[0], 3, 3)
        out: List[torch.Tensor] = []
        for b in range(flat.shape[0]):
            out.append(self._value(flat[b], None if boxes is None else boxes[b]))
        return torch.stack(out).reshape(batch + [1])

    @torch.jit.export
    def value_and_jacobian(self, positions: torch.Tensor, box: Optional[torch.Tensor] = None):
        """Single frame ``(n_atoms, 3)`` (nm), optional box ``(3, 3)`` (nm) → count ``(1,)`` and its
        analytic gradient ``(1, m, 3)`` (1/nm) with respect to the CV atoms."""
        x = positions.index_select(0, self.atoms[0])
        k, w, i, j, r, g = self._kernels(x, box)
        value, dvalue = self._switch(k)
        # dk_i/dr_ij = Σ_e w_ei (1/L) Σ_l g_el (r_l − r_ij) / (2σ²)
        coef = (w * dvalue.unsqueeze(0)).index_select(1, i)  # (E, Q)
        weight = torch.mm(self.env_sum.t().to(x.dtype), coef) * g  # (E·L, Q), carries the 1/L
        grad_pair = (torch.mm(self.ref_rows.t().to(x.dtype), weight) - r * weight.sum(0, keepdim=True)) * (
            0.5 / (self.sigma * self.sigma))  # (3, Q)
        jac = torch.zeros(3, x.shape[0], dtype=x.dtype, device=x.device).index_add(1, j, grad_pair).index_add(1, i, grad_pair, alpha=-1.0)
        jac = jac.t().unsqueeze(0)
        return value.sum().unsqueeze(0), jac
