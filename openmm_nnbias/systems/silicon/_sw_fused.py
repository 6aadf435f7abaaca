"""Stillinger-Weber energy and forces through one compiled operator (the ``"fused"`` route).

:class:`FusedStillingerWeberModule` computes what
:class:`~openmm_nnbias.systems._sw_torch.StillingerWeberModule` computes (the same exact
per-atom form of the three-body sum, hand-written forces, float64) in C++ operators of
:mod:`openmm_nnbias._ext`: ``verlet_stale`` decides whether the Verlet list (pairs within
cut-off + ``skin`` with their periodic image, valid under Monte Carlo box rescaling) must be
rebuilt, ``verlet_build`` rebuilds it (brute force over all pairs), and ``sw_energy_forces``
returns energy and forces in one O(pairs) pass, without tensor temporaries. The TorchScript
wrapper around them is a handful of operations, so a call costs about the C++ work itself.

The operators are compiled on first use (a C++ compiler and ninja are needed, see
:mod:`openmm_nnbias._ext`). A saved module (``TorchForce`` serializes it) loads in another
process only after ``openmm_nnbias._ext.load_ops()`` has run there.

Units: nm, kJ/mol.
"""

from __future__ import annotations

import torch

from openmm_nnbias._ext import load_ops

__all__ = ["FusedStillingerWeberModule", "fused_stillinger_weber_module"]


class FusedStillingerWeberModule(torch.nn.Module):
    """Stillinger-Weber energy (kJ/mol) and forces (kJ/mol/nm) of one species, in compiled kernels.

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

    Raises
    ------
    openmm_nnbias._ext.FusedKernelsUnavailable
        No C++ compiler or ninja to build the kernels, or their build failed.

    Examples
    --------
    >>> from openmm_nnbias._ext import compiler_missing
    >>> from openmm_nnbias.systems.silicon import SW_SILICON as p, silicon_crystal
    >>> if compiler_missing() is None:
    ...     xtal = silicon_crystal(3)
    ...     sw = torch.jit.script(FusedStillingerWeberModule(216, p.epsilon_kj, p.sigma, p.a, p.lam, p.gamma,
    ...                                                      p.cos0, p.A, p.B, p.p, p.q))
    ...     energy, forces = sw(torch.tensor(xtal.positions), torch.tensor(xtal.box))
    ...     print(round(float(energy) / 216 / 96.48533212, 4))
    -4.3366
    """

    def __init__(self, n_atoms: int, epsilon: float, sigma: float, a: float, lam: float, gamma: float,
                 cos0: float, A: float, B: float, p: float, q: float, skin: float = 0.15) -> None:
        super().__init__()
        load_ops()  # the operators must exist when the module is scripted
        self.n_atoms = int(n_atoms)
        self.cutoff = float(a * sigma)
        self.A_eps = float(A * epsilon)
        self.B = float(B)
        self.sigma = float(sigma)
        self.p = float(p)
        self.q = float(q)
        self.gamma_sigma = float(gamma * sigma)
        self.lam_eps = float(lam * epsilon)
        self.cos0 = float(cos0)
        self.skin = float(skin)
        # Verlet list: (P, 5) int32 rows (i, j, image), where and in which box it was built
        self.pairs = torch.zeros(0, 5, dtype=torch.int32)
        self.image_bound = torch.zeros(3, dtype=torch.float64)
        self.ref_positions = torch.zeros(0, 3, dtype=torch.float64)
        self.ref_box = torch.zeros(3, 3, dtype=torch.float64)
        self.n_builds = 0

    def forward(self, positions: torch.Tensor, boxvectors: torch.Tensor):
        """``(energy, forces)`` in kJ/mol and kJ/mol/nm of ``positions`` (N, 3) in the periodic
        box ``boxvectors`` (3, 3, rows), both in nm (``TorchForce.setOutputsForces(True)``)."""
        if torch.ops.openmm_nnbias.verlet_stale(positions, boxvectors, self.ref_positions, self.ref_box,
                                                 self.image_bound, self.skin):
            x = positions.detach().to(torch.float64)
            box = boxvectors.detach().to(torch.float64)
            built = torch.ops.openmm_nnbias.verlet_build(x, box, self.cutoff + self.skin)
            self.pairs = built[0]
            self.image_bound = built[1]
            self.ref_positions = x.clone()
            self.ref_box = box.clone()
            self.n_builds += 1
        return torch.ops.openmm_nnbias.sw_energy_forces(
            positions, boxvectors, self.pairs, self.cutoff, self.A_eps, self.B, self.sigma, self.p, self.q,
            self.gamma_sigma, self.lam_eps, self.cos0)


def fused_stillinger_weber_module(n_atoms: int, parameters, skin: float = 0.15) -> torch.jit.ScriptModule:
    """Scripted :class:`FusedStillingerWeberModule` (kJ/mol, nm).

    Parameters
    ----------
    n_atoms : int
        Number of atoms.
    parameters : StillingerWeberParameters
        SW parameters (ε in eV, converted by its ``epsilon_kj``), e.g.
        :data:`openmm_nnbias.systems.silicon.SW_SILICON`.
    skin : float
        Verlet-list skin (nm).

    Returns
    -------
    torch.jit.ScriptModule
        ``module(positions, boxvectors) -> (energy, forces)`` (kJ/mol, kJ/mol/nm).
    """
    p = parameters
    module = FusedStillingerWeberModule(n_atoms, p.epsilon_kj, p.sigma, p.a, p.lam, p.gamma, p.cos0,
                                        p.A, p.B, p.p, p.q, skin=skin)
    return torch.jit.script(module)
