"""How the Deep-VES optimizer evaluates the bias: mixed precision and one grid pass per iteration."""

from __future__ import annotations

import copy
from typing import Sequence

import torch

__all__ = ["BiasEvaluator", "PRECISIONS"]

#: ``precision`` names of :class:`DeepVESUpdater`: the dtype of the network passes of the optimizer
PRECISIONS = {"mixed": torch.float32, "double": torch.float64}


def resolve_precision(precision) -> torch.dtype | None:
    """``"mixed"`` → float32, ``"double"`` → float64, a torch dtype → itself, None → None."""
    if precision is None or isinstance(precision, torch.dtype):
        return precision
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)} (or a torch dtype), got {precision!r}")
    return PRECISIONS[precision]


class BiasEvaluator:
    """V(s) for :class:`~openmm_nnbias.ves.DeepVESOptimizer`, in a compute dtype, grid pass reused.

    *Mixed precision.* The parameters keep their dtype (float64 by default) and Adam updates them
    there; the forward and backward passes run in ``computeDtype`` on a shadow copy of the network
    whose weights are refreshed from the parameters whenever these change, and :meth:`backward`
    hands the shadow's gradient to the parameters' ``.grad`` (in their dtype). On a CPU a float32
    pass over a 50×50 grid is ~4× faster than a float64 one; the Eq. 10 gradient is a
    10–500-sample estimate, so float32 rounding (~1e-7 relative) is far below its noise.

    *One grid pass per iteration.* The target update of iteration n evaluates the grid with the
    weights after its Adam step — the weights of the Eq. 10 loss of iteration n+1. The values are
    cached together with their autograd graph, and the next backward reuses that graph. The cache
    is keyed on the parameters' values (compared with a copy of those last seen), so any change of
    the weights (Adam, ``load_state_dict``, a rolled-back step) invalidates it; so does
    :meth:`weights_changed`, which the optimizer calls after every Adam step.
    It is never pickled.

    Parameters
    ----------
    bias : torch.nn.Module
        Maps CVs ``(B, n_cv)`` to energies ``(B,)`` (kJ/mol).
    params : sequence of torch.Tensor
        The trainable parameters (their values key the cache).
    computeDtype : torch.dtype or {"mixed", "double"}, optional
        dtype of the passes (default: the parameters' dtype, i.e. no casting); the attribute
        ``compute_dtype``.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1),
    ...                           torch.nn.Flatten(0)).double()
    >>> ev = BiasEvaluator(net, list(net.parameters()), torch.float32)
    >>> points = torch.rand(100, 2, dtype=torch.float64)
    >>> v = ev.grid(points, graph=True)   # float32 values with a graph into the float64 weights
    >>> v.dtype, ev.grid(points, graph=False) is v
    (torch.float32, True)
    >>> ev.backward(v.sum()); net[0].weight.grad.dtype
    torch.float64
    """

    def __init__(self, bias: torch.nn.Module, params: Sequence[torch.Tensor], computeDtype=None) -> None:
        self.bias = bias
        self.params = list(params)
        dtype = resolve_precision(computeDtype)
        self.compute_dtype = self.params[0].dtype if dtype is None else dtype
        if not self.compute_dtype.is_floating_point:
            raise ValueError(f"compute dtype must be floating point, got {self.compute_dtype}")
        self._cache = None  # (version, points id, values, graph still usable)
        self._shadow = self._pairs = self._shadow_key = None
        self._generation = 0
        self._seen = None  # copy of the parameters' values at the last change of _generation

    @property
    def casting(self) -> bool:
        return self.compute_dtype != self.params[0].dtype

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        """V at ``points`` ``(B, n_cv)`` → ``(B,)`` in the compute dtype (a graph if grad is enabled)."""
        from .omega import evaluate_bias

        if not self.casting:
            return evaluate_bias(self.bias, points)
        shadow = self._shadow_module()
        points = torch.as_tensor(points).to(device=self.params[0].device, dtype=self.compute_dtype)
        out = shadow(points)
        if out.numel() != points.shape[0]:
            raise ValueError(f"bias must map (B, n_cv) to (B,) energies; got output shape {tuple(out.shape)}")
        return out.reshape(-1)

    def _shadow_module(self) -> torch.nn.Module:
        """The network in the compute dtype, its weights equal (rounded) to the current parameters."""
        if self._shadow is None:
            shadow = copy.deepcopy(self.bias).to(self.compute_dtype)
            by_id = {id(p): name for name, p in self.bias.named_parameters()}
            named = dict(shadow.named_parameters())
            self._pairs = [(p, named[by_id[id(p)]]) for p in self.params]
            for _, q in self._pairs:
                q.grad = None
            self._shadow, self._shadow_key = shadow, None
        key = self._versions()
        if key != self._shadow_key:
            with torch.no_grad():
                for p, q in self._pairs:
                    q.copy_(p)
            self._shadow_key = key
        return self._shadow

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()`` and, when casting, the shadow's gradient added to the parameters' ``.grad``."""
        if not self.casting or self._pairs is None:
            loss.backward()
            return
        for _, q in self._pairs:
            q.grad = None
        loss.backward()
        for p, q in self._pairs:
            if q.grad is not None:
                g = q.grad.to(p.dtype)
                p.grad = g if p.grad is None else p.grad + g
                q.grad = None

    def _versions(self) -> int:
        """A number that changes whenever the parameters' values change (or :meth:`weights_changed` is called)."""
        seen = self._seen
        if seen is None or any(not torch.equal(p.detach(), s) for p, s in zip(self.params, seen)):
            self._seen = [p.detach().clone() for p in self.params]
            self._generation += 1
        return self._generation

    def weights_changed(self) -> None:
        """Declare the parameters changed (call after an optimizer step): cached passes are stale."""
        self._generation += 1
        self._cache = None

    def grid(self, points: torch.Tensor, graph: bool) -> torch.Tensor:
        """V on the fixed ``points`` (the target grid); cached while the weights do not change.

        ``graph=True`` returns values attached to an autograd graph (for one backward: the cached
        graph is handed out once); ``graph=False`` returns values that may carry a spent graph
        (use ``.detach()``).
        """
        key = (self._versions(), id(points))
        if self._cache is not None and self._cache[0] == key and (self._cache[2] or not graph):
            values = self._cache[1]
            if graph:
                self._cache = (key, values, False)
            return values
        if graph:
            with torch.enable_grad():
                values = self(points)
        else:
            with torch.no_grad():
                values = self(points)
        self._cache = (key, values, False)
        return values

    def prepare_grid(self, points: torch.Tensor) -> torch.Tensor:
        """Evaluate the grid with a graph kept for the next :meth:`grid` ``(graph=True)``; returns the values."""
        with torch.enable_grad():
            values = self(points)
        self._cache = ((self._versions(), id(points)), values, True)
        return values

    invalidate = weights_changed  # alias: drop every cached pass

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_cache"] = state["_shadow"] = state["_pairs"] = state["_shadow_key"] = state["_seen"] = None
        return state
