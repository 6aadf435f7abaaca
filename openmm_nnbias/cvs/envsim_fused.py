"""The environment-similarity CV in one compiled operator: :class:`FusedEnvironmentSimilarity`.

A drop-in for :class:`~openmm_nnbias.cvs.EnvironmentSimilarity` (same parameters, values,
Jacobians and Verlet-list rule) whose per-call work, the pair screen under the minimum image,
the Gaussians of both directions of every pair, the soft maximum over the reference
environments, the rational switch and the Jacobian, runs in the C++ operator
``torch.ops.openmm_nnbias.envsim`` (:mod:`openmm_nnbias._ext`), one O(pairs) pass without tensor
temporaries. The Verlet list (pairs within cut-off + ``skin``) is built and checked by the
operators ``verlet_build`` and ``verlet_stale``. For cubic diamond the eight Gaussians of a pair
and its reverse come from four ``exp`` calls (the reference vectors' components are ±a/4).

Gradients through autograd (positions that require grad, e.g. in ``forward``) take the
TorchScript route of the parent class; ``value_and_jacobian`` (the bias force) and
``per_atom`` always take the operator.

The operators are compiled on first use (a C++ compiler and ninja are needed). Units: nm; the
CV is a (dimensionless) number of atoms.
"""

from typing import Optional

import torch

from openmm_nnbias._ext import load_ops

from .envsim import EnvironmentSimilarity

__all__ = ["FusedEnvironmentSimilarity"]


class FusedEnvironmentSimilarity(EnvironmentSimilarity):
    """Number of crystal-like atoms (PLUMED's ``ENVIRONMENTSIMILARITY``) in a compiled kernel.

    Parameters
    ----------
    atoms : sequence of int
        The atoms (PLUMED ``SPECIES``).
    **kwargs
        Those of :class:`~openmm_nnbias.cvs.EnvironmentSimilarity` (``lattice`` nm, ``sigma`` nm,
        ``references``, ``lam``, ``cutoff``, ``lcutoff`` nm, ``r0``, ``nn``, ``mm``, ``names``,
        ``lower``, ``upper``, ``skin`` nm), with the same defaults.

    Raises
    ------
    openmm_nnbias._ext.FusedKernelsUnavailable
        No C++ compiler or ninja to build the kernels, or their build failed.

    Notes
    -----
    Outputs are float64. The box check (cut-off below half the shortest box width) raises
    ValueError as in the parent class.

    Examples
    --------
    >>> from openmm_nnbias._ext import compiler_missing
    >>> from openmm_nnbias.systems.silicon import silicon_crystal
    >>> if compiler_missing() is None:
    ...     xtal = silicon_crystal(2)
    ...     cv = torch.jit.script(FusedEnvironmentSimilarity(range(64), lattice=0.5431, sigma=0.04))
    ...     value, jacobian = cv.value_and_jacobian(torch.as_tensor(xtal.positions), torch.as_tensor(xtal.box))
    ...     print(round(float(value[0]), 2), tuple(jacobian.shape))
    63.98 (1, 64, 3)
    """

    fused_periodic: bool

    def __init__(self, atoms, **kwargs) -> None:
        load_ops()  # the operators must exist when the module is scripted
        super().__init__(atoms, **kwargs)
        # Verlet list of the operators: (P, 5) int32 rows (i, j, image), where and in which box it was built
        self.register_buffer("fused_pairs", torch.zeros(0, 5, dtype=torch.int32))
        self.register_buffer("fused_ref_x", torch.zeros(0, 3, dtype=torch.float64))
        self.register_buffer("fused_ref_box", torch.zeros(3, 3, dtype=torch.float64))
        self.register_buffer("fused_bound", torch.ones(3, dtype=torch.float64))
        self.fused_periodic = False

    def __setstate__(self, state) -> None:
        load_ops()  # unpickled in another process (e.g. a learner process): register the operators first
        super().__setstate__(state)

    def _fused_list(self, x: torch.Tensor, box: Optional[torch.Tensor]) -> torch.Tensor:
        """The Verlet list of ``x`` ``(m, 3)`` (nm), rebuilt by the parent's rule: when
        2·max|Δx| + Σ_k n_k |Δbox_k| reaches the skin (n_k bounds a pair's image index)."""
        periodic = box is not None
        if periodic != self.fused_periodic or torch.ops.openmm_nnbias.verlet_stale(
                x, box, self.fused_ref_x, self.fused_ref_box, self.fused_bound, self.skin):
            xd = x.detach().to(torch.float64)
            self.fused_pairs = torch.ops.openmm_nnbias.verlet_build(xd, box, self.rc + self.skin)[0]
            self.fused_ref_x = xd.clone()
            if box is not None:
                b = box.detach().to(torch.float64)
                self.fused_ref_box = b.clone()
                span = xd.max(dim=0)[0] - xd.min(dim=0)[0]
                self.fused_bound = torch.ceil(span / torch.diagonal(b)) + 1.0
            self.fused_periodic = periodic
            self.n_builds += 1
        return self.fused_pairs

    def _fused(self, x: torch.Tensor, box: Optional[torch.Tensor], jacobian: bool):
        pairs = self._fused_list(x, box)
        return torch.ops.openmm_nnbias.envsim(x, box, pairs, self.references, self.sigma, self.lam, self.rc,
                                              self.lcut, self.r0, self.nn, self.mm, jacobian)

    @torch.jit.export
    def per_atom(self, positions: torch.Tensor, box: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Similarity k(i) ``(m,)`` of each CV atom in one frame ``(n_atoms, 3)`` (nm); 1 in the perfect crystal."""
        x = positions.index_select(0, self.atoms[0])
        return self._fused(x, box, False)[1]

    def _value(self, x: torch.Tensor, box: Optional[torch.Tensor]) -> torch.Tensor:
        if x.requires_grad:  # autograd through the positions: the TorchScript route
            k = self._kernels(x, box)[0]
            return self._switch(k)[0].sum().unsqueeze(0)
        return self._fused(x, box, False)[0]

    @torch.jit.export
    def value_and_jacobian(self, positions: torch.Tensor, box: Optional[torch.Tensor] = None):
        """Single frame ``(n_atoms, 3)`` (nm), optional box ``(3, 3)`` (nm) → count ``(1,)`` and its
        analytic gradient ``(1, m, 3)`` (1/nm) with respect to the CV atoms."""
        x = positions.index_select(0, self.atoms[0])
        out = self._fused(x, box, True)
        return out[0], out[2].unsqueeze(0)
