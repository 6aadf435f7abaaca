"""Neural-network potential energy for the differentiable simulator: SevenNet-0 in vacuum.

:class:`SevenNetEnergy` wraps the pretrained SevenNet-0 model (Park et al. 2024, an
E(3)-equivariant NequIP-type graph network trained on the Materials Project trajectories,
PBE/PBE+U; weights inside the ``sevenn`` wheel) with the calling convention of
:mod:`openmm_nnbias.diffsim.potentials`: positions ``(..., N, 3)`` in nm → energies ``(...)`` in kJ/mol, batched
over replicas of one molecule and differentiable to second order, so that
:class:`~openmm_nnbias.diffsim.LangevinSimulator` gets its forces and
:func:`~openmm_nnbias.diffsim.partial_adjoint` its vector–Hessian products
(``torch.func.vjp`` of :func:`~openmm_nnbias.diffsim.make_force_fn`).

Graph
-----
Every call builds, in torch, the graph of all replicas at once: the directed pairs
``(i, j)`` of one replica closer than the model's cutoff (5 Å), with edge vectors
``x_j − x_i`` taken from the positions (so the graph is differentiable through them;
the pair *selection* is not, and needs not be: SevenNet's polynomial cutoff envelope takes
an edge's contribution and its derivatives smoothly to zero at the cutoff). There are no
periodic images (vacuum, no cell). The model's own force head is removed: forces and
Hessian products come from autograd of the energy.

TorchScript: the model is built with e3nn's kernels in eager mode (``jit_script_fx=False``,
``jit_mode="eager"``; e3nn's defaults are restored afterwards). With the default scripted
kernels, ``torch.func.vjp`` of the forces (the adjoint's vector–Hessian product) is right
on the first call and wrong by ~20 % once TorchScript's profiling executor has specialized
the kernels on ordinary autograd calls (seen with torch 2.9.1, e3nn 0.6.0).

Precision: the float32 weights are cast to the requested dtype (float64 by default); the
model's one-hot species embedding, hard-wired to float32 in ``sevenn``, is cast as well.

Install: ``pip install 'openmm_nnbias[sevenn]'`` (``sevenn`` is an optional extra,
imported only when a :class:`SevenNetEnergy` is built).

Units: nm, kJ/mol at the interface; the model works in Å and eV, with
1 eV = :data:`EV_TO_KJ_PER_MOL` = 96.48533212 kJ/mol.
"""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["EV_TO_KJ_PER_MOL", "SevenNetEnergy", "load_sevennet"]

from openmm_nnbias._units import EV_TO_KJ_PER_MOL  # noqa: E402  (kJ/mol per eV, one value for the package)

_MISSING = ("SevenNetEnergy needs the optional package 'sevenn' (SevenNet-0 weights ship in its wheel): "
            "pip install 'openmm_nnbias[sevenn]'")


class GraphKeys:
    """Keys of SevenNet's graph dictionary and checkpoint config, as its models read and write them.

    They are the data format of ``sevenn`` 0.13 (its ``AtomGraphData`` fields); the tests compare
    energies and forces built with them against ``sevenn.calculator.SevenNetCalculator``, which
    builds its graphs with its own code.
    """

    ATOMIC_NUMBERS = "atomic_numbers"
    EDGE_IDX = "edge_index"
    EDGE_VEC = "edge_vec"
    BATCH = "batch"
    NUM_ATOMS = "num_atoms"
    PRED_TOTAL_ENERGY = "inferred_total_energy"
    CUTOFF = "cutoff"
    TYPE_MAP = "_type_map"


def _import_sevenn():
    try:
        from sevenn import util
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(_MISSING) from exc
    return util, GraphKeys


class _CastOnehot(torch.nn.Module):
    """Runs sevenn's one-hot embedding and casts its float32 output to the edge vectors' dtype."""

    def __init__(self, inner: torch.nn.Module, edge_key: str):
        super().__init__()
        self.inner = inner
        self.edge_key = edge_key
        self.keys = [k for k in (inner.key_output, getattr(inner, "key_additional_output", None)) if k is not None]

    def forward(self, data: dict) -> dict:
        data = self.inner(data)
        dtype = data[self.edge_key].dtype
        for k in self.keys:
            data[k] = data[k].to(dtype)
        return data


def load_sevennet(model: str = "7net-0"):
    """Load a bundled SevenNet checkpoint as an energy-only, batched torch model.

    Parameters
    ----------
    model : str, optional
        A pretrained name ``sevenn`` knows (``"7net-0"``, default; ``"7net-l3i5"``) or a
        checkpoint path. Single-fidelity models only.

    Returns
    -------
    net : torch.nn.Module
        ``sevenn``'s ``AtomGraphSequential`` in eval mode, batched, without its force head;
        parameters frozen (``requires_grad=False``).
    cutoff : float
        Cutoff radius in Å.
    type_map : dict
        Atomic number → species index of the model.

    Raises
    ------
    ImportError
        If ``sevenn`` is not installed.
    TypeError
        If ``model`` is not a string.
    ValueError
        If the model is multi-fidelity (needs a modality).
    """
    if not isinstance(model, str):
        raise TypeError(f"model must be a string (pretrained name or checkpoint path), got {type(model).__name__}")
    util, keys = _import_sevenn()
    import e3nn

    cp = util.load_checkpoint(model)
    saved = dict(e3nn.get_optimization_defaults())
    # TorchScript-compiled e3nn kernels give wrong vector-Hessian products under torch.func once the
    # profiling executor has specialized them (the first call is right, later ones are not): build eager.
    e3nn.set_optimization_defaults(jit_script_fx=False, jit_mode="eager")
    try:
        net = cp.build_model()
    finally:
        e3nn.set_optimization_defaults(**saved)
    if getattr(net, "modal_map", None):
        raise ValueError(f"model {model!r} is multi-fidelity (modalities {list(net.modal_map)}); "
                         "use a single-fidelity model such as '7net-0'")
    net.set_is_batch_data(True)
    net.key_grad = None  # sevenn would call requires_grad_ on the edge vectors (breaks torch.func)
    net.delete_module_by_key("force_output")
    net.replace_module("onehot_idx_to_onehot", _CastOnehot(net.get_submodule("onehot_idx_to_onehot"), keys.EDGE_VEC))
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net, float(cp.config[keys.CUTOFF]), dict(cp.config[keys.TYPE_MAP])


