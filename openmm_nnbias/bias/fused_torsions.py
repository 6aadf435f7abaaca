"""A live neural bias over torsion CVs in one compiled operator: :class:`FusedLiveBiasEnergy`.

A drop-in for :class:`~openmm_nnbias.bias.modules.LiveBiasEnergy` (the same live, memory-mapped
weights, the same energy and forces) for the common Deep-VES case where every CV is a
:class:`~openmm_nnbias.cvs.Torsion` and the network is float64: the torsions and their
Jacobians, the ``(cos, sin)`` features, the MLP forward and backward pass and the chain rule to
the atom forces run in the C++ operator ``torch.ops.openmm_nnbias.bias_torsions``
(:mod:`openmm_nnbias._ext`), one pass without tensor temporaries, instead of a few dozen small
TorchScript ops. The operator reads the weights from the shared buffer at every call, so
:meth:`NeuralBiasForce.updateWeights <openmm_nnbias.bias.NeuralBiasForce.updateWeights>` keeps
working. Positions on another device than the CPU take the TorchScript route of the parent class.

:func:`live_bias_energy` picks this module where it is exactly right and the operators load, and
:class:`~openmm_nnbias.bias.modules.LiveBiasEnergy` otherwise. Units: nm, rad, kJ/mol.
"""

import logging
from typing import List, Optional

import torch

from .._ext import FusedKernelsUnavailable, load_ops
from ..cvs import Torsion
from .modules import LiveBiasEnergy, flat_layout
from .network import NeuralBias

__all__ = ["FusedLiveBiasEnergy", "fused_torsions_unsupported", "live_bias_energy"]

logger = logging.getLogger(__name__)
#: the activations the C++ operator implements (``bias_activation`` in ``_ext/bias_torsions.h``); an activation
#: added to the network later keeps the TorchScript module until the kernel has it too
FUSED_ACTIVATIONS = ("relu", "elu", "tanh", "softplus", "silu")
_WARNED = False  # whether live_bias_energy has warned that the kernels do not load


def fused_torsions_unsupported(cvs, bias: NeuralBias) -> Optional[str]:
    """Why :class:`FusedLiveBiasEnergy` cannot compute this bias, or None when it can.

    Parameters
    ----------
    cvs : CVSet
        The collective variables: all must be :class:`~openmm_nnbias.cvs.Torsion` (not a subclass).
    bias : NeuralBias
        The network: float64, with one of the activations in :data:`FUSED_ACTIVATIONS`.

    Returns
    -------
    str or None
        A one-line reason, None if the fused operator computes exactly this bias.
    """
    kinds = sorted({type(cv).__name__ for cv in cvs.sources if type(cv) is not Torsion})
    if kinds:
        return f"not every CV is a Torsion ({', '.join(kinds)})"
    dtype = bias.layers[0].weight.dtype
    if dtype != torch.float64:
        return f"the network is {dtype}, the operator float64 only"
    if bias.activation not in FUSED_ACTIVATIONS:
        return f"activation {bias.activation!r} has no fused kernel"
    if bias.features.n_linear != 0 or bias.features.n_features != 2 * cvs.n_cvs:
        return "the network's features are not (cos, sin) of every CV"
    if not cvs.identity_order:
        return "the CV set reorders its CVs"
    return None


