"""Well-tempered metadynamics over periodic torsions on a grid, with its own (restartable) bias state.

Mirrors OpenMM's ``openmm.app.Metadynamics`` (same grid, Gaussians, well-tempered heights and
free energy) but keeps the bias grid as public state, so a run can be checkpointed and continued
exactly through :meth:`WellTemperedMetadynamics.getBias` / :meth:`~WellTemperedMetadynamics.setBias`.
It uses only OpenMM's public API: a ``CustomCVForce`` over ``CustomTorsionForce`` CVs with a
periodic ``Continuous{1,2,3}DFunction`` updated by ``updateParametersInContext``.

MD units: rad, kJ/mol, K.
"""

from __future__ import annotations

import math
from functools import reduce
from typing import Sequence

import numpy as np

from .._units import KB

__all__ = ["WellTemperedMetadynamics"]


class WellTemperedMetadynamics:
    """WT-metadynamics over 1 to 3 torsions, periodic on ``[−π, π]``.

    Parameters
    ----------
    system : openmm.System
        The system; the bias force is added to it (in a free force group), so create the
        Context after this object.
    torsions : sequence of 4-tuples of int
        Atom indices of each biased torsion.
    temperature : float
        Simulation temperature in K.
    biasFactor : float
        Well-tempered bias factor γ (> 1).
    height : float
        Initial Gaussian height in kJ/mol.
    width : float
        Gaussian standard deviation in rad.
    frequency : int
        MD steps between depositions.
    gridWidth : int
        Grid points per torsion, endpoint included (as ``app.BiasVariable``'s ``gridWidth``).

    Raises
    ------
    TypeError
        ``frequency`` or ``gridWidth`` not an int.
    ValueError
        1 to 3 torsions, ``biasFactor`` > 1, positive temperature/height/width, ``frequency`` >= 1,
        ``gridWidth`` >= 4 and a free force group are needed.

    Examples
    --------
    >>> import openmm as mm
    >>> system = mm.System()
    >>> for _ in range(4):
    ...     _ = system.addParticle(12.0)
    >>> meta = WellTemperedMetadynamics(system, [(0, 1, 2, 3)], 300.0, 10.0, 1.0, 0.35, 500, 37)
    >>> meta.getBias().shape, system.getNumForces()
    ((37,), 1)
    """

    def __init__(self, system, torsions: Sequence[Sequence[int]], temperature: float, biasFactor: float,
                 height: float, width: float, frequency: int, gridWidth: int) -> None:
        import openmm as mm

        if not 1 <= len(torsions) <= 3:
            raise ValueError(f"torsions: 1, 2 or 3 torsions, got {len(torsions)}")
        if not biasFactor > 1:
            raise ValueError(f"biasFactor must be > 1, got {biasFactor}")
        if not (temperature > 0 and height > 0 and width > 0):
            raise ValueError(f"temperature, height and width must be > 0, got {temperature}, {height}, {width}")
        for name, value, least in (("frequency", frequency, 1), ("gridWidth", gridWidth, 4)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
            if value < least:
                raise ValueError(f"{name} must be >= {least}, got {value}")
        self.temperature = float(temperature)
        self.biasFactor = float(biasFactor)
        self.height = float(height)
        self.frequency = frequency
        self.gridWidth = gridWidth
        self._n = len(torsions)
        self._delta_t = self.temperature * (self.biasFactor - 1)
        self._scaled_variance = (float(width) / (2 * math.pi)) ** 2
        self._bias = np.zeros((gridWidth,) * self._n)  # last torsion slowest, as app.Metadynamics
        names = [f"cv{i}" for i in range(self._n)]
        self._force = mm.CustomCVForce(f"table({', '.join(names)})")
        for name, atoms in zip(names, torsions):
            t = mm.CustomTorsionForce("theta")
            t.addTorsion(*atoms, [])
            self._force.addCollectiveVariable(name, t)
        self._limits = [-math.pi, math.pi] * self._n
        table = (mm.Continuous1DFunction, mm.Continuous2DFunction, mm.Continuous3DFunction)[self._n - 1]
        self._table = table(*self._table_args(), True)
        self._force.addTabulatedFunction("table", self._table)
        free = set(range(32)) - {f.getForceGroup() for f in system.getForces()}
        if not free:
            raise ValueError("system: all 32 force groups are in use; none left for the metadynamics bias")
        self._force.setForceGroup(max(free))
        system.addForce(self._force)

    def _table_args(self) -> list:
        widths = [self.gridWidth] * self._n if self._n > 1 else []
        return [*widths, self._bias.flatten(), *self._limits]

    @property
    def forceGroup(self) -> int:
        """Force group of the bias force."""
        return self._force.getForceGroup()

    def getCollectiveVariables(self, simulation) -> tuple:
        """Current torsion values (rad) in ``simulation``."""
        return tuple(self._force.getCollectiveVariableValues(simulation.context))

    def step(self, simulation, steps: int) -> None:
        """Advance ``simulation`` by ``steps`` MD steps, depositing a Gaussian every ``frequency`` steps."""
        from openmm import unit

        to_go = int(steps)
        while to_go > 0:
            n = min(to_go, self.frequency - simulation.currentStep % self.frequency)
            simulation.step(n)
            if simulation.currentStep % self.frequency == 0:
                position = self._force.getCollectiveVariableValues(simulation.context)
                state = simulation.context.getState(getEnergy=True, groups={self.forceGroup})
                energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
                self._add_gaussian(position, self.height * math.exp(-energy / (KB * self._delta_t)))
                self._force.updateParametersInContext(simulation.context)
            to_go -= n

    def _add_gaussian(self, position, height: float) -> None:
        axis = np.linspace(0, 1.0, num=self.gridWidth)
        gaussians = []
        for x in position:
            dist = np.abs(axis - ((x + math.pi) / (2 * math.pi)) % 1.0)
            dist = np.minimum(dist, np.abs(dist - 1))
            dist[-1] = dist[0]
            gaussians.append(np.exp(-0.5 * dist * dist / self._scaled_variance))
        self._bias += height * (gaussians[0] if self._n == 1 else reduce(np.multiply.outer, reversed(gaussians)))
        self._table.setFunctionParameters(*self._table_args())

    def getBias(self) -> np.ndarray:
        """A copy of the bias grid (kJ/mol), shape ``(gridWidth,) * n``, last torsion first."""
        return self._bias.copy()

    def setBias(self, bias: np.ndarray, context=None) -> None:
        """Replace the bias grid (kJ/mol, shape as :meth:`getBias`), e.g. from a checkpoint, and push it into ``context``."""
        bias = np.asarray(bias, dtype=float)
        if bias.shape != self._bias.shape:
            raise ValueError(f"bias must have shape {self._bias.shape}, got {bias.shape}")
        self._bias[...] = bias
        self._table.setFunctionParameters(*self._table_args())
        if context is not None:
            self._force.updateParametersInContext(context)

    def getFreeEnergy(self) -> np.ndarray:
        """Free energy (kJ/mol) on the grid, −(T + ΔT)/ΔT · V, indexed as :meth:`getBias`.

        Point ``i`` of each axis is at ``−π + i·2π/(gridWidth − 1)`` (the last repeats the first).
        """
        return -((self.temperature + self._delta_t) / self._delta_t) * self._bias
