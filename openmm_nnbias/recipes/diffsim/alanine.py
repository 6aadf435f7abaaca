"""DiffSim problem for alanine dipeptide: C5 → C7ax in vacuum at 300 K (shared parts in :mod:`openmm_nnbias.diffsim.setup`).

System
------
Ace-Ala-Nme, Amber99SB, vacuum, no cutoff (:func:`openmm_nnbias.systems.alanine_peptide`),
converted to torch by :meth:`OpenMMTorchEnergy.from_system`.

* **Constraints**: none. The torch simulator has no constraint solver, so the System is
  built with ``constraints=None`` (flexible X–H bonds) and integrated with dt = 1 fs, as
  the authors did. The OpenMM cross-check must use this same System (see
  :func:`alanine_dipeptide_vacuum`), not the package's default ``HBonds`` one.
* **CMMotionRemover**: removed from the System. The torch simulator does not remove the
  centre-of-mass motion, so OpenMM runs of the same System follow the same dynamics.
* **Thermostat**: γ = 1 ps⁻¹, dt = 1 fs, T = 300 K by default, the settings an OpenMM
  ``LangevinMiddleIntegrator(300 K, 1/ps, 1 fs)`` uses in the cross-check. The torch
  scheme (``V ← V + dt(F/M − γV) + √(2γk_BT dt/M) ξ`` after ``R ← R + V dt``) is the
  leapfrog form of the same Langevin equation; its friction factor ``1 − γdt`` differs from
  OpenMM's exact ``e^{−γdt}`` by ``(γdt)²/2 = 5e-7`` per step.

States and wells
----------------
Reactant C5 (φ, ψ) ≈ (−2.43, 2.41) rad, product C7ax ≈ (1.10, −1.06) rad (the authors'
values). Each is built at these torsions and energy-minimized; a short unbiased run from
each minimum gives a 90 % covariance ellipsoid in (φ, ψ) with circular means and wrapped
deviations (:meth:`Well.from_samples` with period 2π). Frames of the C5 run after
equilibration are the pool of start configurations (at 300 K the C5 basin exchanges with
C7eq within picoseconds, so the pool and the reactant well cover both).

The bias is a :class:`~openmm_nnbias.bias.NeuralBias` over (φ, ψ) (cos/sin features,
smooth ``silu`` activation, B ≡ 0 at the start); trajectories are 10 ps (10 000 steps).

Units: nm, ps, kJ/mol, amu, K, rad.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import openmm
import torch

from openmm_nnbias._units import KB
from openmm_nnbias.cvs import CVSet, Torsion

from openmm_nnbias.diffsim.potentials import OpenMMTorchEnergy, masses_from_system
from openmm_nnbias.diffsim.setup import DiffSimSetup, assemble_setup, check_setup_arguments

__all__ = ["ALA2_C5", "ALA2_C7AX", "alanine_dipeptide_vacuum", "alanine_dipeptide_setup"]

#: Reactant C5 (φ, ψ) in rad.
ALA2_C5: Tuple[float, float] = (-2.43, 2.41)
#: Product C7ax (φ, ψ) in rad.
ALA2_C7AX: Tuple[float, float] = (1.10, -1.06)


def alanine_dipeptide_vacuum(phi_psi: Sequence[float] = ALA2_C5, minimize: bool = True, seed: int = 0):
    """Alanine dipeptide for DiffSim: no constraints, no CMMotionRemover, minimized near ``phi_psi``.

    Parameters
    ----------
    phi_psi : (float, float), optional
        Start torsions (rad) before minimization (default C5).
    minimize : bool, optional
        Energy-minimize (default True).
    seed : int, optional
        Seed of the hydrogen placement (:func:`~openmm_nnbias.systems.alanine_peptide`).

    Returns
    -------
    openmm_nnbias.systems.PeptideSystem
        Its ``system`` is what the torch potential is built from and what OpenMM runs
        of the trained bias must use.

    Examples
    --------
    >>> pep = alanine_dipeptide_vacuum()
    >>> pep.system.getNumConstraints(), [type(f).__name__ for f in pep.system.getForces()].count("CMMotionRemover")
    (0, 0)
    """
    from openmm_nnbias.systems import alanine_peptide

    if len(phi_psi) != 2 or not all(math.isfinite(float(v)) for v in phi_psi):
        raise ValueError(f"phi_psi must be two finite angles in rad, got {phi_psi!r}")
    deg = tuple(math.degrees(float(v)) for v in phi_psi)
    pep = alanine_peptide(1, constraints=None, phi_psi=[deg], minimize=minimize, seed=seed)
    for i in reversed(range(pep.system.getNumForces())):
        if isinstance(pep.system.getForce(i), openmm.CMMotionRemover):
            pep.system.removeForce(i)
    return pep


def alanine_dipeptide_setup(*, n_replicas: int = 32, n_steps: int = 10000, adjoint_steps: int = 190,
                            batch_size: int = 120, lr: float = 3e-3, hidden: Sequence[int] = (32, 32),
                            activation: str = "silu", temperature: float = 300.0, timestep: float = 0.001,
                            friction: float = 1.0, well_replicas: int = 16, well_steps: int = 3000,
                            well_friction: float = 1.0, max_grad_norm: Optional[float] = None,
                            storage: str = "window", seed: int = 0, dtype: torch.dtype = torch.float64,
                            device="cpu") -> DiffSimSetup:
    """Alanine dipeptide C5 → C7ax in vacuum (Amber99SB, 300 K), ready to train.

    See the module docstring for constraints, thermostat and wells.

    Parameters
    ----------
    n_replicas, n_steps, adjoint_steps, batch_size : int, optional
        Replicas per epoch (32), trajectory length in steps (10 000 = 10 ps), adjoint
        window K (190) and pairs per mini-batch (120).
    lr : float, optional
        Adam learning rate (3e-3; 1e-2 gives a ±200 kJ/mol bias after one epoch).
    hidden : sequence of int, optional
        Hidden widths of the bias network (default (32, 32)).
    activation : str, optional
        Default ``"silu"`` (continuous bias forces).
    temperature, timestep, friction : float, optional
        K, ps, 1/ps (300, 0.001, 1.0); use the same in OpenMM's ``LangevinMiddleIntegrator``.
    well_replicas, well_steps, well_friction : optional
        Unbiased well runs from each minimum: replicas (16), steps (3000; the first third is
        equilibration, frames every 10 steps are kept), friction in 1/ps (1.0).
    storage : {"window", "full"}, optional
        Trainer frame storage (default ``"window"``: memory independent of ``n_steps``).
    max_grad_norm, seed, dtype, device : optional
        As in :func:`~openmm_nnbias.recipes.diffsim.mueller_brown_setup`: mini-batch gradient
        clipping (default off), seed of the well runs, network and trainer, float64 (default)
        or float32, simulation device (default ``"cpu"``).

    Returns
    -------
    DiffSimSetup
        ``info["c5_phi_psi"]``/``info["c7ax_phi_psi"]`` are the minimized structures' torsions.

    Examples
    --------
    >>> setup = alanine_dipeptide_setup(n_replicas=2, n_steps=20, adjoint_steps=5, well_replicas=2,
    ...                                 well_steps=90)
    >>> setup.cvs.names, setup.info["constraints"]
    (['phi', 'psi'], 'none (flexible bonds, dt = 1 fs)')
    >>> setup.trainer.train_epoch().success_fraction
    0.0
    """
    check_setup_arguments(dict(n_replicas=n_replicas, n_steps=n_steps, adjoint_steps=adjoint_steps,
                               batch_size=batch_size, well_replicas=well_replicas),
                          dict(temperature=temperature, timestep=timestep, friction=friction,
                               well_friction=well_friction, lr=lr), well_steps, dtype)
    if float(timestep) > 0.0015:
        raise ValueError(f"timestep {timestep} ps is too long for flexible X-H bonds; use <= 0.0015 ps")
    device = torch.device(device)
    c5, c7ax = alanine_dipeptide_vacuum(ALA2_C5, seed=seed), alanine_dipeptide_vacuum(ALA2_C7AX, seed=seed)
    potential = OpenMMTorchEnergy.from_system(c5.system, dtype=dtype).to(device)
    masses = masses_from_system(c5.system, dtype=dtype).to(device)
    cvs = CVSet([Torsion(c5.torsions["phi"], "phi"), Torsion(c5.torsions["psi"], "psi")]).to(device)

    def start(pep):
        return torch.tensor(pep.positions.value_in_unit(openmm.unit.nanometer), dtype=dtype, device=device)

    with torch.no_grad():
        tors = cvs(torch.stack([start(c5), start(c7ax)])).tolist()
    kj = openmm.unit.kilojoule_per_mole
    info = {"system": "alanine-dipeptide", "forcefield": "amber99sb.xml, vacuum, NoCutoff",
            "constraints": "none (flexible bonds, dt = 1 fs)", "cm_motion_remover": False,
            "temperature_K": float(temperature), "kT_kj_per_mol": KB * float(temperature),
            "timestep_ps": float(timestep), "friction_per_ps": float(friction), "n_steps": int(n_steps),
            "trajectory_ps": int(n_steps) * float(timestep), "n_replicas": int(n_replicas),
            "adjoint_steps": int(adjoint_steps), "reactant": "C5", "product": "C7ax",
            "c5_phi_psi": tors[0], "c7ax_phi_psi": tors[1],
            "c5_energy_kj_per_mol": c5.potential_energy.value_in_unit(kj),
            "c7ax_energy_kj_per_mol": c7ax.potential_energy.value_in_unit(kj)}
    return assemble_setup("alanine-dipeptide", potential, cvs, masses, start(c5), start(c7ax),
                          temperature=temperature, timestep=timestep, friction=friction, n_steps=n_steps,
                          n_replicas=n_replicas, adjoint_steps=adjoint_steps, batch_size=batch_size, lr=lr,
                          hidden=hidden, activation=activation, well_replicas=well_replicas,
                          well_steps=well_steps, well_friction=well_friction, max_grad_norm=max_grad_norm,
                          seed=seed, dtype=dtype, info=info, storage=storage)
