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
rebuilt (brute force, row-chunked) once ``2 max|Δx| + Σ_k max|n_k| |Δbox_k|`` (n: the stored
images) reaches ``skin``; every call
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
                 skin: float = 0.15, analytic_forces: bool = True) -> None:
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
        # per-atom rows (S, V_x, V_y, V_z, T_xx, T_xy, ..., T_zz): E3 = λε/2 Σ w row^2 - diag Σ g^2,
        # so dE3/d(row) = λε w row ("grad_weights")
        w = [c * c, -2 * c, -2 * c, -2 * c] + [1.0] * 9
        self.grad_weights = torch.tensor([[lam * epsilon * x] for x in w], dtype=torch.float64)
        self.diag = float(lam * epsilon * (1.0 - c) ** 2)
        self.two_diag = 2.0 * self.diag
        self.B_sigma_p = float(B * sigma ** p)
        self.sigma_q = float(sigma ** q)
        # the neighbour j sees -u_ij: V rows change sign, S and T rows do not
        self.sign = torch.tensor([[1.0]] + [[-1.0]] * 3 + [[1.0]] * 9, dtype=torch.float64)
        # exp(sigma / gap) and exp(gamma sigma / gap) in one call
        self.exp_scale = torch.tensor([[sigma], [gamma * sigma]], dtype=torch.float64)
        self.pair_i = torch.zeros(0, dtype=torch.long)
        self.pair_j = torch.zeros(0, dtype=torch.long)
        self.images = torch.zeros(3, 0, dtype=torch.float64)
        self.max_image = torch.zeros(3, dtype=torch.float64)
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
        if self.images.shape[1] > 0:
            self.max_image = torch.max(torch.abs(self.images), dim=1)[0]
        else:
            self.max_image = torch.zeros(3, dtype=torch.float64)
        self.ref_positions = xyz.clone()
        self.ref_box = box.clone()
        self.n_builds += 1

    def _pairs(self, xyz: torch.Tensor, box: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(i, j, x_j - x_i as (3, P))`` of the pairs inside the cut-off."""
        # a separation x_j - x_i + n·box changes by at most 2 max|Δx| + Σ_k max|n_k| |Δbox_k|
        # (positions are not wrapped, so |n_k| can exceed 1)
        delta = xyz.detach() - self.ref_positions
        moved = float(torch.max(torch.sum(delta * delta, dim=0))) ** 0.5
        strain = float(torch.dot(self.max_image, torch.linalg.vector_norm(box - self.ref_box, dim=1)))
        if 2.0 * moved + strain >= self.skin:
            self._build(xyz.detach(), box)
        # torch.gather with an expanded index is the fastest column gather on CPU
        d = (torch.gather(xyz, 1, self.pair_j.expand(3, -1)) - torch.gather(xyz, 1, self.pair_i.expand(3, -1))
             + box.t() @ self.images)
        inside = torch.nonzero(torch.sum(d * d, dim=0) < self.cutoff * self.cutoff).view(-1)
        return (torch.gather(self.pair_i, 0, inside), torch.gather(self.pair_j, 0, inside),
                torch.gather(d, 1, inside.expand(3, -1)))

    def _energy_forces(self, n: int, pair_i: torch.Tensor, pair_j: torch.Tensor,
                       d: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Energy and (3, N) forces from the in-cut-off pairs ``(i, j, x_j - x_i)``."""
        r = torch.sqrt(torch.sum(d * d, dim=0))
        inv_r = 1.0 / r
        u = d * inv_r
        # exp(k / min(r - rc, -tiny)) is exactly 0 at and past the cut-off and never overflows
        inv_gap = 1.0 / torch.clamp(r - self.cutoff, max=-1e-12)
        eg = torch.exp(self.exp_scale * inv_gap)
        ae = self.A_eps * eg[0]
        g = eg[1]
        rep = self.B_sigma_p * inv_r ** self.p
        radial_pair = rep - self.sigma_q * inv_r ** self.q if self.q != 0.0 else rep - 1.0
        # per-pair rows (1, u, u u^T): the pair adds g * rows to atom i and g * sign * rows to j
        basis = torch.cat([torch.ones_like(d[:1]), u, (u[:, None, :] * u[None, :, :]).view(9, -1)])
        feat = g * basis
        both = torch.cat([pair_i, pair_j])
        per_atom = torch.zeros(13, n, dtype=torch.float64).index_add(
            1, both, torch.cat([feat, feat * self.sign], dim=1))
        grad_rows = self.grad_weights * per_atom
        energy = (torch.dot(radial_pair, ae) - self.diag * torch.dot(g, g)
                  + 0.5 * torch.dot(grad_rows.view(-1), per_atom.view(-1)))
        if not self.analytic_forces:
            return energy, torch.zeros(3, n, dtype=torch.float64)
        # dE/d(pair rows): the same pair's rows enter atom i and (with sign) atom j
        comb = (torch.gather(grad_rows, 1, pair_i.expand(13, -1))
                + self.sign * torch.gather(grad_rows, 1, pair_j.expand(13, -1)))
        f_u = torch.sum(comb * basis, dim=0)
        grad_u = comb[1:4] + 2.0 * torch.sum(comb[4:].view(3, 3, -1) * u[None, :, :], dim=1)
        g_r = g * inv_r
        dgap = inv_gap * inv_gap
        # d(pair energy)/dr, then the tangential part from the unit vectors
        d_rep = self.p * rep if self.q == 0.0 else self.p * rep - self.q * (rep - radial_pair)
        radial = (self.gamma_sigma * dgap * g * (self.two_diag * g - f_u)
                  - ae * (d_rep * inv_r + self.sigma * dgap * radial_pair)
                  - g_r * torch.sum(grad_u * u, dim=0))
        de_dd = radial * u + g_r * grad_u
        forces = torch.zeros(3, n, dtype=torch.float64).index_add(1, both, torch.cat([de_dd, -de_dd], dim=1))
        return energy, forces

    def forward(self, positions: torch.Tensor, boxvectors: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(energy, forces)`` in kJ/mol and kJ/mol/nm of ``positions`` (N, 3) in the periodic
        box ``boxvectors`` (3, 3, rows), both in nm (``TorchForce.setOutputsForces(True)``)."""
        if self.analytic_forces:
            # openmm-torch hands in positions that require grad; without no_grad the TorchScript
            # executor runs this graph about 1.3x slower
            with torch.no_grad():
                box = boxvectors.to(torch.float64)
                xyz = positions.to(torch.float64).t().contiguous()
                pair_i, pair_j, d = self._pairs(xyz, box)
                energy, forces = self._energy_forces(xyz.shape[1], pair_i, pair_j, d)
                forces = forces.t().contiguous()
            return energy, forces
        box = boxvectors.to(torch.float64).detach()
        xyz = positions.to(torch.float64).detach().t().contiguous()
        n = xyz.shape[1]
        xyz.requires_grad_(True)
        pair_i, pair_j, d = self._pairs(xyz, box)
        energy = self._energy_forces(n, pair_i, pair_j, d)[0]
        grad = torch.autograd.grad([energy], [xyz])[0]
        assert grad is not None
        return energy.detach(), -grad.t().contiguous()
