"""One Deep-VES iteration's samples: positions of the CV atoms → checked CVs and the bias in force.

:class:`SampleEvaluator` turns the positions recorded during an iteration into the CV samples of
Eq. 10, checks them (NaN, declared ranges) and, when ``colvar`` or reweighting needs it, evaluates
V(s) of the bias that was *in force* while they were drawn, with that bias's c(t) and frozen flag.
Every learner (inline, thread, process; :mod:`~openmm_nnbias.ves.learner`) owns one, with its own
copy of the network: after each optimizer step the learner :meth:`~SampleEvaluator.stage`\\ s what
that step puts in force, and before evaluating an iteration's samples it
:meth:`~SampleEvaluator.advance`\\ s to the steps whose weights the MD side had applied when those
samples were drawn. So ``bias``/``rbias`` of ``colvar`` and the reweighting weights are V and c(t)
of the weights in the Context, in every execution mode and for any push interval.

Examples
--------
>>> import torch
>>> from openmm_nnbias.cvs import CVSet, Position
>>> from openmm_nnbias.bias import NeuralBias
>>> cvs = CVSet([Position(0, "x", -3.0, 3.0)])
>>> ev = SampleEvaluator(cvs, cvs, NeuralBias.from_cvs(cvs, seed=0), need_v=True, grid=False)
>>> rec = ev(torch.zeros(4, 1, 3, dtype=torch.float64), times=[0.1, 0.2, 0.3, 0.4])
>>> rec.s.shape, rec.v.shape, rec.reweight
(torch.Size([4, 1]), torch.Size([4]), False)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["SampleEvaluator", "SampleRecord"]


@dataclass
class SampleRecord:
    """The checked samples of one iteration and what ``colvar`` and reweighting need of them.

    Attributes
    ----------
    s : torch.Tensor
        CVs ``(n, n_cv)`` (rad, nm), float64 CPU.
    v : torch.Tensor or None
        V(s) of the bias in force while they were drawn, ``(n,)`` kJ/mol (None when not needed).
    c : float
        c(t) of that bias (kJ/mol): ``rbias = v − c``.
    reweight : bool
        The bias in force was frozen: the samples enter the reweighted FES (Eq. 11).
    times : numpy.ndarray or None
        Simulation time of each sample (ps).
    steps : numpy.ndarray or None
        MD step of each sample (``colvar`` rows are written at multiples of its stride).
    """

    s: torch.Tensor
    v: torch.Tensor | None
    c: float
    reweight: bool
    times: np.ndarray | None = None
    steps: np.ndarray | None = None


class SampleEvaluator:
    """Positions ``(n, n_atoms_sub, 3)`` (nm) → :class:`SampleRecord` of one iteration.

    Parameters
    ----------
    cvs : CVSet
        The declared CVs (names, ranges: :meth:`CVSet.check_range`).
    sub_cvs : CVSet or None
        The same CVs indexing into the recorded subset of atoms; None for Force CVs
        (:class:`~openmm_nnbias.cvs.ForceCV`), whose values OpenMM computes: the evaluator then
        takes those values ``(n, n_cvs)`` instead of positions.
    net : NeuralBias
        The bias in force; the evaluator keeps this reference and :meth:`advance` replaces its
        weights in place (give it a copy of the network being trained).
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
        self._staged = []  # (iteration, weights or None, frozen, c) of steps the MD side has not applied yet
        # atoms the positions must hold (0: Force CVs, the evaluator takes CV values)
        self.n_atoms = 0 if sub_cvs is None else 1 + max(int(g.atoms.max()) for g in sub_cvs.groups)

    def __call__(self, x, times, steps=None, boxes=None) -> SampleRecord:
        """Checked CVs of positions ``x`` recorded at ``times`` (ps) and, when needed, V of the bias in force.

        For Force CVs (``sub_cvs`` None) ``x`` holds the CV values ``(n, n_cvs)`` instead of positions.

        ``boxes``: periodic box vectors of each sample, ``(n, 3, 3)`` nm (rows a, b, c), or None
        for a non-periodic system. Raises ValueError naming the first non-periodic CV outside its
        declared range. Non-finite CVs are returned as they are (the optimizer skips such an
        iteration and reports it).
        """
        x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
        if self.sub_cvs is None:  # Force CVs: x holds the values OpenMM computed
            if x.dim() != 2 or x.shape[1] != self.cvs.n_cvs:
                raise ValueError(f"Force CV values must have shape (samples, {self.cvs.n_cvs}), got {tuple(x.shape)}")
            s = x
        else:
            s = self._cvs_of_positions(x, boxes)
        finite = bool(torch.isfinite(s).all())
        if finite:
            self.cvs.check_range(s, times)
        reweight = self.frozen and finite and self.grid
        v = None
        if reweight or self.need_v:
            ref = next(self.net.parameters())
            with torch.no_grad():
                v = self.net(s.to(device=ref.device, dtype=ref.dtype)).double().cpu()
        return SampleRecord(s, v, self.c, reweight, None if times is None else np.asarray(times),
                            None if steps is None else np.asarray(steps))

    def _cvs_of_positions(self, x: torch.Tensor, boxes) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] < self.n_atoms or x.shape[2] != 3:
            raise ValueError(f"positions must have shape (samples, >= {self.n_atoms} atoms, 3) in nm, got {tuple(x.shape)}")
        with torch.no_grad():
            if boxes is None:
                return self.sub_cvs(x)
            box = torch.as_tensor(np.asarray(boxes), dtype=torch.float64)
            if box.shape != (x.shape[0], 3, 3):
                raise ValueError(f"boxes must have shape ({x.shape[0]}, 3, 3) in nm, got {tuple(box.shape)}")
            return self.sub_cvs(x, box)

    def stage(self, iteration: int, weights, frozen: bool, c: float) -> None:
        """After optimizer step ``iteration``: what is in force once the MD side has applied that step.

        ``weights``: the parameters pushed into the Context by that step (copied), or None when it
        pushed nothing. ``frozen``/``c``: the bias's frozen flag and c(t) (kJ/mol) that go with the
        weights then in force (a non-finite c leaves the previous one).
        """
        weights = None if weights is None else [p.detach().clone() for p in weights]
        self._staged.append((int(iteration), weights, bool(frozen), float(c)))

    def advance(self, applied: int) -> None:
        """The MD side had applied the steps up to iteration ``applied``: their bias is the one in force."""
        while self._staged and self._staged[0][0] <= applied:
            _, weights, self.frozen, c = self._staged.pop(0)
            if math.isfinite(c):
                self.c = c
            if weights is not None:
                with torch.no_grad():
                    for dst, src in zip(self.net.parameters(), weights):
                        dst.copy_(src)

    def reset(self, net, frozen: bool, c: float) -> None:
        """In force now: the weights of ``net`` (copied), ``frozen`` and ``c``; nothing staged (restarts)."""
        self._staged = []
        self.frozen, self.c = bool(frozen), float(c)
        with torch.no_grad():
            for dst, src in zip(self.net.parameters(), net.parameters()):
                dst.copy_(src)