class SevenNetEnergy(torch.nn.Module):
    """SevenNet energy of replicas of one molecule in vacuum, in torch.

    ``forward(positions)`` maps ``(..., N, 3)`` nm → ``(...)`` kJ/mol in the dtype of the
    module (float64 by default; call ``.to(device, dtype)`` to move or cast it; positions
    are cast to it and the result back to the positions' dtype). Differentiable twice
    through the positions (forces, vector–Hessian products, ``torch.func`` transforms).

    Parameters
    ----------
    atomic_numbers : sequence of int
        ``(N,)`` atomic numbers of the molecule, in atom order.
    model : str, optional
        Pretrained SevenNet name or checkpoint (default ``"7net-0"``, SevenNet-0 of
        11 July 2024, bundled in the ``sevenn`` wheel).
    dtype : torch.dtype, optional
        float64 (default) or float32.

    Attributes
    ----------
    n_particles : int
    cutoff : float
        Graph cutoff in nm (0.5 for SevenNet-0).
    model_name : str

    Raises
    ------
    ImportError
        If ``sevenn`` is not installed (``pip install 'openmm_nnbias[sevenn]'``).
    TypeError
        If ``atomic_numbers`` holds non-integers or ``dtype`` is not a torch dtype.
    ValueError
        If ``atomic_numbers`` is empty or has an element the model does not know, or
        ``dtype`` is not a floating dtype.

    Examples
    --------
    >>> U = SevenNetEnergy([1, 1])  # doctest: +SKIP
    >>> x = torch.tensor([[[0.0, 0.0, 0.0], [0.075, 0.0, 0.0]]], dtype=torch.float64)
    >>> U(x).shape, U.cutoff  # doctest: +SKIP
    (torch.Size([1]), 0.5)
    """

    def __init__(self, atomic_numbers: Sequence[int], model: str = "7net-0", dtype: torch.dtype = torch.float64):
        super().__init__()
        z = list(atomic_numbers) if not isinstance(atomic_numbers, torch.Tensor) else atomic_numbers.tolist()
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in z):
            raise TypeError("atomic_numbers must be a sequence of ints")
        if not z:
            raise ValueError("atomic_numbers must not be empty")
        if not isinstance(dtype, torch.dtype):
            raise TypeError(f"dtype must be a torch.dtype, got {type(dtype).__name__}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        net, cutoff, type_map = load_sevennet(model)
        unknown = sorted(set(z) - set(type_map))
        if unknown:
            raise ValueError(f"atomic_numbers: model {model!r} does not know elements {unknown}")
        _, self._keys = _import_sevenn()
        self.net = net.to(dtype)
        self.model_name = model
        self.n_particles = len(z)
        self.cutoff = cutoff / 10.0
        self._cutoff_angstrom = cutoff
        self.register_buffer("atomic_numbers", torch.tensor(z, dtype=torch.long))

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the model's weights."""
        return next(self.net.parameters()).dtype

    def _graph(self, x: torch.Tensor) -> dict:
        """SevenNet input for ``(B, N, 3)`` positions in Å: all pairs within the cutoff."""
        keys = self._keys
        B, N, _ = x.shape
        d = x[:, None, :, :] - x[:, :, None, :]  # d[b, i, j] = x_j - x_i
        with torch.no_grad():
            close = (d.detach() ** 2).sum(-1) < self._cutoff_angstrom ** 2
            close &= ~torch.eye(N, dtype=torch.bool, device=x.device)
            b, i, j = torch.nonzero(close, as_tuple=True)
        offset = b * N
        return {keys.ATOMIC_NUMBERS: self.atomic_numbers.repeat(B),
                keys.EDGE_IDX: torch.stack([i + offset, j + offset]),
                keys.EDGE_VEC: d[b, i, j],
                keys.BATCH: torch.arange(B, device=x.device).repeat_interleave(N),
                keys.NUM_ATOMS: torch.full((B,), N, dtype=torch.long, device=x.device)}

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        if not isinstance(positions, torch.Tensor):
            raise TypeError(f"positions must be a torch.Tensor, got {type(positions).__name__}")
        if positions.ndim < 2 or positions.shape[-1] != 3 or positions.shape[-2] != self.n_particles:
            raise ValueError(f"expected positions of shape (..., {self.n_particles}, 3) in nm, "
                             f"got {tuple(positions.shape)}")
        batch_shape = positions.shape[:-2]
        x = (10.0 * positions.to(self.dtype)).reshape(-1, self.n_particles, 3)
        if x.shape[0] == 0:
            return positions.new_zeros(batch_shape)
        out = self.net(self._graph(x))
        energy = out[self._keys.PRED_TOTAL_ENERGY] * EV_TO_KJ_PER_MOL
        return energy.reshape(batch_shape).to(positions.dtype)
