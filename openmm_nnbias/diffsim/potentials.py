"""Pure-torch potential energies for the differentiable simulator.

One calling convention, positions ``(..., N, 3)`` in nm → energies ``(...)`` in kJ/mol,
so the Langevin simulator and the adjoint treat peptides and model potentials alike:

* :class:`OpenMMTorchEnergy` re-implements a vacuum :class:`openmm.System`
  (harmonic bonds and angles, periodic torsions, ``NoCutoff`` non-bonded
  Coulomb + Lennard-Jones with exceptions) in torch, batched over replicas and
  differentiable to any order (forces, Hessian-vector products).
* the model potentials in torch, e.g. :class:`openmm_nnbias.systems.MuellerBrownEnergy`
  (the Müller-Brown potential on particle 0's ``(x, y)`` plus a ``0.5*kz*z**2`` restraint),
  and the neural potentials of :mod:`openmm_nnbias.systems.azobenzene` follow it.

Constraints
-----------
The torch simulator has no constraint solver (SHAKE/RATTLE would complicate the
adjoint). As the authors did, build the system *without* constraints
(``alanine_dipeptide(constraints=None)``) and integrate with dt = 1 fs.
:meth:`OpenMMTorchEnergy.from_system` raises ``ValueError`` for a System with
constraints unless ``ignore_constraints=True`` (then the constraints are only
recorded in :attr:`OpenMMTorchEnergy.constraints` and the bonds they replace
feel no force at all, because OpenMM removes constrained bonds from
``HarmonicBondForce``: do this only if you know what you are doing).

Units: nm, kJ/mol, e, amu.
"""

from __future__ import annotations

import math

import numpy as np
import openmm
import torch

__all__ = ["ONE_4PI_EPS0", "OpenMMTorchEnergy", "masses_from_system"]

#: Coulomb constant 1/(4π ε0) in kJ mol⁻¹ nm e⁻² (OpenMM's value).
ONE_4PI_EPS0 = 138.935456

_SUPPORTED = ("HarmonicBondForce", "HarmonicAngleForce", "PeriodicTorsionForce",
              "NonbondedForce", "CMMotionRemover")


