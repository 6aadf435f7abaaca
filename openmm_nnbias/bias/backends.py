"""Force backends behind one small adapter: how a NeuralBias becomes an OpenMM force.

A backend creates the OpenMM force once and afterwards only pushes new weights into running
Contexts. Add a backend (e.g. ``openmm.PythonForce`` on OpenMM ≥ 8.5) by subclassing
:class:`ForceBackend` and registering it in :data:`openmm_nnbias.bias.registry.BACKENDS`.
"""

import math
import uuid
from typing import Sequence

import torch

from .fused_torsions import live_bias_energy
from .plugins import import_torch_force
from .weights import SharedWeights

__all__ = ["ForceBackend", "TorchBackend", "TableBackend", "CMAPBackend", "table_expression"]


class ForceBackend:
    """Adapter contract.

    Subclasses implement ``create_force()`` (called once), ``prepare()`` (compute, from the
    network's current weights, everything the force needs; pure torch, safe to run in a worker
    thread while the Context is stepping) and ``apply(payload, contexts)`` (hand a prepared payload
    to OpenMM; main thread, between steps). ``push(contexts) = apply(prepare(), contexts)``.
    """

    name = "base"

    def __init__(self, cvs, bias):
        self.cvs = cvs
        self.bias = bias
        #: name of a global parameter the force declares (None: none), so that
        #: ``probe in context.getParameters()`` tells whether a Context contains the force
        self.probe = None

    def _declare_probe(self, force) -> None:
        # unique across processes: a Context checkpoint from another run cannot bring this name along
        self.probe = f"nnbias_force_{uuid.uuid4().hex[:16]}"
        force.addGlobalParameter(self.probe, 0.0)

    def create_force(self):  # pragma: no cover - interface
        raise NotImplementedError

    def contains(self, context) -> bool:
        """Whether ``context`` holds this backend's force (created by :meth:`create_force`).

        With a probe parameter, a look-up of the Context's parameters; otherwise OpenMM's own check,
        ``updateParametersInContext`` (which raises for a force the Context does not hold; it hands the
        Context the force's current data, which is what the Context already has between pushes).
        """
        import openmm as mm

        if self.probe is not None:
            return self.probe in context.getParameters()
        try:
            self.force.updateParametersInContext(context)
        except mm.OpenMMException as exc:
            if "not present in the Context" in str(exc):
                return False
            raise
        return True

    def prepare(self):  # pragma: no cover - interface
        raise NotImplementedError

    def apply(self, payload, contexts: Sequence) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def push(self, contexts: Sequence) -> None:
        """Make the given Contexts use the network's current weights."""
        self.apply(self.prepare(), contexts)

    #: attributes holding OpenMM, TorchScript or shared-memory objects (not needed by ``prepare``)
    _LIVE_ATTRIBUTES = ("force", "function", "module", "weights")

    def preparer(self) -> "ForceBackend":
        """A picklable shallow copy whose ``prepare()`` works (for a learner process); no ``apply``."""
        import copy

        clone = copy.copy(self)
        for attr in self._LIVE_ATTRIBUTES:
            if hasattr(clone, attr):
                setattr(clone, attr, None)
        return clone


class TorchBackend(ForceBackend):
    """openmm-torch ``TorchForce`` evaluating the network; weights live in shared memory.

    Pushing new weights is an in-place copy into a memory-mapped buffer that every Context's
    module reads, so it costs microseconds and needs no Context at all. When every CV is a
    :class:`~openmm_nnbias.cvs.Torsion` and the network is float64, the module is the compiled
    :class:`~openmm_nnbias.bias.fused_torsions.FusedLiveBiasEnergy` (same results, a fraction of
    the cost per evaluation) if the fused kernels load; otherwise (and with a warning when they
    fail to load) the TorchScript :class:`~openmm_nnbias.bias.modules.LiveBiasEnergy`.
    """

    name = "torch"

    def __init__(self, cvs, bias):
        super().__init__(cvs, bias)
        if cvs.has_force_cvs:
            raise ValueError("the torch backend computes the CVs from positions in TorchScript; Force CVs "
                             "(ForceCV) are computed by OpenMM: use backend='cvforce'")
        dtype = bias.layers[0].weight.dtype
        self.weights = SharedWeights(bias.n_parameters, dtype)
        self.weights.write_parameters(bias)
        # all-torsion float64 biases: the compiled operator (FusedLiveBiasEnergy) where it loads
        self.module = torch.jit.script(live_bias_energy(cvs, bias, self.weights.path, self.weights.header))

    def create_force(self):
        TorchForce = import_torch_force()
        force = TorchForce(self.module)
        force.setOutputsForces(True)
        force.setName("NeuralBias")
        self._declare_probe(force)  # handed to the module's ``probe`` argument, unused
        return force

    def prepare(self) -> torch.Tensor:
        with torch.no_grad():
            flat = torch.cat([p.detach().reshape(-1) for p in self.bias.parameters()]).cpu()
        if not bool(torch.isfinite(flat).all()):
            raise ValueError("bias weights contain non-finite values (NaN or inf); not pushed")
        return flat

    def apply(self, payload: torch.Tensor, contexts: Sequence) -> None:
        self.weights.write(payload)


