"""Your own CV model: a TorchScript model applied to other CVs or to atom positions.

A :class:`ModelCV` gathers the atoms it needs into a local subset first, evaluates its
*descriptors* on that subset (ordinary CVs re-indexed into it, or the flattened Cartesian
positions), and applies the user's TorchScript model to them. Its ``(n, k)`` atom table holds
the global indices of the gathered atoms (one identical row per model output), so remapping
that table alone (as the Deep-VES updater does for the atoms it records) is enough.
"""

import copy
import io
import numbers
import os
from typing import Optional, List, Sequence, Tuple, Union

import torch

from .base import CollectiveVariable
from .cvset import CVSet

__all__ = ["ModelCV", "FlatPositions"]


class FlatPositions(torch.nn.Module):
    """Descriptors of a positions model: ``(..., m, 3)`` nm → ``(..., 3 m)`` (x0, y0, z0, x1, ...)."""

    def forward(self, positions: torch.Tensor, box: Optional[torch.Tensor] = None) -> torch.Tensor:
        return positions.flatten(-2)  # the coordinates as the Context stores them: the box plays no part


def _serialized(model: torch.jit.ScriptModule) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(model, buffer)
    return buffer.getvalue()


def _load_model(model, device: str = "cpu") -> torch.jit.ScriptModule:
    """A private, evaluation-mode copy of ``model`` with gradients off for its parameters."""
    if isinstance(model, (str, os.PathLike)):
        if not os.path.exists(model):
            raise ValueError(f"model: no TorchScript file at {os.fspath(model)!r}")
        model = torch.jit.load(os.fspath(model), map_location=device)
    elif isinstance(model, io.BytesIO):
        model = torch.jit.load(model, map_location=device)
    elif isinstance(model, torch.nn.Module):
        if not isinstance(model, torch.jit.ScriptModule):
            try:
                model = torch.jit.script(model)
            except Exception as err:
                raise TypeError(f"model: {type(model).__name__} cannot be compiled with torch.jit.script ({err}); "
                                "export it first (torch.jit.trace, or mlcolvar's model.to_torchscript)") from None
        # a private copy through its file (copy.deepcopy of a ScriptModule gives non-leaf weights)
        model = torch.jit.load(io.BytesIO(_serialized(model)), map_location=device)
    else:
        raise TypeError(f"model must be a TorchScript module or the path of a TorchScript file, "
                        f"got {type(model).__name__}")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _model_dtype(model: torch.nn.Module) -> torch.dtype:
    """Dtype of the model's first floating-point parameter or buffer (float64 if it has none)."""
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.float64


def _descriptors(inputs):
    """(descriptor module on the gathered atoms, gathered global atom indices, descriptor count)."""
    if isinstance(inputs, CollectiveVariable):
        inputs = CVSet([inputs])
    if isinstance(inputs, CVSet):
        nested = [cv.names for cv in inputs.sources if isinstance(cv, ModelCV)]
        if nested:
            raise ValueError(f"inputs: a ModelCV cannot take other ModelCVs ({nested}) as inputs")
        atoms = sorted({a for cv in inputs.sources for a in cv.atoms.reshape(-1).tolist()})
        lookup = {a: i for i, a in enumerate(atoms)}
        local = []
        for cv in inputs.sources:
            cv = copy.deepcopy(cv)
            cv.atoms = torch.tensor([[lookup[a] for a in row] for row in cv.atoms.tolist()], dtype=torch.long)
            local.append(cv)
        return CVSet(local), atoms, inputs.n_cvs
    if isinstance(inputs, torch.Tensor):
        inputs = inputs.tolist()
    if isinstance(inputs, Sequence) and not isinstance(inputs, str) and inputs and all(
            isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in inputs):
        atoms = [int(a) for a in inputs]
        if min(atoms) < 0 or len(set(atoms)) != len(atoms):
            raise ValueError(f"inputs: atom indices must be distinct and non-negative, got {atoms}")
        return FlatPositions(), atoms, 3 * len(atoms)
    raise TypeError("inputs must be a CVSet (or one CollectiveVariable) of descriptor CVs, or a non-empty "
                    f"list of atom indices, got {type(inputs).__name__}")


