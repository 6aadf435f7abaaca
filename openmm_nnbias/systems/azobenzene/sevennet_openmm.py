"""SevenNet as an OpenMM force: a TorchScript module for openmm-torch's ``TorchForce``.

``sevenn`` ships a TorchScript deploy path for LAMMPS (``sevenn.scripts.deploy``): the model
scripted by ``e3nn.util.jit.script`` and frozen, taking a graph whose edge vectors LAMMPS
builds. openmm-torch instead calls ``forward(positions)`` with the ``(N, 3)`` positions in nm
and takes the forces from autograd of the returned energy. :class:`SevenNetTorchScript` is that
module: it builds the graph itself (all pairs within the cutoff, no periodic images, as
:class:`~openmm_nnbias.systems.azobenzene.SevenNetEnergy`) and calls the scripted SevenNet model (built as
``deploy`` builds it: e3nn's default scripted kernels, force head removed, single-graph
mode). Scripted kernels are fine here: OpenMM needs first derivatives only (the wrong
vector–Hessian products of scripted kernels matter only for the adjoint).

Precision: the module runs in the model's float32 (the weights' dtype), positions are cast to
it and the energy is returned in float64 kJ/mol.

Units: nm and kJ/mol at the interface (the model works in Å and eV).
"""

from __future__ import annotations

from typing import Dict, Sequence

import torch

__all__ = ["SevenNetTorchScript", "script_sevennet", "sevennet_torch_force", "azobenzene_openmm_system"]

from openmm_nnbias._units import EV_TO_KJ_PER_MOL  # noqa: E402


class SevenNetTorchScript(torch.nn.Module):
    """``forward(positions (N, 3) nm) → energy () kJ/mol`` around a scripted SevenNet model.

    Parameters
    ----------
    net : torch.jit.ScriptModule
        Scripted ``AtomGraphSequential`` (single graph, no force head).
    atomic_numbers : sequence of int
        ``(N,)`` atomic numbers.
    cutoff : float
        Graph cutoff in Å.
    type_indices : sequence of int
        ``(N,)`` species indices of the model (its ``type_map`` applied to the atomic numbers;
        the scripted model cannot map them itself, its mapping is ``torch.jit.ignore``-d).
    """

    def __init__(self, net, atomic_numbers: Sequence[int], cutoff: float, type_indices: Sequence[int]):
        super().__init__()
        self.net = net
        self.register_buffer("atomic_numbers", torch.tensor(list(atomic_numbers), dtype=torch.long))
        self.register_buffer("type_indices", torch.tensor(list(type_indices), dtype=torch.long))
        self.cutoff2 = float(cutoff) ** 2

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        x = 10.0 * positions.to(torch.float32)
        n = x.shape[0]
        d = x[None, :, :] - x[:, None, :]  # d[i, j] = x_j - x_i
        close = (d.detach() ** 2).sum(-1) < self.cutoff2
        close = close & ~torch.eye(n, dtype=torch.bool, device=x.device)
        idx = torch.nonzero(close)
        i, j = idx[:, 0], idx[:, 1]
        data: Dict[str, torch.Tensor] = {
            "atomic_numbers": self.atomic_numbers,
            "x": self.type_indices,
            "edge_index": torch.stack([i, j]),
            "edge_vec": d[i, j],
            "num_atoms": torch.tensor(n, dtype=torch.long, device=x.device),
            "batch": torch.zeros(n, dtype=torch.long, device=x.device),
        }
        out = self.net(data)
        return out["inferred_total_energy"].sum().to(torch.float64) * 96.48533212


def script_sevennet(atomic_numbers: Sequence[int], model: str = "7net-0") -> torch.jit.ScriptModule:
    """Build and script :class:`SevenNetTorchScript` for one molecule (needs ``sevenn``).

    Parameters
    ----------
    atomic_numbers : sequence of int
        ``(N,)`` atomic numbers in atom order.
    model : str, optional
        Pretrained SevenNet name or checkpoint (default ``"7net-0"``).

    Returns
    -------
    torch.jit.ScriptModule

    Raises
    ------
    ImportError
        Without ``sevenn``.
    TypeError
        If ``atomic_numbers`` holds non-integers or ``model`` is not a string.
    ValueError
        Empty ``atomic_numbers``, an element the model does not know, or a multi-fidelity model.
    """
    z = atomic_numbers.tolist() if isinstance(atomic_numbers, torch.Tensor) else list(atomic_numbers)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in z):
        raise TypeError("atomic_numbers must be a sequence of ints")
    if not z:
        raise ValueError("atomic_numbers must not be empty")
    if not isinstance(model, str):
        raise TypeError(f"model must be a string, got {type(model).__name__}")
    from .sevennet import _import_sevenn

    util, keys = _import_sevenn()
    import e3nn.util.jit

    cp = util.load_checkpoint(model)
    net = cp.build_model()  # e3nn's default (scripted) kernels, as sevenn.scripts.deploy
    if getattr(net, "modal_map", None):
        raise ValueError(f"model {model!r} is multi-fidelity; use a single-fidelity model such as '7net-0'")
    unknown = sorted(set(z) - set(cp.config[keys.TYPE_MAP]))
    if unknown:
        raise ValueError(f"atomic_numbers: model {model!r} does not know elements {unknown}")
    if "force_output" in dict(net.named_children()):
        net.delete_module_by_key("force_output")
    net.key_grad = None
    net.eval_type_map = False  # as sevenn.scripts.deploy: the species indices are given (node_feature)
    net.set_is_batch_data(False)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    scripted = e3nn.util.jit.script(net)
    type_map = dict(cp.config[keys.TYPE_MAP])
    return torch.jit.script(SevenNetTorchScript(scripted, z, float(cp.config[keys.CUTOFF]),
                                                [int(type_map[v]) for v in z]))


def sevennet_torch_force(atomic_numbers: Sequence[int], model: str = "7net-0", path: str = None,
                         force_group: int = 0):
    """An openmm-torch ``TorchForce`` with the SevenNet energy of the molecule (kJ/mol, nm).

    Parameters
    ----------
    atomic_numbers : sequence of int
    model : str, optional
    path : str, optional
        Also save the TorchScript module there.
    force_group : int, optional

    Returns
    -------
    openmmtorch.TorchForce
    """
    import openmmtorch  # after torch

    module = script_sevennet(atomic_numbers, model)
    if path is not None:
        module.save(path)
    force = openmmtorch.TorchForce(module)
    force.setForceGroup(int(force_group))
    return force


def azobenzene_openmm_system(model: str = "7net-0"):
    """OpenMM ``System`` of azobenzene in vacuum on SevenNet: masses, one TorchForce, no constraints,
    no CMMotionRemover (the equations of the torch simulator).

    See :func:`openmm_nnbias.systems.azobenzene.openmm_system.azobenzene_openmm_system` for the same System on
    any ``--potential`` of the DiffSim run (SevenNet or an AzobenzeneMLP)."""
    import openmm

    from .molecule import AZOBENZENE_MASSES, AZOBENZENE_NUMBERS

    system = openmm.System()
    for m in AZOBENZENE_MASSES:
        system.addParticle(float(m))
    system.addForce(sevennet_torch_force(AZOBENZENE_NUMBERS, model))
    return system
