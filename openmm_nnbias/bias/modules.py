"""TorchScript energy modules (positions in nm → bias energy in kJ/mol) handed to OpenMM."""

import copy
from typing import List

import torch

from .network import NeuralBias, mlp_forward

__all__ = ["BiasEnergy", "LiveBiasEnergy", "flat_layout"]


def flat_layout(bias: NeuralBias) -> List[List[int]]:
    """Shapes of (weight, bias) of each layer, in the order of ``bias.parameters()``."""
    return [list(p.shape) for p in bias.parameters()]


class BiasEnergy(torch.nn.Module):
    """Self-contained bias: CVs of the positions, then V(s). Weights are embedded.

    This is what ``bias.pt`` files hold: load it with ``torch.jit.load`` and attach it to any
    System whose atom numbering matches the CVs (see :class:`~openmm_nnbias.bias.NeuralBiasForce`).
    Besides ``forward(positions) → energy`` it exports ``cv_values(positions)`` and
    ``bias_from_cvs(s)`` for analysis.

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

    def __init__(self, cvs, bias: NeuralBias):
        super().__init__()
        self.cvs = copy.deepcopy(cvs)
        self.bias = copy.deepcopy(bias).requires_grad_(False)
        self.cv_names: List[str] = list(cvs.names)
        self.dtype = bias.layers[0].weight.dtype

    @torch.jit.export
    def cv_values(self, positions: torch.Tensor) -> torch.Tensor:
        return self.cvs(positions.to(self.dtype))

    @torch.jit.export
    def bias_from_cvs(self, s: torch.Tensor) -> torch.Tensor:
        return self.bias(s.to(self.dtype))

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return self.bias(self.cvs(positions.to(self.dtype)))


class LiveBiasEnergy(torch.nn.Module):
    """Bias whose weights are read from a shared, memory-mapped flat buffer.

    OpenMM-torch clones and freezes the module per Context, so embedded weights can't be
    changed afterwards. This module instead maps the weight file with
    ``torch.from_file(path, shared=True)`` on its first call and keeps the mapping in a
    mutable attribute (mutated attributes survive ``torch.jit.freeze``); the Python side writes
    new weights into the same file mapping in place (:class:`~openmm_nnbias.bias.SharedWeights`),
    and the next force evaluation uses them. On CUDA the 14 kB buffer is copied to the device
    each call.

    The module is tied to the weight file of this session: export a self-contained
    :class:`BiasEnergy` (``bias.pt``) to keep or share a bias.
    """

    def __init__(self, cvs, bias: NeuralBias, path: str):
        super().__init__()
        self.cvs = copy.deepcopy(cvs)
        self.features = copy.deepcopy(bias.features)
        self.activation = bias.activation
        self.shapes = flat_layout(bias)
        self.sizes = [int(torch.Size(s).numel()) for s in self.shapes]
        self.numel = sum(self.sizes)
        self.path = path
        self.flat = torch.zeros(0, dtype=bias.layers[0].weight.dtype)
        self.dtype = bias.layers[0].weight.dtype

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        if self.flat.numel() == 0:
            self.flat = torch.from_file(self.path, True, self.numel, dtype=self.dtype)
        flat = self.flat
        if positions.device != flat.device:
            flat = flat.to(positions.device)
        weights: List[torch.Tensor] = []
        biases: List[torch.Tensor] = []
        offset = 0
        for i in range(len(self.shapes)):
            chunk = flat.narrow(0, offset, self.sizes[i]).view(self.shapes[i])
            if i % 2 == 0:
                weights.append(chunk)
            else:
                biases.append(chunk)
            offset += self.sizes[i]
        s = self.cvs(positions.to(self.dtype))
        return mlp_forward(self.features(s), weights, biases, self.activation)