def _check_expressible(cvs, backend: str) -> None:
    """Raise ValueError naming the first CV that has no OpenMM expression (e.g. a ModelCV)."""
    from ..cvs import Angle, Distance, Position, Torsion

    for cv in cvs.sources:
        if not isinstance(cv, (Torsion, Distance, Angle, Position)):
            use = "'cvforce'" if cvs.has_force_cvs else "'torch'"
            raise ValueError(f"the {backend} backend cannot compute CV {cv.names} ({type(cv).__name__}: "
                             f"no OpenMM expression for it); use backend={use}")


def table_expression(cvs, particle_of_atom: dict) -> str:
    """OpenMM expression computing every CV of ``cvs`` from compound-bond particles p1..pn."""
    from ..cvs import Angle, Distance, Position, Torsion

    terms = []
    for cv in cvs.sources:
        for row_i, row in enumerate(cv.atoms.tolist()):
            p = [f"p{particle_of_atom[a]}" for a in row]
            if isinstance(cv, Torsion):
                terms.append(f"dihedral({','.join(p)})")
            elif isinstance(cv, Distance):
                terms.append(f"distance({','.join(p)})")
            elif isinstance(cv, Angle):
                terms.append(f"angle({','.join(p)})")
            elif isinstance(cv, Position):
                axis = "xyz"[int(cv.axes[row_i])]
                terms.append(f"{axis}{particle_of_atom[row[0]]}")
            else:
                raise ValueError(f"the table backend has no expression for CV kind {type(cv).__name__}")
    names = [f"nnbias_cv{i}" for i in range(len(terms))]
    defs = "; ".join(f"{n}={t}" for n, t in zip(names, terms))
    return f"nnbias_table({', '.join(names)}); {defs}"


class _GridBackend(ForceBackend):
    """A backend whose force holds the network tabulated on :attr:`points` (table, cmap)."""

    kind = "grid"

    def _grid_values(self) -> torch.Tensor:
        with torch.no_grad():
            v = self.bias(self.points.to(self.bias.layers[0].weight.device)).cpu()
        if not torch.isfinite(v).all():
            raise ValueError(f"the bias network gives non-finite values on the {self.kind} grid")
        return v

    def table_values(self) -> list:
        return self._grid_values().tolist()

    def prepare(self) -> list:
        return self.table_values()

    def _set_parameters(self, payload: list) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def apply(self, payload: list, contexts: Sequence) -> None:
        if self.force is None:
            raise ValueError("the force has not been created yet; call addToSystem first")
        self._set_parameters(payload)
        for context in contexts:
            self.force.updateParametersInContext(context)