class FusedLiveBiasEnergy(LiveBiasEnergy):
    """:class:`~openmm_nnbias.bias.modules.LiveBiasEnergy` over torsions in a compiled operator.

    Parameters
    ----------
    cvs : CVSet
        Torsion CVs only (:func:`fused_torsions_unsupported`).
    bias : NeuralBias
        float64 network over ``cvs``.
    path : str
        The shared weight buffer (:attr:`SharedWeights.path <openmm_nnbias.bias.SharedWeights.path>`).
    header : list of float
        Its header (:attr:`SharedWeights.header <openmm_nnbias.bias.SharedWeights.header>`).

    Raises
    ------
    ValueError
        If ``cvs`` or ``bias`` is outside what the operator computes (the message says why).
    openmm_nnbias._ext.FusedKernelsUnavailable
        No C++ compiler or ninja to build the kernels, or their build failed.

    Notes
    -----
    ``energy_and_forces(positions, boxvectors=None)`` returns ``(energy, forces)`` in kJ/mol and
    kJ/mol/nm for positions ``(N, 3)`` in nm; with ``boxvectors`` (nm, rows a, b, c) the bond
    vectors take the minimum image exactly as the TorchScript torsion CV does. The parent's
    computation stays available as ``torchscript_energy_and_forces``.

    Examples
    --------
    >>> from openmm_nnbias._ext import compiler_missing
    >>> from openmm_nnbias.bias import NeuralBias, SharedWeights
    >>> from openmm_nnbias.cvs import CVSet, Torsion
    >>> cvs = CVSet([Torsion([0, 1, 2, 3], "phi"), Torsion([1, 2, 3, 4], "psi")])
    >>> bias = NeuralBias.from_cvs(cvs, seed=0, zero_output=False)
    >>> weights = SharedWeights(bias.n_parameters)
    >>> weights.write_parameters(bias)
    >>> if compiler_missing() is None:
    ...     module = torch.jit.script(FusedLiveBiasEnergy(cvs, bias, weights.path, weights.header))
    ...     x = torch.randn(5, 3, dtype=torch.float64)
    ...     fused, reference = module.energy_and_forces(x), module.torchscript_energy_and_forces(x)
    ...     print(bool(torch.allclose(fused[1], reference[1], rtol=1e-10, atol=1e-12)))
    True
    """

    # TorchScript reads the annotations of the class itself: the parent's are repeated
    weights: List[torch.Tensor]
    weights_t: List[torch.Tensor]
    biases: List[torch.Tensor]
    widths: List[int]

    def __init__(self, cvs, bias: NeuralBias, path: str, header: List[float]) -> None:
        why = fused_torsions_unsupported(cvs, bias)
        if why is not None:
            raise ValueError(f"FusedLiveBiasEnergy: cvs/bias not supported by the fused operator: {why}; "
                             "use LiveBiasEnergy")
        load_ops()  # the operator must exist when the module is scripted
        super().__init__(cvs, bias, path, header)
        shapes = flat_layout(bias)
        self.widths = [int(shapes[0][1])] + [int(shapes[i][0]) for i in range(0, len(shapes), 2)]
        self.register_buffer("torsion_atoms", torch.cat([cv.atoms for cv in cvs.sources]).to(torch.long))
        self.register_buffer("torsion_scale", bias.features.scale.detach().to(torch.float64).clone())

    def __setstate__(self, state) -> None:
        load_ops()  # unpickled in another process: register the operators first
        super().__setstate__(state)

    def forward(self, positions: torch.Tensor, box_or_probe: Optional[torch.Tensor] = None,
                probe: Optional[torch.Tensor] = None):
        # as the parent's (box or the force's marker parameter told apart by shape), but on the CPU
        # without the no_grad block: the operator takes detached positions and builds no graph (~2 us less)
        boxvectors = box_or_probe if box_or_probe is not None and box_or_probe.dim() == 2 else None
        if positions.device.type == "cpu":
            energy, forces = self.energy_and_forces(positions, boxvectors)
        else:
            with torch.no_grad():
                energy, forces = self.torchscript_energy_and_forces(positions, boxvectors)
        return energy, forces

    @torch.jit.export
    def energy_and_forces(self, positions: torch.Tensor, boxvectors: Optional[torch.Tensor] = None):
        """(energy in kJ/mol, forces in kJ/mol/nm) of ``positions`` (nm) from the fused operator (CPU);
        ``boxvectors`` (nm, rows a, b, c) for periodic systems."""
        if positions.device.type != "cpu":
            return self.torchscript_energy_and_forces(positions, boxvectors)
        if self.flat.numel() == 0:
            self._map(positions.device)
        return torch.ops.openmm_nnbias.bias_torsions(positions.detach(), boxvectors, self.torsion_atoms,
                                                     self.torsion_scale, self.flat, self.widths, self.activation)


def live_bias_energy(cvs, bias: NeuralBias, path: str, header: List[float]) -> LiveBiasEnergy:
    """The live-weight energy module for ``cvs`` and ``bias``: fused where it can be, TorchScript otherwise.

    :class:`FusedLiveBiasEnergy` when :func:`fused_torsions_unsupported` finds nothing against it and
    the fused kernels load; when they cannot be built or loaded, a warning is logged (once per
    process) and :class:`~openmm_nnbias.bias.modules.LiveBiasEnergy` is returned. Parameters as for
    :class:`FusedLiveBiasEnergy`.

    Returns
    -------
    LiveBiasEnergy
        An unscripted module (script it with ``torch.jit.script``).
    """
    if fused_torsions_unsupported(cvs, bias) is None:
        try:
            return FusedLiveBiasEnergy(cvs, bias, path, header)
        except FusedKernelsUnavailable as exc:
            global _WARNED
            log = logger.debug if _WARNED else logger.warning  # one warning per process
            _WARNED = True
            log("openmm_nnbias: the torsion bias takes the TorchScript module (slower per evaluation): %s", exc)
    return LiveBiasEnergy(cvs, bias, path, header)
