"""NeuralBiasForce: a neural bias V(s) over CVs as an OpenMM force with live weight updates."""

import copy
import math
import os

import torch

from .._io import atomic_write
from .backends import ForceBackend
from .registry import BACKENDS
from .modules import BiasEnergy, CVBiasEnergy
from .network import NeuralBias

__all__ = ["NeuralBiasForce", "export_bias", "load_bias", "default_backend"]


def _contexts(contexts) -> list:
    if contexts is None:
        return []
    if not isinstance(contexts, (list, tuple)):
        contexts = [contexts]
    return [getattr(c, "context", c) for c in contexts]  # accept Simulation objects too


NOT_IN_CONTEXT = ("the NeuralBias force is not part of this Context: add it to the System (addToSystem) "
                  "before the Context/Simulation is created, or call context.reinitialize(preserveState=True) "
                  "after adding it")


def export_bias(cvs, bias: NeuralBias, path: str) -> None:
    """Save a self-contained TorchScript bias (positions → kJ/mol) atomically to ``path``.

    The file can be loaded with :func:`load_bias` or ``torch.jit.load`` and attached to any
    System whose atom numbering matches the CVs. The module's ``forward(positions,
    boxvectors=None)`` computes the CVs with the minimum image when given the box (nm). For Force CVs
    (:class:`~openmm_nnbias.cvs.ForceCV`, computed by OpenMM) the file holds V(s) of the CV values
    alone (:class:`~openmm_nnbias.bias.modules.CVBiasEnergy`).
    """
    energy = CVBiasEnergy if cvs.has_force_cvs else BiasEnergy
    module = torch.jit.script(energy(cvs, copy.deepcopy(bias).cpu()))
    atomic_write(path, module.save, suffix=".pt")


def load_bias(path: str, forceGroup: int = None, periodic: bool = False):
    """Load a ``bias.pt`` file as a static openmm-torch ``TorchForce``.

    Parameters
    ----------
    path : str
        File written by :func:`export_bias` / :meth:`NeuralBiasForce.exportBias`.
    forceGroup : int, optional
        Force group of the returned force.
    periodic : bool, optional
        Pass ``system.usesPeriodicBoundaryConditions()`` for the System the force goes to:
        with True the force uses periodic boundary conditions, openmm-torch hands the box
        vectors to the module and the CVs use the minimum image (check the distance ranges with
        ``CVSet.check_box``). Default False (vacuum; the box is ignored).

    Examples
    --------
    >>> force = load_bias("run/bias.pt")          # doctest: +SKIP
    >>> system.addForce(force)                     # doctest: +SKIP
    >>> force = load_bias("run/bias.pt", periodic=system.usesPeriodicBoundaryConditions())  # doctest: +SKIP
    """
    from .plugins import import_torch_force

    TorchForce = import_torch_force()

    if not os.path.exists(path):
        raise ValueError(f"bias file {path!r} does not exist")
    if not isinstance(periodic, bool):
        raise TypeError(f"periodic must be a bool, got {type(periodic).__name__}")
    module = torch.jit.load(path)
    if hasattr(module, "takes_cvs"):
        raise ValueError(f"{path!r} holds V(s) of Force CVs (ForceCV), computed by OpenMM, not a positions → energy "
                         "module: evaluate it on CV values (module.bias_from_cvs(s)), or attach the bias with "
                         "NeuralBiasForce(cvs, bias, backend='cvforce')")
    force = TorchForce(module)
    force.setUsesPeriodicBoundaryConditions(periodic)
    force.setName("NeuralBias")
    if forceGroup is not None:
        force.setForceGroup(int(forceGroup))
    return force


