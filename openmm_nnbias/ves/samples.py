"""One Deep-VES iteration's samples: positions of the CV atoms → checked CVs and the bias in force.

:class:`SampleEvaluator` turns the positions recorded during an iteration into the CV samples of
Eq. 10, checks them (NaN, declared ranges) and, when ``colvar`` or reweighting needs it, evaluates
V(s) of the bias that was *in force* while they were drawn, with that bias's c(t) and frozen flag.
The updater runs it on the MD thread (synchronous and thread learners); the learner process of
``asynchronous="process"`` runs its own copy, so that the MD thread only ships raw positions.

Examples
--------
>>> import torch
>>> from openmm_nnbias.cvs import CVSet, Position
>>> from openmm_nnbias.bias import NeuralBias
>>> cvs = CVSet([Position(0, "x", -3.0, 3.0)])
>>> ev = SampleEvaluator(cvs, cvs, NeuralBias.from_cvs(cvs, seed=0), need_v=True, grid=False)
>>> rec = ev(torch.zeros(4, 1, 3, dtype=torch.float64), times=[0.1, 0.2, 0.3, 0.4])
>>> rec["s"].shape, rec["v"].shape, rec["reweight"]
(torch.Size([4, 1]), torch.Size([4]), False)
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

__all__ = ["SampleEvaluator"]


class SampleEvaluator:
    """Positions ``(n, n_atoms_sub, 3)`` (nm) → ``{"s", "v", "c", "reweight"}`` of one iteration.

    Parameters
    ----------
    cvs : CVSet
        The declared CVs (names, ranges: :meth:`CVSet.check_range`).
    sub_cvs : CVSet
        The same CVs indexing into the recorded subset of atoms.
    net : NeuralBias
        The bias in force (the evaluator keeps this reference; :meth:`stage`/:meth:`advance`
        replace its weights in the learner process).
    need_v : bool
        Evaluate V(s) for every iteration (a ``colvar`` is written); otherwise only once the bias in
        force is frozen and ``grid`` (reweighting).
    grid : bool
        A grid target exists (the reweighted FES is accumulated).
    frozen, c : bool, float
        State of the bias in force: frozen flag and its c(t) (kJ/mol).
    """

    def __init__(self, cvs, sub_cvs, net, need_v: bool, grid: bool, frozen: bool = False, c: float = 0.0):
        self.cvs, self.sub_cvs, self.net = cvs, sub_cvs, net
        self.need_v, self.grid = bool(need_v), bool(grid)
        self.frozen, self.c = bool(frozen), float(c)
        self._staged = []  # learner process: (iteration, weights, frozen, c) of steps not yet finished by MD
        self.n_atoms = 1 + max(int(g.atoms.max()) for g in sub_cvs.groups)  # atoms the positions must hold

    def __call__(self, x, times) -> dict[str, Any]:
        """Checked CVs of positions ``x`` recorded at ``times`` (ps) and, when needed, V of the bias in force.

        Raises ValueError naming the first non-periodic CV outside its declared range. Non-finite
        CVs are returned as they are (the optimizer skips such an iteration and reports it).
        """
        x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
        if x.dim() != 3 or x.shape[1] < self.n_atoms or x.shape[2] != 3:
            raise ValueError(f"positions must have shape (samples, >= {self.n_atoms} atoms, 3) in nm, got {tuple(x.shape)}")
        with torch.no_grad():
            s = self.sub_cvs(x)
        finite = bool(torch.isfinite(s).all())
        if finite:
            self.cvs.check_range(s, times)
        reweight = self.frozen and finite and self.grid
        v = None
        if reweight or self.need_v:
            ref = next(self.net.parameters())
            with torch.no_grad():
                v = self.net(s.to(device=ref.device, dtype=ref.dtype)).double().cpu()
        return {"s": s, "v": v, "c": self.c, "reweight": reweight}

    def stage(self, iteration: int, weights, frozen: bool, c: float) -> None:
        """After optimizer step ``iteration`` (learner process): what will be in force once the MD side
        has finished that step (``weights``: the pushed network's parameters, None when nothing was pushed)."""
        weights = None if weights is None else [p.detach().clone() for p in weights]
        self._staged.append((int(iteration), weights, bool(frozen), float(c)))

    def advance(self, finished: int) -> None:
        """The MD side has finished the steps up to iteration ``finished``: their bias is the one in force."""
        while self._staged and self._staged[0][0] <= finished:
            _, weights, self.frozen, self.c = self._staged.pop(0)
            if weights is not None:
                with torch.no_grad():
                    for dst, src in zip(self.net.parameters(), weights):
                        dst.copy_(src)

    def for_learner(self, net) -> "SampleEvaluator":
        """A copy for the learner process with its own copy of ``net`` (the bias in force now)."""
        clone = copy.copy(self)
        clone.net = copy.deepcopy(net)
        clone._staged = []
        return clone