def _output_count(model: torch.nn.Module, n_in: int, dtype: torch.dtype) -> int:
    try:
        with torch.no_grad():
            y = model(torch.zeros(1, n_in, dtype=dtype))
    except Exception as err:
        raise ValueError(f"model: calling it on a (1, {n_in}) {dtype} batch of descriptors failed: {err}") from None
    if not isinstance(y, torch.Tensor) or not (y.shape == (1,) or (y.dim() == 2 and y.shape[0] == 1)):
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"model: a (1, {n_in}) batch of descriptors must give a (1, n_outputs) tensor, got {shape}")
    return 1 if y.dim() == 1 else int(y.shape[1])


def _set_model_first(cv: torch.nn.Module, model: torch.nn.Module) -> None:
    """Register ``model`` as ``cv.model``, the first child (the order of ``children()`` as built)."""
    others = list(cv.named_children())
    for name, _ in others:
        delattr(cv, name)
    cv.model = model
    for name, child in others:
        setattr(cv, name, child)


class ModelCV(CollectiveVariable):
    """CV(s) computed by your own TorchScript model, e.g. one learned with ``mlcolvar``.

    The model takes a batch of descriptors ``(B, n_in)`` and returns ``(B, n_outputs)`` (or
    ``(B,)`` for one output); each output is one CV. Descriptors are either the values of
    ordinary CVs (``inputs`` a :class:`CVSet`: the model sees them in the set's order) or the
    flattened Cartesian positions in nm of the given atoms (``inputs`` a list of indices:
    ``x0, y0, z0, x1, ...``). Jacobians come from autograd through the model and the
    descriptors, also inside TorchScript, so the CV works with the ``torch`` bias backend only
    (the ``table`` and ``cmap`` backends need OpenMM expressions and refuse it).

    Parameters
    ----------
    model : torch.jit.ScriptModule, torch.nn.Module or path
        The model, or the path of a TorchScript file (``torch.jit.save``, mlcolvar's
        ``model.to_torchscript(path, method="trace")``). A plain module is compiled with
        ``torch.jit.script``. The CV keeps its own evaluation-mode copy with gradients off for
        the model's weights. Inputs are cast to the dtype of the model's weights and the
        outputs back to the dtype of the positions.
    inputs : CVSet, CollectiveVariable or sequence of int
        Descriptor CVs (not other ModelCVs), or atom indices (0-based) whose positions the
        model takes.
    lower, upper : float
        Declared range of every output (model units). For a periodic CV the period
        ``upper - lower`` (the model must return values wrapped into it); otherwise the range the
        bias's features are scaled over (a sample outside it is an error when learning).
    names : str or list of str, optional
        One name per output (default ``"modelcv"``, or ``"modelcv0"``, ... for several).
    periodic : bool, optional
        Whether the outputs are periodic (default False).
    unit : str, optional
        Unit of the outputs, for file headers (``colvar``'s ``#! SET units_<name>``) and plot
        axes, e.g. ``"nm"`` or ``"rad"`` (default ``"1"``: dimensionless, as most learned CVs).

    Notes
    -----
    ``atoms`` is ``(n_outputs, m)``: the ``m`` gathered atoms (sorted; for a positions model in
    the given order), the same row for every output, and ``value_and_jacobian`` gives
    ``(n_outputs, m, 3)`` gradients. The descriptor CVs index into the gathered subset, so a
    remapped ``atoms`` table (the Deep-VES updater's recorded atoms) needs nothing else.

    Examples
    --------
    >>> import torch
    >>> from openmm_nnbias.cvs import CVSet, Distance, ModelCV
    >>> pair = CVSet([Distance([0, 1], 0.0, 2.0, "d01"), Distance([1, 2], 0.0, 2.0, "d12")])
    >>> model = torch.jit.script(torch.nn.Linear(2, 1, bias=False))  # s = w · (d01, d12)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.tensor([[1.0, -1.0]]))
    >>> cv = ModelCV(model, pair, lower=-2.0, upper=2.0, names="asym")
    >>> x = torch.tensor([[0., 0, 0], [0.3, 0, 0], [0.3, 0.5, 0]], dtype=torch.float64)
    >>> round(float(cv(x)[0]), 6)        # 0.3 - 0.5 nm
    -0.2
    >>> CVSet([cv]).names, cv.atoms.tolist()
    (['asym'], [[0, 1, 2]])
    >>> CVSet([ModelCV(model, pair, lower=-2.0, upper=2.0, names="asym", unit="nm")]).units
    ['nm']
    """

    fusable = False  # every model CV is its own group of a CVSet
    n_inputs: int
    n_outputs: int

    def __init__(self, model, inputs, lower: float, upper: float,
                 names: Union[str, Sequence[str], None] = None, periodic: bool = False, unit: str = "1"):
        if not isinstance(periodic, bool):
            raise TypeError(f"periodic must be a bool, got {type(periodic).__name__}")
        if not isinstance(unit, str) or not unit.strip() or any(c.isspace() for c in unit):
            raise TypeError(f"unit must be a str without spaces (e.g. 'nm', 'rad', '1'), got {unit!r}")
        for arg, value in (("lower", lower), ("upper", upper)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"{arg} must be a float, got {type(value).__name__}")
        model = _load_model(model)
        descriptors, atoms, n_in = _descriptors(inputs)
        dtype = _model_dtype(model)
        n_out = _output_count(model, n_in, dtype)
        self.atom_width = len(atoms)
        try:
            super().__init__([atoms] * n_out, names, lower, upper, periodic, "ModelCV")
        except ValueError as err:
            raise ValueError(f"ModelCV: {err} (the model has {n_out} outputs)") from None
        self.model = model
        self.descriptors = descriptors
        self.model_dtype = dtype
        self.n_inputs = n_in
        self.n_outputs = n_out
        self.unit = unit  # of its values, for file headers and plot axes

    def __getstate__(self) -> dict:
        """Pickle (and deepcopy) support: the TorchScript model travels as its serialized bytes.

        Needed where CVs are pickled, e.g. for the Deep-VES learner process.
        """
        model = self.model
        # a copy of the instance's dicts without the model entry (the CV itself is not changed: other
        # threads may be using it); __setstate__ registers the model again
        state = {key: {k: v for k, v in value.items() if v is not model} if isinstance(value, dict) else value
                 for key, value in vars(self).items()}
        params = list(model.parameters())
        state["_model_file"] = _serialized(model)
        state["_model_device"] = str(params[0].device) if params else "cpu"
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        model = _load_model(io.BytesIO(state.pop("_model_file")), state.pop("_model_device"))
        super().__setstate__(state)
        _set_model_first(self, model)

    def merged_with(self, others: Sequence[CollectiveVariable]) -> "ModelCV":
        """A copy of this CV (model CVs are never fused with others)."""
        if others:
            raise ValueError("ModelCV: a model CV cannot be fused with other CVs")
        return copy.deepcopy(self)

    def _outputs(self, local: torch.Tensor, box: Optional[torch.Tensor]) -> torch.Tensor:
        """Model outputs ``(..., n_outputs)`` of the gathered atoms' positions ``(..., m, 3)`` (box: nm or None)."""
        d = self.descriptors(local, box)  # the one place where the descriptors are evaluated
        batch: List[int] = list(d.shape[:-1])
        y = self.model(d.reshape(-1, self.n_inputs).to(self.model_dtype))
        if y.dim() == 1:
            y = y.unsqueeze(-1)
        return y.to(local.dtype).reshape(batch + [self.n_outputs])

    def forward(self, positions: torch.Tensor, box: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self._outputs(positions.index_select(-2, self.atoms[0]), box)

    @torch.jit.export
    def value_and_jacobian(self, positions: torch.Tensor,
                           box: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Single frame ``(n_atoms, 3)`` → values ``(n_outputs,)`` and gradients ``(n_outputs, m, 3)``.

        Autograd runs even when called under ``torch.no_grad()`` (as the bias force does).
        """
        if torch.jit.is_scripting():
            return self._value_and_jacobian(positions, box)
        return self._eager_value_and_jacobian(positions, box)

    @torch.jit.unused
    def _eager_value_and_jacobian(self, positions: torch.Tensor,
                                  box: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():  # restores the grad mode also when the model raises
            return self._value_and_jacobian(positions, box)

    def _value_and_jacobian(self, positions: torch.Tensor,
                            box: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        enabled = torch.is_grad_enabled()
        torch.set_grad_enabled(True)  # TorchScript has no enable_grad() context
        local = positions.index_select(0, self.atoms[0]).detach().requires_grad_(True)
        y = self._outputs(local, box)
        rows: List[torch.Tensor] = []
        for i in range(self.n_outputs):
            grad = torch.autograd.grad([y[i]], [local], retain_graph=i + 1 < self.n_outputs)[0]
            assert grad is not None
            rows.append(grad)
        torch.set_grad_enabled(enabled)
        return y.detach(), torch.stack(rows)
