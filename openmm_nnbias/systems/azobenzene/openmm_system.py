"""Azobenzene in OpenMM on any ``--potential`` of the DiffSim run: SevenNet or an AzobenzeneMLP.

:func:`azobenzene_openmm_system` builds the OpenMM ``System`` of the torch simulator's equations:
the 24 masses of :mod:`.molecule`, one openmm-torch ``TorchForce`` with the energy, no
constraints, no ``CMMotionRemover``. For SevenNet the force is
:func:`~openmm_nnbias.systems.azobenzene.sevennet_openmm.sevennet_torch_force`; for an
:class:`~openmm_nnbias.systems.azobenzene.AzobenzeneMLP` it is :class:`MLPTorchForceModule` scripted.

Precision: openmm-torch hands the module the ``(24, 3)`` positions in nm in the platform's
precision (float64 on Reference and with double precision, float32 on CPU/CUDA/OpenCL in
single or mixed precision). :class:`MLPTorchForceModule` casts them to float64, evaluates the
(float64) MLP and returns the energy in float64 kJ/mol; the forces come back through the cast
in the positions' dtype. So the only rounding on a single-precision platform is that of the
positions themselves.

Units: nm, kJ/mol.
"""

from __future__ import annotations

import torch

__all__ = ["MLPTorchForceModule", "script_mlp", "mlp_torch_force", "azobenzene_openmm_system"]


class MLPTorchForceModule(torch.nn.Module):
    """``forward(positions (N, 3) nm) → energy () kJ/mol, float64`` around an :class:`AzobenzeneMLP`.

    Parameters
    ----------
    mlp : AzobenzeneMLP
        The model (copied to float64 and frozen: no parameter gradients).

    Raises
    ------
    TypeError
        If ``mlp`` is not an :class:`~openmm_nnbias.systems.azobenzene.AzobenzeneMLP`.

    Examples
    --------
    >>> from openmm_nnbias.systems.azobenzene import AzobenzeneMLP
    >>> m = MLPTorchForceModule(AzobenzeneMLP())
    >>> m(torch.rand(24, 3, dtype=torch.float32)).dtype
    torch.float64
    """

    def __init__(self, mlp):
        super().__init__()
        from .mlp import AzobenzeneMLP

        if not isinstance(mlp, AzobenzeneMLP):
            raise TypeError(f"mlp must be an AzobenzeneMLP, got {type(mlp).__name__}")
        import copy

        self.mlp = copy.deepcopy(mlp).to(torch.float64).eval().requires_grad_(False)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return self.mlp(positions.to(torch.float64))


def script_mlp(mlp) -> torch.jit.ScriptModule:
    """:class:`MLPTorchForceModule` of ``mlp``, scripted (what ``TorchForce`` takes).

    Parameters
    ----------
    mlp : AzobenzeneMLP

    Returns
    -------
    torch.jit.ScriptModule

    Examples
    --------
    >>> from openmm_nnbias.systems.azobenzene import AzobenzeneMLP
    >>> script_mlp(AzobenzeneMLP())(torch.rand(24, 3, dtype=torch.float64)).shape
    torch.Size([])
    """
    return torch.jit.script(MLPTorchForceModule(mlp))


def mlp_torch_force(mlp, path: str = None, force_group: int = 0):
    """An openmm-torch ``TorchForce`` with the energy of an :class:`AzobenzeneMLP` (kJ/mol, nm).

    Parameters
    ----------
    mlp : AzobenzeneMLP
    path : str, optional
        Also save the TorchScript module there.
    force_group : int, optional
        Force group (default 0).

    Returns
    -------
    openmmtorch.TorchForce

    Examples
    --------
    >>> from openmm_nnbias.systems.azobenzene import AzobenzeneMLP
    >>> mlp_torch_force(AzobenzeneMLP.pretrained()).getForceGroup()
    0
    """
    import openmmtorch  # after torch

    module = script_mlp(mlp)
    if path is not None:
        module.save(path)
    force = openmmtorch.TorchForce(module)
    force.setForceGroup(int(force_group))
    return force


def azobenzene_openmm_system(potential="gfn1-mlp"):
    """OpenMM ``System`` of azobenzene in vacuum: 24 masses, one energy ``TorchForce``, no constraints,
    no CMMotionRemover (the equations of the torch simulator).

    Parameters
    ----------
    potential : str, dict or AzobenzeneMLP, optional
        A ``--potential`` value (``"gfn1-mlp"`` default, ``"7net-0"``, ``"7net-l3i5"``, the path of an
        ``AzobenzeneMLP.save`` file), a checkpoint record of
        :func:`~openmm_nnbias.systems.azobenzene.potential.potential_spec` (``checkpoint["cli"]["potential"]``),
        or an :class:`AzobenzeneMLP` instance. SevenNet needs ``sevenn``; it is not imported otherwise.

    Returns
    -------
    openmm.System

    Raises
    ------
    TypeError, ValueError
        As :func:`~openmm_nnbias.systems.azobenzene.potential.potential_spec`.

    Examples
    --------
    >>> system = azobenzene_openmm_system("gfn1-mlp")
    >>> system.getNumParticles(), system.getNumForces(), system.getNumConstraints()
    (24, 1, 0)
    """
    import openmm

    from .molecule import AZOBENZENE_MASSES, AZOBENZENE_NUMBERS
    from .mlp import AzobenzeneMLP
    from .potential import is_sevennet, load_potential, potential_spec

    if isinstance(potential, AzobenzeneMLP):
        force = mlp_torch_force(potential)
    else:
        spec = potential_spec(potential)
        if is_sevennet(spec):
            from .sevennet_openmm import sevennet_torch_force

            force = sevennet_torch_force(AZOBENZENE_NUMBERS, spec["name"])
        else:
            force = mlp_torch_force(load_potential(spec))
    system = openmm.System()
    for m in AZOBENZENE_MASSES:
        system.addParticle(float(m))
    system.addForce(force)
    return system
