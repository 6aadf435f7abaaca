"""Stillinger-Weber energy as a TorchScript module for openmm-torch's ``TorchForce``.

The three-body sum is evaluated without enumerating triplets. For a central atom ``i`` with
neighbours ``j`` (cut-off factor ``g_ij = exp(γσ / (r_ij - aσ))``, unit vector ``u_ij``),

.. math::

    \\sum_{j<k} g_{ij} g_{ik} (u_{ij}\\cdot u_{ik} - c_0)^2
    = \\tfrac12 \\Big[ \\lVert T_i \\rVert_F^2 - 2 c_0 \\lvert V_i \\rvert^2 + c_0^2 S_i^2
      - (1 - c_0)^2 \\sum_j g_{ij}^2 \\Big],

with ``S_i = Σ_j g_ij``, ``V_i = Σ_j g_ij u_ij`` and ``T_i = Σ_j g_ij u_ij u_ijᵀ``. The right side
is algebraically identical to the triplet sum (no approximation), needs only the pair list, and
costs O(pairs) instead of O(triplets). Everything runs in float64, with pair quantities stored
as (component, pair) rows so that no reduction runs over a length-3 axis.

The module keeps a Verlet list (pairs within cut-off + ``skin``, with their periodic image in
units of box vectors, so it stays valid when the Monte Carlo barostat rescales the box). It is
rebuilt (brute force, row-chunked) once ``2 max|Δx| + Σ_k |Δbox_k|`` reaches ``skin``; every call
then keeps only the pairs inside the cut-off, so the SW terms are evaluated on those alone.
Forces are hand-written (``analytic_forces=True``, checked against autograd in the tests).

Units: nm, kJ/mol.
"""

from __future__ import annotations

from typing import List, Tuple

import torch

__all__ = ["StillingerWeberModule"]


