"""The ``cvforce`` backend: a bias over OpenMM-force CVs (cvpack, ``CustomCVForce``, ...).

OpenMM computes the CVs (:class:`~openmm_nnbias.cvs.ForceCV`) as the collective variables of a
``CustomCVForce`` whose energy is the network tabulated on a grid, as a
``Continuous{1,2,3}DFunction`` — the route of OpenMM's own ``app.Metadynamics``. New weights
are pushed by re-tabulating the network and ``updateParametersInContext``.
"""

from __future__ import annotations

from .backends import TableBackend

__all__ = ["CVForceBackend"]


class CVForceBackend(TableBackend):
    """The network tabulated over up to 3 Force CVs, in a ``CustomCVForce`` (exact OpenMM CVs).

    The force declares no global parameter (presence in a Context is checked with
    ``updateParametersInContext``), so the cost of a step does not grow with the number of pushes
    (tested as for the table backend). Values and forces are those of the tabulated network
    (natural cubic splines; periodic ones for periodic CVs), as with ``backend="table"``.

    Parameters
    ----------
    cvs : CVSet
        Up to 3 :class:`~openmm_nnbias.cvs.ForceCV`, all periodic or all non-periodic.
    bias : NeuralBias
    bins : int or sequence of int, optional
        Grid points per CV (default: 1 CV 256, 2 CVs 64, 3 CVs 24).

    Examples
    --------
    >>> import openmm as mm
    >>> from openmm_nnbias.cvs import CVSet, ForceCV
    >>> from openmm_nnbias.bias import NeuralBias, NeuralBiasForce
    >>> d = mm.CustomBondForce("r"); _ = d.addBond(0, 1, [])
    >>> cvs = CVSet([ForceCV(d, 0.0, 2.0, name="d01", unit="nm")])
    >>> force = NeuralBiasForce(cvs, NeuralBias.from_cvs(cvs))   # backend "cvforce", chosen automatically
    >>> force.backend.name, type(force.getForce()).__name__
    ('cvforce', 'CustomCVForce')
    """

    name = "cvforce"

    def _check_cvs(self, cvs) -> int:
        if not cvs.has_force_cvs:
            raise ValueError("the cvforce backend takes a CVSet of Force CVs (ForceCV); for this package's "
                             "CVs use backend='table' (≤ 3 CVs with OpenMM expressions) or 'torch'")
        if cvs.n_cvs > 3:
            raise ValueError(f"the cvforce backend tabulates the network over at most 3 Force CVs, got {cvs.n_cvs} "
                             f"({cvs.names}); use at most 3, or this package's own CVs (openmm_nnbias.cvs: "
                             "RadiusOfGyration, RMSD, NumberOfContacts, ...) with backend='torch'")
        return cvs.n_cvs

    def create_force(self):
        import openmm as mm

        names = [f"nnbias_cv{i}" for i in range(self.cvs.n_cvs)]
        force = mm.CustomCVForce(f"nnbias_table({', '.join(names)})")
        for name, cv in zip(names, self.cvs.sources):
            force.addCollectiveVariable(name, cv.clone())  # a copy: the CustomCVForce owns it
        force.addTabulatedFunction("nnbias_table", self._make_function(self.table_values()))
        force.setName("NeuralBias")
        # no global parameter, as in TableBackend.create_force (see there and this class's docstring)
        self.force = force
        self.function = force.getTabulatedFunction(0)
        return force

    def cv_values(self, context) -> list:
        """The Force CVs of a Context (their units), computed by OpenMM."""
        if self.force is None:
            raise ValueError("the NeuralBias force was never added to a System: call addToSystem(system) "
                             "before the Context/Simulation is created")
        return list(self.force.getCollectiveVariableValues(context))