def default_backend(cvs) -> str:
    """The backend :class:`NeuralBiasForce` chooses for ``cvs`` (as the command line does).

    ``"cvforce"`` for Force CVs; ``"table"`` for ≤ 3 Torsion/Distance/Angle/Position CVs that are all
    periodic or all non-periodic; ``"torch"`` otherwise.

    Examples
    --------
    >>> from openmm_nnbias.cvs import CVSet, Distance, Torsion
    >>> default_backend(CVSet([Torsion([0, 1, 2, 3], "phi")])), default_backend(
    ...     CVSet([Torsion([0, 1, 2, 3], "phi"), Distance([0, 3], 0.1, 1.0, "d")]))
    ('table', 'torch')
    """
    from ..cvs import Angle, Distance, Position, Torsion

    if cvs.has_force_cvs:
        return "cvforce"
    expressible = all(isinstance(cv, (Torsion, Distance, Angle, Position)) for cv in cvs.sources)
    return "table" if expressible and cvs.n_cvs <= 3 and len(set(cvs.periodic)) == 1 else "torch"


class NeuralBiasForce:
    """A :class:`NeuralBias` over a :class:`~openmm_nnbias.cvs.CVSet`, attachable to a System.

    Forces are −∇_x V(s(x)) (Deep-VES Eq. 9). After changing the network's weights in Python,
    :meth:`updateWeights` makes running Contexts use them at their next force evaluation,
    without ``Context.reinitialize()``.

    Parameters
    ----------
    cvs : CVSet or list of CVs
        Collective variables (positions → s); a list is wrapped in a :class:`~openmm_nnbias.cvs.CVSet`.
    bias : NeuralBias
        The network; its inputs must match ``cvs`` (count, periodicity, ranges).
    backend : {"torch", "table", "cmap", "cvforce"}, optional
        Which CVs each backend takes:

        * ``"torch"``: any of this package's CVs, any number (Torsion, Distance, Angle, Position,
          RadiusOfGyration, ModelCV, ...); openmm-torch ``TorchForce`` reading weights from
          shared memory, exact network, push ≈ 0.1 ms.
        * ``"table"``: ≤ 3 Torsion/Distance/Angle/Position CVs, all periodic or all non-periodic;
          the network tabulated on a grid in a ``CustomCompoundBondForce`` (fast MD on the CPU
          platform, push = re-tabulation + expression recompilation, tens of ms).
        * ``"cmap"``: exactly two Torsions through the native ``CMAPTorsionForce`` (fastest MD,
          push ≈ 4 ms).
        * ``"cvforce"``: ≤ 3 :class:`~openmm_nnbias.cvs.ForceCV` (cvpack CVs, ``CustomCVForce``,
          any OpenMM force whose energy is the CV), all periodic or all non-periodic; the network
          tabulated in a ``CustomCVForce`` over the CV forces.

        Default None chooses as the command line does: ``"cvforce"`` for Force CVs, ``"table"``
        where it takes the CVs, ``"torch"`` otherwise.
    forceGroup : int, optional
        Force group of the bias (default: the highest group not used in the System), so that
        its energy can be read alone with :meth:`getBiasEnergy`.
    gridBins : int or sequence of int, optional
        Table, cmap and cvforce backends: grid points per CV.

    Examples
    --------
    >>> import openmm as mm
    >>> from openmm_nnbias.systems import alanine_dipeptide
    >>> from openmm_nnbias.cvs import CVSet, Torsion
    >>> from openmm_nnbias.bias import NeuralBias, NeuralBiasForce
    >>> pep = alanine_dipeptide()
    >>> cvs = CVSet([Torsion(pep.torsions["phi"], "phi"), Torsion(pep.torsions["psi"], "psi")])
    >>> bias = NeuralBias.from_cvs(cvs, seed=1, zero_output=False)
    >>> nnforce = NeuralBiasForce(cvs, bias)
    >>> index = nnforce.addToSystem(pep.system)
    >>> context = mm.Context(pep.system, mm.VerletIntegrator(0.001))
    >>> context.setPositions(pep.positions)
    >>> with torch.no_grad():
    ...     _ = bias.layers[-1].bias.add_(1.0)      # shift V by +1 kJ/mol
    >>> nnforce.updateWeights(context)             # the running Context sees it at once
    """

    def __init__(self, cvs, bias: NeuralBias, backend: str = None, forceGroup: int = None,
                 gridBins=None):
        from ..cvs import CVSet

        if isinstance(cvs, (list, tuple)):
            cvs = CVSet(cvs)
        if not isinstance(cvs, CVSet):
            raise TypeError(f"cvs must be a CVSet (or a list of CVs), got {type(cvs).__name__}")
        if not isinstance(bias, NeuralBias):
            raise TypeError(f"bias must be a NeuralBias, got {type(bias).__name__}")
        if backend is None:
            backend = default_backend(cvs)
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {sorted(BACKENDS)}")
        if cvs.n_cvs != bias.n_cvs:
            raise ValueError(f"the CV set has {cvs.n_cvs} CVs ({cvs.names}) but the network "
                             f"takes {bias.n_cvs} inputs")
        for i, name in enumerate(cvs.names):
            if cvs.periodic[i] != bias.periodic[i]:
                raise ValueError(f"periodicity mismatch for CV {name!r}: the CV is "
                                 f"{'periodic' if cvs.periodic[i] else 'non-periodic'} but the "
                                 f"network treats it as {'periodic' if bias.periodic[i] else 'non-periodic'}")
            if not (math.isclose(cvs.lower[i], bias.lower[i]) and math.isclose(cvs.upper[i], bias.upper[i])):
                raise ValueError(f"range mismatch for CV {name!r}: CV [{cvs.lower[i]}, {cvs.upper[i]}], "
                                 f"network [{bias.lower[i]}, {bias.upper[i]}]")
        if forceGroup is not None and not 0 <= int(forceGroup) <= 31:
            raise ValueError(f"forceGroup must be in 0..31, got {forceGroup}")
        bias.check_finite()
        self.cvs = cvs
        self.bias = bias
        self.forceGroup = None if forceGroup is None else int(forceGroup)
        kwargs = {"bins": gridBins} if backend != "torch" else {}
        if gridBins is not None and backend == "torch":
            raise ValueError("gridBins applies to the 'table' and 'cmap' backends only")
        self.backend: ForceBackend = BACKENDS[backend](cvs, bias, **kwargs)
        self._force = None

    def getForce(self):
        """The OpenMM force (created on first call; non-periodic until :meth:`addToSystem`
        makes it follow the System's periodicity, so add it with that method)."""
        if self._force is None:
            self._force = self.backend.create_force()
            if self.forceGroup is not None:
                self._force.setForceGroup(self.forceGroup)
        return self._force

    def addToSystem(self, system) -> int:
        """Check the CV atoms against ``system``, add the force and return its index.

        If ``system`` uses periodic boundary conditions (decided by the forces already in it:
        add the bias last), the force does too and every backend computes the CVs with the
        minimum image; the distance ranges are checked against
        ``system.getDefaultPeriodicBoxVectors()`` (:meth:`CVSet.check_box
        <openmm_nnbias.cvs.CVSet.check_box>`, ValueError if one exceeds half the box).
        """
        self.cvs.check_system(system.getNumParticles())
        periodic = bool(system.usesPeriodicBoundaryConditions())
        if periodic:
            self.cvs.check_box(system.getDefaultPeriodicBoxVectors())
        if self.forceGroup is None:
            used = {system.getForce(i).getForceGroup() for i in range(system.getNumForces())}
            free = [g for g in range(31, -1, -1) if g not in used]
            if not free:
                raise ValueError("all 32 force groups are in use; pass forceGroup explicitly")
            self.forceGroup = free[0]
        force = self.getForce()
        force.setForceGroup(self.forceGroup)
        if hasattr(force, "setUsesPeriodicBoundaryConditions"):  # a CustomCVForce follows its CV forces
            force.setUsesPeriodicBoundaryConditions(periodic)
        return system.addForce(force)

    def checkContext(self, context) -> None:
        """ValueError unless ``context`` (a Context or Simulation) contains this force.

        A force added to the System after the Context was created is not in that Context: recreate
        the Simulation (or call ``context.reinitialize(preserveState=True)``).
        """
        self._checked([context])

    def _checked(self, contexts) -> list:
        """``contexts`` as Contexts, each verified to contain this force (ValueError otherwise)."""
        contexts = _contexts(contexts)
        if contexts and self._force is None:
            raise ValueError("the NeuralBias force was never added to a System: call addToSystem(system) "
                             "before the Context/Simulation is created")
        for context in contexts:
            if not self.backend.contains(context):
                raise ValueError(NOT_IN_CONTEXT)
        return contexts

    def _apply(self, payload, contexts) -> None:
        import openmm as mm

        # a push checks the probe parameter where the backend has one; for the others OpenMM's own
        # check inside updateParametersInContext raises, and is translated here (no second call)
        contexts = self._checked(contexts) if self.backend.probe is not None else _contexts(contexts)
        if contexts and self._force is None:
            raise ValueError("the NeuralBias force was never added to a System: call addToSystem(system) "
                             "before the Context/Simulation is created")
        try:
            self.backend.apply(payload, contexts)
        except mm.OpenMMException as exc:  # a backend without probe parameter (table, cmap)
            if "not present in the Context" in str(exc):
                raise ValueError(NOT_IN_CONTEXT) from None
            raise

    def updateWeights(self, contexts=None) -> None:
        """Push the network's current weights into running Context(s) (or Simulations).

        The torch backend updates every Context at once (``contexts`` are only checked); the
        table and cmap backends re-tabulate and update each given Context.

        Raises
        ------
        ValueError
            If a Context does not contain this force (it was added to the System after the
            Context was created).
        """
        self._apply(self.backend.prepare(), contexts)

    def prepareWeights(self):
        """Compute the force's data for the network's current weights (no Context touched).

        Thread-safe with respect to running Contexts: a worker thread may call it while the
        simulation steps, and the main thread then hands the result to :meth:`applyWeights`.
        """
        return self.backend.prepare()

    def applyWeights(self, payload, contexts=None) -> None:
        """Install a payload from :meth:`prepareWeights` in running Context(s) (between steps).

        Raises ValueError if a Context does not contain this force (see :meth:`updateWeights`).
        """
        self._apply(payload, contexts)

    def getCollectiveVariables(self, context) -> list:
        """Current CV values (MD units) of a Context or Simulation.

        Raises ValueError if a non-periodic CV lies outside its declared range, where the
        table backend's grid does not cover it (and the network extrapolates). In a periodic
        System the CVs use the minimum image in the Context's current box.
        """
        from openmm import unit

        context = getattr(context, "context", context)
        if self.cvs.has_force_cvs:  # computed by OpenMM
            s = self.backend.cv_values(context)
        else:
            state = context.getState(getPositions=True)
            pos = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
            box = None
            if context.getSystem().usesPeriodicBoundaryConditions():
                box = torch.tensor(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer),
                                   dtype=torch.float64)
            with torch.no_grad():
                s = self.cvs(torch.tensor(pos, dtype=torch.float64), box).tolist()
        for name, value, per, lo, hi in zip(self.cvs.names, s, self.cvs.periodic, self.cvs.lower, self.cvs.upper):
            if not math.isfinite(value):
                raise ValueError(f"CV {name!r} is {value}: non-finite coordinates")
            if not per and not lo <= value <= hi:
                raise ValueError(f"CV {name!r} = {value:.4f} is outside its declared range [{lo}, {hi}]"
                                 + (" covered by the bias table" if self.backend.name in ("table", "cvforce") else ""))
        return s

    def getBiasEnergy(self, context):
        """Bias energy of the current state (``openmm.unit.Quantity``, kJ/mol).

        Raises ValueError if the Context does not contain this force (torch and table backends).
        """
        context = self._checked(context)[0]
        return context.getState(getEnergy=True, groups={self.forceGroup}).getPotentialEnergy()

    def exportBias(self, path: str) -> None:
        """Write the current bias as a self-contained TorchScript file (atomically)."""
        export_bias(self.cvs, self.bias, path)