def masses_from_system(system: openmm.System, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Particle masses of an OpenMM System as a ``(N,)`` tensor in amu.

    Parameters
    ----------
    system : openmm.System
        The system; every particle must have a positive mass.
    dtype : torch.dtype, optional
        Output dtype (default float64).

    Returns
    -------
    torch.Tensor
        Masses ``(N,)`` in amu.

    Raises
    ------
    ValueError
        If a particle has zero mass (virtual site or frozen atom); the torch
        simulator cannot integrate those.

    Examples
    --------
    >>> from openmm_nnbias.systems import mueller_brown
    >>> masses_from_system(mueller_brown().system).tolist()
    [1.0]
    """
    m = [system.getParticleMass(i).value_in_unit(openmm.unit.dalton) for i in range(system.getNumParticles())]
    bad = [i for i, v in enumerate(m) if not v > 0]
    if bad:
        raise ValueError(f"particles {bad[:10]} have zero mass (virtual sites or frozen atoms); "
                         "the differentiable simulator needs positive masses")
    return torch.tensor(m, dtype=dtype)


def _dihedral(p0, p1, p2, p3):
    """Dihedral angle, same sign convention as OpenMM (and the Torsion CV)."""
    b1, b2, b3 = p1 - p0, p2 - p1, p3 - p2
    n1 = torch.linalg.cross(b1, b2)
    n2 = torch.linalg.cross(b2, b3)
    y = torch.linalg.norm(b2, dim=-1) * (b1 * n2).sum(-1)
    x = (n1 * n2).sum(-1)
    return torch.atan2(y, x)


def _angle(p0, p1, p2):
    u, v = p0 - p1, p2 - p1
    return torch.atan2(torch.linalg.norm(torch.linalg.cross(u, v), dim=-1), (u * v).sum(-1))


class OpenMMTorchEnergy(torch.nn.Module):
    """Potential energy of a vacuum OpenMM System, in torch.

    Build it with :meth:`from_system`. ``forward(positions)`` maps
    ``(..., N, 3)`` nm → ``(...)`` kJ/mol in the dtype and on the device of
    ``positions`` (the parameter buffers are cast on the fly; call
    ``.to(device, dtype)`` once to avoid the casts).

    Terms: ``½k(r−r0)²`` bonds, ``½k(θ−θ0)²`` angles, ``k(1+cos(nφ−φ0))``
    torsions, and over all non-excluded pairs ``qq·ONE_4PI_EPS0/r +
    4ε((σ/r)¹²−(σ/r)⁶)`` with Lorentz–Berthelot ``σ=(σi+σj)/2``, ``ε=√(εiεj)``
    for normal pairs and the exception's own ``chargeProd, σ, ε`` for
    exceptions. Exceptions with zero ``chargeProd`` and ``ε`` (exclusions)
    contribute nothing.

    Attributes
    ----------
    n_particles : int
    constraints : list of (int, int, float)
        The System's constraints ``(i, j, distance_nm)``, recorded only.

    Examples
    --------
    >>> import openmm
    >>> s = openmm.System(); _ = s.addParticle(1.0); _ = s.addParticle(1.0)
    >>> hb = openmm.HarmonicBondForce(); _ = hb.addBond(0, 1, 0.1, 1000.0); _ = s.addForce(hb)
    >>> U = OpenMMTorchEnergy.from_system(s)
    >>> x = torch.tensor([[[0.0, 0.0, 0.0], [0.2, 0.0, 0.0]]], dtype=torch.float64)
    >>> round(float(U(x)[0]), 6)
    5.0
    """

    def __init__(self, n_particles: int, bonds, angles, torsions, pairs,
                 constraints=(), dtype: torch.dtype = torch.float64):
        super().__init__()
        self.n_particles = int(n_particles)
        self.constraints = list(constraints)

        def idx(rows, width):
            return torch.tensor([r[:width] for r in rows], dtype=torch.long).reshape(-1, width)

        def par(rows, start, n_par):
            return torch.tensor([r[start:] for r in rows], dtype=dtype).reshape(len(rows), n_par)

        self.register_buffer("bond_idx", idx(bonds, 2))
        self.register_buffer("bond_par", par(bonds, 2, 2))      # r0, k
        self.register_buffer("angle_idx", idx(angles, 3))
        self.register_buffer("angle_par", par(angles, 3, 2))    # theta0, k
        self.register_buffer("torsion_idx", idx(torsions, 4))
        self.register_buffer("torsion_par", par(torsions, 4, 3))  # n, phase, k
        self.register_buffer("pair_idx", idx(pairs, 2))
        self.register_buffer("pair_par", par(pairs, 2, 3))      # qq*ONE_4PI_EPS0, sigma, epsilon

    @classmethod
    def from_system(cls, system: openmm.System, ignore_constraints: bool = False,
                    dtype: torch.dtype = torch.float64) -> "OpenMMTorchEnergy":
        """Translate a vacuum :class:`openmm.System` into a torch module.

        Parameters
        ----------
        system : openmm.System
            Only HarmonicBondForce, HarmonicAngleForce, PeriodicTorsionForce,
            NonbondedForce (``NoCutoff``, no parameter offsets) and
            CMMotionRemover (ignored) are allowed.
        ignore_constraints : bool, optional
            Accept a System with constraints (they are recorded, not enforced).
            Default False: build the System with ``constraints=None`` instead.
        dtype : torch.dtype, optional
            Dtype of the parameter buffers (default float64).

        Returns
        -------
        OpenMMTorchEnergy

        Raises
        ------
        ValueError
            Naming the unsupported force class, a non-``NoCutoff`` non-bonded
            method, parameter offsets, periodic boxes, virtual sites, or
            constraints (unless ``ignore_constraints``).
        """
        if system.usesPeriodicBoundaryConditions():
            raise ValueError("periodic boxes are not supported: the torch energy (and the diffsim simulator, "
                             "which computes CVs without a box) is for vacuum systems; build the System "
                             "with NoCutoff and no periodic force")
        for i in range(system.getNumParticles()):
            if system.isVirtualSite(i):
                raise ValueError(f"particle {i} is a virtual site; virtual sites are not supported")
        constraints = []
        for k in range(system.getNumConstraints()):
            i, j, d = system.getConstraintParameters(k)
            constraints.append((int(i), int(j), float(d.value_in_unit(openmm.unit.nanometer))))
        if constraints and not ignore_constraints:
            raise ValueError(
                f"the System has {len(constraints)} constraints, which the torch simulator does not "
                "enforce; build it without constraints (e.g. alanine_dipeptide(constraints=None), "
                "dt = 1 fs) or pass ignore_constraints=True")
        nm, rad, kj = openmm.unit.nanometer, openmm.unit.radian, openmm.unit.kilojoule_per_mole
        bonds, angles, torsions, pairs = [], [], [], []
        n = system.getNumParticles()
        for force in system.getForces():
            name = type(force).__name__
            if name not in _SUPPORTED:
                raise ValueError(f"unsupported force class {name} (named {force.getName()!r}); "
                                 f"supported: {', '.join(_SUPPORTED)}")
            if name == "HarmonicBondForce":
                for b in range(force.getNumBonds()):
                    i, j, r0, k = force.getBondParameters(b)
                    bonds.append((i, j, r0.value_in_unit(nm), k.value_in_unit(kj / nm**2)))
            elif name == "HarmonicAngleForce":
                for a in range(force.getNumAngles()):
                    i, j, l, th0, k = force.getAngleParameters(a)
                    angles.append((i, j, l, th0.value_in_unit(rad), k.value_in_unit(kj / rad**2)))
            elif name == "PeriodicTorsionForce":
                for t in range(force.getNumTorsions()):
                    i, j, l, m, per, ph, k = force.getTorsionParameters(t)
                    torsions.append((i, j, l, m, float(per), ph.value_in_unit(rad), k.value_in_unit(kj)))
            elif name == "NonbondedForce":
                pairs += cls._nonbonded_pairs(force, n)
        return cls(n, bonds, angles, torsions, pairs, constraints, dtype=dtype)

    @staticmethod
    def _nonbonded_pairs(force: openmm.NonbondedForce, n: int) -> list:
        if force.getNonbondedMethod() != openmm.NonbondedForce.NoCutoff:
            raise ValueError(f"NonbondedForce {force.getName()!r} uses nonbonded method "
                             f"{force.getNonbondedMethod()}; only NoCutoff (0) is supported")
        if force.getNumParticleParameterOffsets() or force.getNumExceptionParameterOffsets():
            raise ValueError(f"NonbondedForce {force.getName()!r} has parameter offsets, "
                             "which are not supported")
        e, nm, kj = openmm.unit.elementary_charge, openmm.unit.nanometer, openmm.unit.kilojoule_per_mole
        q, sig, eps = np.zeros(n), np.zeros(n), np.zeros(n)
        for i in range(n):
            qi, si, ei = force.getParticleParameters(i)
            q[i], sig[i], eps[i] = qi.value_in_unit(e), si.value_in_unit(nm), ei.value_in_unit(kj)
        exceptions = {}
        for x in range(force.getNumExceptions()):
            i, j, qq, s, ep = force.getExceptionParameters(x)
            exceptions[(min(i, j), max(i, j))] = (qq.value_in_unit(e**2), s.value_in_unit(nm), ep.value_in_unit(kj))
        pairs = []
        for i in range(n):
            for j in range(i + 1, n):
                if (i, j) in exceptions:
                    qq, s, ep = exceptions[(i, j)]
                    if qq == 0.0 and ep == 0.0:
                        continue
                else:
                    qq, s, ep = q[i] * q[j], 0.5 * (sig[i] + sig[j]), math.sqrt(eps[i] * eps[j])
                if qq == 0.0 and ep == 0.0:
                    continue
                pairs.append((i, j, ONE_4PI_EPS0 * qq, s, ep))
        return pairs

    def _check(self, positions: torch.Tensor) -> None:
        if positions.ndim < 2 or positions.shape[-1] != 3 or positions.shape[-2] != self.n_particles:
            raise ValueError(f"expected positions of shape (..., {self.n_particles}, 3) in nm, "
                             f"got {tuple(positions.shape)}")

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        self._check(positions)
        x = positions
        like = dict(dtype=x.dtype, device=x.device)
        energy = torch.zeros(x.shape[:-2], **like)

        def atoms(table, col):
            return x.index_select(-2, table[:, col].to(x.device))

        if self.bond_idx.shape[0]:
            p = self.bond_par.to(**like)
            r = torch.linalg.norm(atoms(self.bond_idx, 1) - atoms(self.bond_idx, 0), dim=-1)
            energy = energy + (0.5 * p[:, 1] * (r - p[:, 0]) ** 2).sum(-1)
        if self.angle_idx.shape[0]:
            p = self.angle_par.to(**like)
            th = _angle(*(atoms(self.angle_idx, c) for c in range(3)))
            energy = energy + (0.5 * p[:, 1] * (th - p[:, 0]) ** 2).sum(-1)
        if self.torsion_idx.shape[0]:
            p = self.torsion_par.to(**like)
            phi = _dihedral(*(atoms(self.torsion_idx, c) for c in range(4)))
            energy = energy + (p[:, 2] * (1.0 + torch.cos(p[:, 0] * phi - p[:, 1]))).sum(-1)
        if self.pair_idx.shape[0]:
            p = self.pair_par.to(**like)
            r = torch.linalg.norm(atoms(self.pair_idx, 1) - atoms(self.pair_idx, 0), dim=-1)
            sr6 = (p[:, 1] / r) ** 6
            energy = energy + (p[:, 0] / r + 4.0 * p[:, 2] * (sr6 * sr6 - sr6)).sum(-1)
        return energy
