"""TorchScript energy modules (positions in nm → bias energy in kJ/mol) handed to OpenMM."""

import copy
from typing import List, Optional

import torch

from .network import NeuralBias, mlp_value_and_grad

__all__ = ["BiasEnergy", "CVBiasEnergy", "LiveBiasEnergy", "flat_layout"]


def flat_layout(bias: NeuralBias) -> List[List[int]]:
    """Shapes of (weight, bias) of each layer, in the order of ``bias.parameters()``."""
    return [list(p.shape) for p in bias.parameters()]


def _float_dtype(module: torch.nn.Module) -> torch.dtype:
    """dtype of the first floating-point parameter or buffer of ``module`` (float64 if none)."""
    for t in list(module.parameters()) + list(module.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.float64


class BiasEnergy(torch.nn.Module):
    """Self-contained bias: CVs of the positions, then V(s). Weights are embedded.

    This is what ``bias.pt`` files hold: load it with ``torch.jit.load`` and attach it to any
    System whose atom numbering matches the CVs (see :class:`~openmm_nnbias.bias.NeuralBiasForce`).
    Besides ``forward(positions, boxvectors=None) → energy`` it exports
    ``cv_values(positions, boxvectors=None)`` and ``bias_from_cvs(s)`` for analysis. Positions
    are in nm; ``boxvectors`` (rows a, b, c in nm, ``(3, 3)``) is what openmm-torch passes as
    second argument when the ``TorchForce`` uses periodic boundary conditions, and makes the CVs
    use the minimum image (see :func:`~openmm_nnbias.bias.load_bias`).

    Examples
    --------
    >>> import torch
    >>> from openmm_nnbias.cvs import CVSet, Torsion
    >>> from openmm_nnbias.bias import NeuralBias
    >>> cvs = CVSet([Torsion([0, 1, 2, 3], "phi")])
    >>> energy = torch.jit.script(BiasEnergy(cvs, NeuralBias.from_cvs(cvs)))
    >>> float(energy(torch.randn(4, 3, dtype=torch.float64)))
    0.0
    """

    def __init__(self, cvs, bias: torch.nn.Module):
        super().__init__()
        self.cvs = copy.deepcopy(cvs)
        self.bias = copy.deepcopy(bias).requires_grad_(False)
        self.cv_names: List[str] = list(cvs.names)
        self.dtype = _float_dtype(bias)

    @torch.jit.export
    def cv_values(self, positions: torch.Tensor, boxvectors: Optional[torch.Tensor] = None) -> torch.Tensor:
        """CV values of positions (nm), optionally in the periodic box ``boxvectors`` (nm)."""
        if boxvectors is not None:
            boxvectors = boxvectors.to(self.dtype)
        return self.cvs(positions.to(self.dtype), boxvectors)

    @torch.jit.export
    def bias_from_cvs(self, s: torch.Tensor) -> torch.Tensor:
        return self.bias(s.to(self.dtype))

    def forward(self, positions: torch.Tensor, boxvectors: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Bias energy (kJ/mol) of positions (nm), optionally in the periodic box ``boxvectors`` (nm)."""
        if boxvectors is not None:
            boxvectors = boxvectors.to(self.dtype)
        return self.bias(self.cvs(positions.to(self.dtype), boxvectors))


class CVBiasEnergy(torch.nn.Module):
    """V(s) of CV values alone: what ``bias.pt`` holds for Force CVs (OpenMM computes those CVs).

    ``forward(s)`` and ``bias_from_cvs(s)`` map CVs ``(..., n_cvs)`` (their units) to kJ/mol;
    ``cv_names`` and ``takes_cvs = True`` tell it from a positions module (:class:`BiasEnergy`).

    Examples
    --------
    >>> import openmm as mm, torch
    >>> from openmm_nnbias.cvs import CVSet, ForceCV
    >>> from openmm_nnbias.bias import NeuralBias
    >>> cvs = CVSet([ForceCV(mm.CustomBondForce("r"), 0.0, 2.0, name="d")])
    >>> energy = torch.jit.script(CVBiasEnergy(cvs, NeuralBias.from_cvs(cvs)))
    >>> float(energy(torch.tensor([[0.5]], dtype=torch.float64))[0]), energy.cv_names
    (0.0, ['d'])
    """

    takes_cvs: bool

    def __init__(self, cvs, bias: torch.nn.Module):
        super().__init__()
        self.bias = copy.deepcopy(bias).requires_grad_(False)
        self.cv_names: List[str] = list(cvs.names)
        self.takes_cvs = True
        self.dtype = _float_dtype(bias)

    @torch.jit.export
    def bias_from_cvs(self, s: torch.Tensor) -> torch.Tensor:
        return self.bias(s.to(self.dtype))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        """Bias energy (kJ/mol) of CV values ``s`` ``(..., n_cvs)``."""
        return self.bias(s.to(self.dtype))


class LiveBiasEnergy(torch.nn.Module):
    """Bias whose weights are read from a shared, memory-mapped flat buffer.

    OpenMM-torch clones and freezes the module per Context, so embedded weights can't be
    changed afterwards. This module instead maps the weight buffer of
    :class:`~openmm_nnbias.bias.SharedWeights` read-only (``torch.from_file(path, shared=False)``,
    never creating a file) on its first call and keeps the mapping in a mutable attribute (mutated
    attributes survive ``torch.jit.freeze``); the Python side writes new weights into the buffer
    in place, and the next force evaluation uses them. On CUDA the 14 kB buffer is copied to the
    device each call.

    The buffer exists only in the process that made it (``path`` is ``/proc/self/fd/<n>`` of an
    unlinked file) and starts with a header that this module checks: a copy of the force in
    another process — a System written with ``XmlSerializer`` and loaded elsewhere, while the
    writer runs or after it ended — fails at its first evaluation instead of sharing or losing
    the weights (``unable to open file </proc/self/fd/<n>>``, or the message below when that fd
    is another file there). Export a self-contained :class:`BiasEnergy` (``bias.pt``,
    ``NeuralBiasForce.exportBias`` and ``load_bias``) to keep or share a bias.

    It returns ``(energy, forces)`` (the TorchForce must ``setOutputsForces(True)``): CV
    Jacobians are analytic and the MLP is back-propagated by hand, so one evaluation is a few
    dozen tensor ops with no autograd graph. When the TorchForce uses periodic boundary
    conditions openmm-torch passes the box vectors ``(3, 3)`` (nm) as second argument and the
    CVs use the minimum image; without them (``None``) nothing periodic is computed.

    """

    weights: List[torch.Tensor]
    weights_t: List[torch.Tensor]
    biases: List[torch.Tensor]

    def __init__(self, cvs, bias: NeuralBias, path: str, header: List[float]):
        super().__init__()
        self.cvs = copy.deepcopy(cvs)
        self.features = copy.deepcopy(bias.features)
        self.activation = bias.activation
        self.shapes = flat_layout(bias)
        self.sizes = [int(torch.Size(s).numel()) for s in self.shapes]
        self.numel = sum(self.sizes)
        self.path = path
        self.header = torch.tensor(header, dtype=bias.layers[0].weight.dtype)  # identifies the buffer
        self.dtype = bias.layers[0].weight.dtype
        self.all_periodic = self.features.n_linear == 0
        # run-time state (mutated attributes survive torch.jit.freeze):
        self.flat = torch.zeros(0, dtype=self.dtype)         # the shared mapping (CPU)
        self.device_flat = torch.zeros(0, dtype=self.dtype)  # its device copy (CUDA only)
        self.weights: List[torch.Tensor] = []                # views into flat / device_flat
        self.biases: List[torch.Tensor] = []
        self.weights_t: List[torch.Tensor] = []

    def _map(self, device: torch.device):
        n_head = self.header.numel()
        mapped = torch.from_file(self.path, False, n_head + self.numel, dtype=self.dtype)
        if not bool(torch.equal(mapped.narrow(0, 0, n_head), self.header)):
            raise RuntimeError("openmm_nnbias: this TorchForce's live weights exist only in the Python process that "
                               "created its NeuralBiasForce; in another process (e.g. a System loaded with "
                               "XmlSerializer) use a static bias: NeuralBiasForce.exportBias('bias.pt') there, "
                               "openmm_nnbias.bias.load_bias('bias.pt') here")
        self.flat = mapped.narrow(0, n_head, self.numel)
        source = self.flat
        if device != source.device:
            self.device_flat = source.to(device)
            source = self.device_flat
        weights: List[torch.Tensor] = []
        biases: List[torch.Tensor] = []
        offset = 0
        for i in range(len(self.shapes)):
            chunk = source.narrow(0, offset, self.sizes[i]).view(self.shapes[i])
            if i % 2 == 0:
                weights.append(chunk)
            else:
                biases.append(chunk)
            offset += self.sizes[i]
        self.weights = weights
        self.weights_t = [w.t() for w in weights]
        self.biases = biases

    def forward(self, positions: torch.Tensor, box_or_probe: Optional[torch.Tensor] = None,
                probe: Optional[torch.Tensor] = None):
        # openmm-torch hands over positions with requires_grad=True even when the module returns
        # forces; without this guard TorchScript plans for autograd and runs ~1.5-2x slower.
        # openmm-torch passes the box (3 x 3) only with periodic boundary conditions, then the force's
        # marker global parameter (0-d, see ForceBackend.probe, unused): tell them apart by shape.
        boxvectors = box_or_probe if box_or_probe is not None and box_or_probe.dim() == 2 else None
        with torch.no_grad():
            energy, forces = self.energy_and_forces(positions, boxvectors)
        return energy, forces

    @torch.jit.export
    def energy_and_forces(self, positions: torch.Tensor, boxvectors: Optional[torch.Tensor] = None):
        """(energy in kJ/mol, forces in kJ/mol/nm) of ``positions`` (nm), without autograd;
        ``boxvectors`` (nm, rows a, b, c) for periodic systems."""
        return self.torchscript_energy_and_forces(positions, boxvectors)

    @torch.jit.export
    def torchscript_energy_and_forces(self, positions: torch.Tensor, boxvectors: Optional[torch.Tensor] = None):
        """:meth:`energy_and_forces` in TorchScript tensor ops (the reference that compiled subclasses,
        e.g. :class:`~openmm_nnbias.bias.fused_torsions.FusedLiveBiasEnergy`, equal and fall back to)."""
        if self.flat.numel() == 0:
            self._map(positions.device)
        elif self.device_flat.numel() > 0:
            self.device_flat.copy_(self.flat, non_blocking=True)
        x = positions.detach()
        if x.dtype != self.dtype:
            x = x.to(self.dtype)
        box = boxvectors
        if box is not None and box.dtype != self.dtype:
            box = box.to(self.dtype)
        s, jacobians = self.cvs.value_and_jacobians(x, box)
        if self.all_periodic:  # features (cos, sin) computed once, reused for dV/ds
            z = s * self.features.scale
            c = torch.cos(z)
            sn = torch.sin(z)
            energy, gf = mlp_value_and_grad(torch.cat([c, sn]), self.weights, self.biases, self.activation,
                                             self.weights_t)
            n = c.shape[0]
            dvds = (c * gf[n:] - sn * gf[:n]) * self.features.scale
        else:
            energy, gf = mlp_value_and_grad(self.features(s), self.weights, self.biases, self.activation,
                                             self.weights_t)
            dvds = self.features.vjp(s, gf)
        forces = self.cvs.apply_forces(dvds, jacobians, torch.zeros_like(x))
        if forces.dtype != positions.dtype:
            forces = forces.to(positions.dtype)
        return energy, forces