class StillingerWeberModule(torch.nn.Module):
    """Stillinger-Weber energy (kJ/mol) and forces (kJ/mol/nm) of one species.

    Parameters
    ----------
    n_atoms : int
        Number of atoms.
    epsilon : float
        Energy scale ε (kJ/mol).
    sigma : float
        Length scale σ (nm).
    a, lam, gamma, cos0, A, B, p, q : float
        Dimensionless Stillinger-Weber parameters (cut-off ``a σ``).
    skin : float
        Verlet-list skin (nm); every box width must stay above 2 (a σ + skin).
    analytic_forces : bool
        Hand-written forces (True) or autograd forces (False, for comparison).
    """

    def __init__(self, n_atoms: int, epsilon: float, sigma: float, a: float, lam: float,
                 gamma: float, cos0: float, A: float, B: float, p: float, q: float,
                 skin: float = 0.1, analytic_forces: bool = True) -> None:
        super().__init__()
        self.n_atoms = int(n_atoms)
        self.A_eps = float(A * epsilon)
        self.B = float(B)
        self.sigma = float(sigma)
        self.p = float(p)
        self.q = float(q)
        self.cutoff = float(a * sigma)
        self.gamma_sigma = float(gamma * sigma)
        self.lam_eps = float(lam * epsilon)
        self.cos0 = float(cos0)
        self.skin = float(skin)
        self.analytic_forces = bool(analytic_forces)
        c = float(cos0)
        # rows (S, V_x, V_y, V_z, T_xx, T_yy, T_zz, T_xy, T_xz, T_yz): 2 Σ_{j<k} = Σ weight * row^2
        self.weights = torch.tensor([[c * c], [-2 * c], [-2 * c], [-2 * c], [1.0], [1.0], [1.0],
                                     [2.0], [2.0], [2.0]], dtype=torch.float64)
        # the neighbour j sees -u_ij: V rows change sign, S and T rows do not
        self.sign = torch.tensor([[1.0], [-1.0], [-1.0], [-1.0], [1.0], [1.0], [1.0], [1.0], [1.0],
                                  [1.0]], dtype=torch.float64)
        self.pair_i = torch.zeros(0, dtype=torch.long)
        self.pair_j = torch.zeros(0, dtype=torch.long)
        self.images = torch.zeros(3, 0, dtype=torch.float64)
        self.ref_positions = torch.full((3, self.n_atoms), float("inf"), dtype=torch.float64)
        self.ref_box = torch.zeros(3, 3, dtype=torch.float64)
        self.n_builds = 0

    def _build(self, xyz: torch.Tensor, box: torch.Tensor) -> None:
        """Verlet list from (3, N) positions: pairs i < j within cut-off + skin, and their image."""
        n = xyz.shape[1]
        reach2 = (self.cutoff + self.skin) ** 2
        chunk = max(1, 1048576 // max(n, 1))
        columns = torch.arange(n)
        ii: List[torch.Tensor] = []
        jj: List[torch.Tensor] = []
        images: List[torch.Tensor] = []
        for start in range(0, n, chunk):
            rows = torch.arange(start, min(n, start + chunk))
            dx = xyz[0][None, :] - xyz[0][rows][:, None]
            dy = xyz[1][None, :] - xyz[1][rows][:, None]
            dz = xyz[2][None, :] - xyz[2][rows][:, None]
            # nearest image in a reduced box: c, then b, then a (as OpenMM does)
            n2 = torch.round(dz / box[2, 2])
            dx = dx - n2 * box[2, 0]
            dy = dy - n2 * box[2, 1]
            dz = dz - n2 * box[2, 2]
            n1 = torch.round(dy / box[1, 1])
            dx = dx - n1 * box[1, 0]
            dy = dy - n1 * box[1, 1]
            n0 = torch.round(dx / box[0, 0])
            dx = dx - n0 * box[0, 0]
            close = (dx * dx + dy * dy + dz * dz < reach2) & (columns[None, :] > rows[:, None])
            idx = torch.nonzero(close)
            a = idx[:, 0]
            b = idx[:, 1]
            ii.append(rows[a])
            jj.append(b)
            images.append(-torch.stack([n0[a, b], n1[a, b], n2[a, b]]))
        self.pair_i = torch.cat(ii)
        self.pair_j = torch.cat(jj)
        self.images = torch.cat(images, dim=1)
        self.ref_positions = xyz.clone()
        self.ref_box = box.clone()
        self.n_builds += 1

    def _pairs(self, xyz: torch.Tensor, box: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(i, j, x_j - x_i as (3, P))`` of the pairs inside the cut-off."""
        # a separation changes by at most 2 max|dx| + Σ_k |Δbox_k| (images are 0 or ±1)
        delta = xyz.detach() - self.ref_positions
        moved = torch.sqrt(torch.max(torch.sum(delta * delta, dim=0)))
        strain = torch.sum(torch.linalg.vector_norm(box - self.ref_box, dim=1))
        if bool(2.0 * moved + strain >= self.skin):
            self._build(xyz.detach(), box)
        d = xyz[:, self.pair_j] - xyz[:, self.pair_i] + box.t() @ self.images
        inside = torch.nonzero(torch.sum(d * d, dim=0) < self.cutoff * self.cutoff)[:, 0]
        return self.pair_i[inside], self.pair_j[inside], d[:, inside]

    def _energy_forces(self, n: int, pair_i: torch.Tensor, pair_j: torch.Tensor,
                       d: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        r = torch.sqrt(torch.sum(d * d, dim=0))
        inv_r = 1.0 / r
        ux = d[0] * inv_r
        uy = d[1] * inv_r
        uz = d[2] * inv_r
        # exp(x / min(r - rc, -tiny)) is exactly 0 at and past the cut-off and never overflows
        gap = torch.clamp(r - self.cutoff, max=-1e-12)
        e = torch.exp(self.sigma / gap)
        g = torch.exp(self.gamma_sigma / gap)
        sr = self.sigma * inv_r
        rep = self.B * sr ** self.p
        att = sr ** self.q if self.q != 0.0 else torch.ones_like(r)
        basis = torch.stack([torch.ones_like(r), ux, uy, uz, ux * ux, uy * uy, uz * uz,
                             ux * uy, ux * uz, uy * uz])
        feat = g * basis
        both = torch.cat([pair_i, pair_j])
        per_atom = torch.zeros(10, n, dtype=torch.float64).index_add(
            1, both, torch.cat([feat, feat * self.sign], dim=1))
        diag = self.lam_eps * (1.0 - self.cos0) ** 2
        energy = (self.A_eps * torch.sum((rep - att) * e) - diag * torch.sum(g * g)
                  + 0.5 * self.lam_eps * torch.sum(self.weights * per_atom * per_atom))
        if not self.analytic_forces:
            return energy, torch.zeros(3, n, dtype=torch.float64)
        # dE/d(per-atom rows), combined per pair as the pair's features enter both atoms
        grad_rows = self.lam_eps * self.weights * per_atom
        comb = grad_rows[:, pair_i] + self.sign * grad_rows[:, pair_j]
        f_u = torch.sum(comb * basis, dim=0)
        b = comb[1:4]
        t = comb[4:]
        gx = b[0] + 2.0 * t[0] * ux + t[3] * uy + t[4] * uz
        gy = b[1] + t[3] * ux + 2.0 * t[1] * uy + t[5] * uz
        gz = b[2] + t[4] * ux + t[5] * uy + 2.0 * t[2] * uz
        proj = gx * ux + gy * uy + gz * uz
        inv_gap2 = 1.0 / (gap * gap)
        dg = -self.gamma_sigma * g * inv_gap2
        de = -self.sigma * e * inv_gap2
        drep = -self.p * rep * inv_r
        datt = -self.q * att * inv_r
        radial = (self.A_eps * ((drep - datt) * e + (rep - att) * de) - 2.0 * diag * g * dg
                  + dg * f_u - g * inv_r * proj)
        tangential = g * inv_r
        de_dd = torch.stack([radial * ux + tangential * gx, radial * uy + tangential * gy,
                             radial * uz + tangential * gz])
        forces = torch.zeros(3, n, dtype=torch.float64).index_add(
            1, both, torch.cat([de_dd, -de_dd], dim=1))
        return energy, forces

    def forward(self, positions: torch.Tensor, boxvectors: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(energy, forces)`` in kJ/mol and kJ/mol/nm of ``positions`` (N, 3) in the periodic
        box ``boxvectors`` (3, 3, rows), both in nm (``TorchForce.setOutputsForces(True)``)."""
        box = boxvectors.to(torch.float64)
        xyz = positions.to(torch.float64).detach().t().contiguous()
        n = xyz.shape[1]
        if self.analytic_forces:
            pair_i, pair_j, d = self._pairs(xyz, box)
            energy, forces = self._energy_forces(n, pair_i, pair_j, d)
            return energy, forces.t().contiguous()
        xyz.requires_grad_(True)
        pair_i, pair_j, d = self._pairs(xyz, box)
        energy = self._energy_forces(n, pair_i, pair_j, d)[0]
        grad = torch.autograd.grad([energy], [xyz])[0]
        assert grad is not None
        return energy.detach(), -grad.t().contiguous()