class TableBackend(_GridBackend):
    """The network tabulated on a grid as an OpenMM ``Continuous{1,2,3}DFunction``.

    The CVs are computed inside a ``CustomCompoundBondForce`` expression (no inner Context,
    unlike ``CustomCVForce``), and new weights are pushed by re-tabulating the network and
    calling ``updateParametersInContext`` — the mechanism of OpenMM's own Metadynamics.
    Works for up to 3 CVs; the grid spans each CV's declared range (periodic CVs with the
    endpoint repeated, as OpenMM's periodic splines require).

    Parameters
    ----------
    bins : int or sequence of int, optional
        Grid points per CV (default: 1 CV 256, 2 CVs 64, 3 CVs 24; pushes cost ~1 µs per grid
        point plus ~5 ms for updateParametersInContext).
    """

    name = "table"
    kind = "table"
    DEFAULT_BINS = {1: 256, 2: 64, 3: 24}

    def __init__(self, cvs, bias, bins=None):
        super().__init__(cvs, bias)
        n = self._check_cvs(cvs)
        if bins is None:
            bins = [self.DEFAULT_BINS[n]] * n
        elif isinstance(bins, int):
            bins = [bins] * n
        bins = [int(b) for b in bins]
        if len(bins) != n or any(b < 4 for b in bins):
            raise ValueError(f"need one grid size ≥ 4 per CV ({n} CVs), got {bins}")
        self.bins = bins
        dtype = bias.layers[0].weight.dtype
        axes = [torch.linspace(lo, hi, b, dtype=dtype) for lo, hi, b in zip(cvs.lower, cvs.upper, bins)]
        # OpenMM tables are indexed with the first CV fastest: build the mesh in reverse order.
        mesh = torch.meshgrid(*reversed(axes), indexing="ij")
        self.points = torch.stack([m.reshape(-1) for m in reversed(mesh)], dim=-1)
        self.periodic_any = any(cvs.periodic)
        if self.periodic_any and not all(cvs.periodic):
            raise ValueError("the table backend needs all CVs periodic or all non-periodic "
                             f"(OpenMM tabulated functions have one periodic flag); got {cvs.periodic}")
        self.function = None
        self.force = None

    def _check_cvs(self, cvs) -> int:
        """ValueError unless the CVs have OpenMM expressions and are at most 3; their number."""
        _check_expressible(cvs, self.name)
        if cvs.n_cvs > 3:
            raise ValueError(f"the table backend supports at most 3 CVs, got {cvs.n_cvs}; use backend='torch'")
        return cvs.n_cvs

    def table_values(self) -> list:
        v = self._grid_values()
        if self.periodic_any:  # make the periodic images exactly equal
            v = v.reshape(list(reversed(self.bins)))
            for dim in range(v.dim()):
                v.select(dim, -1).copy_(v.select(dim, 0))
            v = v.reshape(-1)
        return v.tolist()

    def _make_function(self, values):
        import openmm as mm

        lo, hi, b, per = self.cvs.lower, self.cvs.upper, self.bins, self.periodic_any
        if len(b) == 1:
            return mm.Continuous1DFunction(values, lo[0], hi[0], per)
        if len(b) == 2:
            return mm.Continuous2DFunction(b[0], b[1], values, lo[0], hi[0], lo[1], hi[1], per)
        return mm.Continuous3DFunction(b[0], b[1], b[2], values, lo[0], hi[0], lo[1], hi[1],
                                       lo[2], hi[2], per)

    def _function_parameters(self, values):
        lo, hi, b = self.cvs.lower, self.cvs.upper, self.bins
        if len(b) == 1:
            return (values, lo[0], hi[0])
        if len(b) == 2:
            return (b[0], b[1], values, lo[0], hi[0], lo[1], hi[1])
        return (b[0], b[1], b[2], values, lo[0], hi[0], lo[1], hi[1], lo[2], hi[2])

    def create_force(self):
        import openmm as mm

        atoms = []
        for cv in self.cvs.sources:
            for row in cv.atoms.tolist():
                atoms += [a for a in row if a not in atoms]
        particle_of_atom = {a: i + 1 for i, a in enumerate(atoms)}
        force = mm.CustomCompoundBondForce(len(atoms), table_expression(self.cvs, particle_of_atom))
        force.addTabulatedFunction("nnbias_table", self._make_function(self.table_values()))
        force.addBond(atoms, [])
        force.setUsesPeriodicBoundaryConditions(False)
        force.setName("NeuralBias")
        # No probe global parameter here: OpenMM's reference CustomCompoundBondForce kernel (which the
        # CPU platform uses) appends the force's global parameter names to its list again each time
        # updateParametersInContext sees a changed table, and looks every entry up at every step, so
        # each push would make every later step slower (3-4x after 10 ns of pushes every 500 steps).
        # Presence in a Context is checked with updateParametersInContext instead (ForceBackend.contains).
        self.force = force
        self.function = force.getTabulatedFunction(0)
        return force

    def _set_parameters(self, payload: list) -> None:
        self.function.setFunctionParameters(*self._function_parameters(payload))


class CMAPBackend(_GridBackend):
    """Two torsion CVs (e.g. φ, ψ) through OpenMM's native ``CMAPTorsionForce``.

    The network is tabulated on a periodic ``bins × bins`` grid (angles ``i·2π/bins``, OpenMM's
    convention) and interpolated by OpenMM's bicubic CMAP kernel — the cheapest force per step,
    and ``updateParametersInContext`` only rebuilds the spline coefficients (a few ms), unlike a
    ``CustomCompoundBondForce`` that recompiles its expressions.

    Parameters
    ----------
    bins : int, optional
        Grid points per torsion (default 64).
    """

    name = "cmap"
    kind = "CMAP"

    def __init__(self, cvs, bias, bins=None):
        super().__init__(cvs, bias)
        from ..cvs import Torsion

        _check_expressible(cvs, self.name)
        kinds = [type(cv) for cv in cvs.sources for _ in range(cv.n_cvs)]
        if cvs.n_cvs != 2 or any(k is not Torsion for k in kinds):
            raise ValueError("the cmap backend needs exactly two Torsion CVs, got "
                             f"{[k.__name__ for k in kinds]}; use backend='table' or 'torch'")
        if isinstance(bins, (list, tuple)):
            if len(set(bins)) != 1:
                raise ValueError(f"the cmap backend uses one grid size for both torsions, got {bins}")
            bins = bins[0]
        self.bins = int(bins) if bins is not None else 64
        if self.bins < 8:
            raise ValueError(f"cmap grid needs at least 8 points per torsion, got {self.bins}")
        dtype = bias.layers[0].weight.dtype
        angles = torch.arange(self.bins, dtype=dtype) * (2 * math.pi / self.bins)
        first, second = torch.meshgrid(angles, angles, indexing="ij")
        # energy[i + size*j] ↔ (first = angle_i, second = angle_j): second CV slowest
        self.points = torch.stack([first.T.reshape(-1), second.T.reshape(-1)], dim=-1)
        self.force = None

    def create_force(self):
        import openmm as mm

        rows = [row for cv in self.cvs.sources for row in cv.atoms.tolist()]
        force = mm.CMAPTorsionForce()
        index = force.addMap(self.bins, self.table_values())
        force.addTorsion(index, *rows[0], *rows[1])
        force.setUsesPeriodicBoundaryConditions(False)
        force.setName("NeuralBias")
        self.force = force
        return force

    def _set_parameters(self, payload: list) -> None:
        self.force.setMapParameters(0, self.bins, payload)
