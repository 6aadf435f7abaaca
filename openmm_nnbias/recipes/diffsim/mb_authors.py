"""Müller–Brown in the authors' own 2-D setting (Šípka et al., ``rarediffsim``), like for like.

What their notebook ``MullerBrownNotebook2D`` and modules do (TorchMD/AKMA units: Å,
kcal/mol, amu, time unit 48.888 fs), and what it is here (nm, kJ/mol, amu, ps):

* **Surface** (``models/simpleMB.py``): ``x' = 16x + 32``, ``y' = 16y + 8`` Å and energies
  ×0.0866 → kcal/mol (their prefactors are rounded to three digits, e.g. A₁ = −17.3 instead
  of −17.32). Here 1 MB length unit = 1 nm and ``energy_scale`` = 0.0866 × 4.184 kJ/mol.
* **Mass** 0.1 amu on their Å scale. One MB unit is 16 Å = 1.6 nm there and 1 nm here;
  the dynamics is unchanged under ``L → L/1.6``, ``m → 1.6² m`` (time scale
  ``L √(m/E)``), so their particle is 0.1 × 1.6² = **0.256 amu** here.
* **Temperatures**: thermostat at 10 K; start velocities rescaled to the kinetic energy
  of 300 K. Here they are drawn from Maxwell–Boltzmann at 300 K (same mean).
  A → B barrier 38.4 kJ/mol = 462 k_BT at 10 K (15.4 k_BT at 300 K); with γ = 0.1 ps⁻¹ the
  start heat decays as ``exp(−2γt)``, to 30 % after 6 ps.
* **Integrator**: dt 1 fs, γ 0.1 ps⁻¹, 6 000 steps, adjoint window 190, mini-batches of 120.
* **Replicas**: 300 from each basin, trained together (A → B and B → A).
  Start points A₀ = (23, 30) Å, B₀ = (40, 9) Å = (−0.5625, 1.375), (0.5, 0.0625) nm.
* **Wells**: covariance of a 4 200-step unbiased run of 300 replicas per basin from A₀/B₀
  (10 K thermostat, hot start), 90 % ellipses (χ², p = 0.1). The authors centre them on
  the partner replica's start point, here on the run's mean.
  Start pool: frames of that run between steps 300 and 1 000 (their starts are positions
  after 300 unbiased steps).
* **Bias** (``models/gaussian_models.py``): 50 × 50 Gaussians, centres ``linspace(−8.7, 55)``
  Å on both axes, σ² = 9 Å², heights 0.01 kcal/mol, trained. Here centres
  x ∈ [−2.54375, 1.4375], y ∈ [−1.04375, 2.9375] nm, σ = 0.1875 nm, heights 0.04184 kJ/mol
  (:class:`~openmm_nnbias.diffsim.gaussian_grid.GaussianGridBias`).
* **Optimizer**: Adam, lr = 50 × 20 / 1e4 / 300 / 10 = 3.33e-5 kcal/mol = 1.395e-4 kJ/mol per
  step; adjoints ×1e4. Here ``loss_scale = 1e4 × 256 × 2n`` (their Å² loss summed over the
  2n replicas vs our nm² mean), which only matters through Adam's ε.

Not reproduced: their loss has two more terms (the distance of each trajectory, after
step 200, to its own start state, and for trajectories that have not met it, the distance
to the nearest point of a trajectory of the other direction); here each replica has the
Eq. 5 loss toward its target well only. Success is the same criterion (a frame inside the
target ellipse), counted over all 2n replicas and per direction.

Units: nm, ps, kJ/mol, amu, K.
"""

from __future__ import annotations

from typing import Optional

import torch

from openmm_nnbias._units import KB
from openmm_nnbias.cvs import CVSet, Position

from openmm_nnbias.diffsim.bidirectional import BidirectionalDiffSimTrainer
from openmm_nnbias.diffsim.gaussian_grid import GaussianGridBias
from openmm_nnbias.diffsim.langevin import LangevinSimulator
from openmm_nnbias.diffsim.setup import DiffSimSetup, check_setup_arguments
from openmm_nnbias.diffsim.training import maxwell_boltzmann_velocities
from openmm_nnbias.diffsim.wells import Well
from openmm_nnbias.systems.model_potentials import MuellerBrownEnergy

__all__ = ["mueller_brown_authors_setup", "MBA_MASS", "MBA_STARTS", "MBA_GRID", "MBA_LR", "MBA_ENERGY_SCALE"]

#: Length of one MB unit in the authors' frame (16 Å) over ours (1 nm).
_LENGTH_RATIO = 1.6
#: kJ/mol per MB energy unit (0.0866 kcal/mol).
MBA_ENERGY_SCALE = 0.0866 * 4.184
#: Particle mass in amu: the authors' 0.1 amu at 16 Å per MB unit, 0.1 × 1.6².
MBA_MASS = 0.1 * _LENGTH_RATIO ** 2
#: Authors' start points A₀ = (23, 30) Å and B₀ = (40, 9) Å, in nm.
MBA_STARTS = {"A": ((23.0 - 32.0) / 16.0, (30.0 - 8.0) / 16.0), "B": ((40.0 - 32.0) / 16.0, (9.0 - 8.0) / 16.0)}
#: Gaussian grid: first/last centre (nm), points per axis, σ (nm), initial height (kJ/mol).
MBA_GRID = {"lower": ((-8.7 - 32.0) / 16.0, (-8.7 - 8.0) / 16.0), "upper": ((55.0 - 32.0) / 16.0, (55.0 - 8.0) / 16.0),
            "points": 50, "sigma": 3.0 / 16.0, "height": 0.01 * 4.184}
#: Adam learning rate in kJ/mol per step (authors' 3.33e-5 kcal/mol).
MBA_LR = 50 * 20.0 / 1e4 / 300 / 10 * 4.184


def _hot_well_run(potential, masses, start, cvs, *, temperature, start_temperature, timestep, friction,
                  n_replicas, n_steps, pool_steps, seed):
    """Authors' well protocol: unbiased run from one point, hot start; returns (well, pool)."""
    gen = torch.Generator(device=masses.device).manual_seed(int(seed))
    sim = LangevinSimulator(potential, masses, temperature, timestep, friction, generator=gen)
    R0 = start[None].repeat(int(n_replicas), 1, 1)
    V0 = maxwell_boltzmann_velocities(masses, start_temperature, int(n_replicas), generator=gen)
    traj = sim.run(R0, V0, int(n_steps), record_every=10)
    keep = traj.steps >= 10
    with torch.no_grad():
        s = cvs(traj.positions[keep].reshape(-1, masses.shape[0], 3))
    in_pool = (traj.steps >= pool_steps[0]) & (traj.steps <= pool_steps[1])
    return Well.from_samples(s, p=0.1, period=cvs.period()), traj.positions[in_pool].reshape(-1, masses.shape[0], 3)


def mueller_brown_authors_setup(*, n_replicas: int = 300, n_steps: int = 6000, adjoint_steps: int = 190,
                                batch_size: int = 120, lr: float = MBA_LR, temperature: float = 10.0,
                                start_temperature: float = 300.0, timestep: float = 0.001, friction: float = 0.1,
                                mass: float = MBA_MASS, energy_scale: float = MBA_ENERGY_SCALE,
                                grid_points: int = 50, loss_scale: Optional[float] = None,
                                well_replicas: int = 300, well_steps: int = 4200, seed: int = 0,
                                dtype: torch.dtype = torch.float32, device="cpu") -> DiffSimSetup:
    """The authors' 2-D Müller–Brown DiffSim problem (both directions, Gaussian grid), ready to train.

    See the module docstring for every number and its source.

    Parameters
    ----------
    n_replicas : int, optional
        Replicas *per direction* (300; the batch holds 2 × 300).
    n_steps, adjoint_steps, batch_size : int, optional
        Steps per trajectory (6 000), adjoint window K (190), pairs per mini-batch (120).
    lr : float, optional
        Adam learning rate, kJ/mol per step (:data:`MBA_LR` = 1.395e-4).
    temperature, start_temperature : float, optional
        Thermostat (10 K) and start-velocity temperature (300 K).
    timestep, friction : float, optional
        ps and 1/ps (0.001, 0.1).
    mass, energy_scale : float, optional
        amu (:data:`MBA_MASS` = 0.256) and kJ/mol per MB unit (:data:`MBA_ENERGY_SCALE`).
    grid_points : int, optional
        Gaussians per axis (50) over the authors' grid bounds (:data:`MBA_GRID`).
    loss_scale : float, optional
        Default ``1e4 × 256 × 2 n_replicas`` (see module docstring).
    well_replicas, well_steps : int, optional
        Unbiased well runs per basin (300 replicas, 4 200 steps; ``well_steps`` ≥ 1 000).
    seed : int, optional
        Seeds the well runs and the trainer.
    dtype : torch.dtype, optional
        float32 (default, as the authors) or float64.
    device : str or torch.device, optional

    Returns
    -------
    DiffSimSetup
        ``trainer`` is a :class:`~openmm_nnbias.diffsim.bidirectional.BidirectionalDiffSimTrainer`;
        ``start_positions`` is the A pool (``trainer.product_pool`` the B pool).

    Examples
    --------
    >>> s = mueller_brown_authors_setup(n_replicas=2, n_steps=20, adjoint_steps=5, grid_points=5,
    ...                                 well_replicas=4, well_steps=1000)
    >>> s.trainer.n_replicas, round(s.info["mass_amu"], 3), round(s.info["barrier_kT"])
    (4, 0.256, 462)
    """
    check_setup_arguments(dict(n_replicas=n_replicas, n_steps=n_steps, adjoint_steps=adjoint_steps,
                               batch_size=batch_size, well_replicas=well_replicas, grid_points=grid_points),
                          dict(temperature=temperature, start_temperature=start_temperature, timestep=timestep,
                               mass=mass, energy_scale=energy_scale, lr=lr), 30, dtype)
    if int(well_steps) < 1000:
        raise ValueError(f"well_steps must be >= 1000 (the start pool is steps 300-1000), got {well_steps!r}")
    device = torch.device(device)
    potential = MuellerBrownEnergy(energy_scale=float(energy_scale)).to(device)
    cvs = CVSet([Position(0, "x", -1.5, 1.2), Position(0, "y", -0.2, 2.0)]).to(device)
    masses = torch.tensor([float(mass)], dtype=dtype, device=device)
    runs = {}
    for k, name in enumerate(("A", "B")):
        start = torch.tensor([[MBA_STARTS[name][0], MBA_STARTS[name][1], 0.0]], dtype=dtype, device=device)
        runs[name] = _hot_well_run(potential, masses, start, cvs, temperature=float(temperature),
                                   start_temperature=float(start_temperature), timestep=float(timestep),
                                   friction=float(friction), n_replicas=int(well_replicas),
                                   n_steps=int(well_steps), pool_steps=(300, 1000), seed=int(seed) + k)
    (well_a, pool_a), (well_b, pool_b) = runs["A"], runs["B"]
    bias = GaussianGridBias(MBA_GRID["lower"], MBA_GRID["upper"], int(grid_points), MBA_GRID["sigma"],
                            height=MBA_GRID["height"], lower=cvs.lower, upper=cvs.upper, dtype=dtype).to(device)
    scale = 1e4 * 16.0 ** 2 * 2 * int(n_replicas) if loss_scale is None else float(loss_scale)
    trainer = BidirectionalDiffSimTrainer(potential, cvs, bias, masses, well_a, well_b, pool_a, pool_b,
                                          n_replicas=int(n_replicas), start_temperature=float(start_temperature),
                                          loss_scale=scale, temperature=float(temperature),
                                          timestep=float(timestep), friction=float(friction), n_steps=int(n_steps),
                                          adjoint_steps=int(adjoint_steps), batch_size=int(batch_size),
                                          lr=float(lr), seed=int(seed))
    kT = KB * float(temperature)
    xy = torch.tensor([[-0.5582, 1.4417], [0.6235, 0.0280], [-0.8220, 0.6243]], dtype=torch.float64)
    e = MuellerBrownEnergy(energy_scale=float(energy_scale))(
        torch.cat([xy, torch.zeros(3, 1, dtype=xy.dtype)], 1)[:, None, :]).tolist()
    info = {"system": "mueller-brown-authors", "energy_scale_kj_per_mol": float(energy_scale),
            "mass_amu": float(mass), "temperature_K": float(temperature),
            "start_temperature_K": float(start_temperature), "kT_kj_per_mol": kT, "timestep_ps": float(timestep),
            "friction_per_ps": float(friction), "n_steps": int(n_steps), "n_replicas_per_direction": int(n_replicas),
            "adjoint_steps": int(adjoint_steps), "barrier_kT": (e[2] - e[0]) / kT,
            "barrier_reverse_kT": (e[2] - e[1]) / kT, "grid_points": int(grid_points), "lr": float(lr),
            "loss_scale": scale, "reactant": "A", "product": "B", "n_start_configurations": int(pool_a.shape[0]),
            "seed": int(seed)}
    trainer.config.update({"system": "mueller-brown-authors", "mass": float(mass), "energy_scale": float(energy_scale)})
    return DiffSimSetup(name="mueller-brown-authors", trainer=trainer, potential=potential, cvs=cvs, bias=bias,
                        masses=masses, reactant_well=well_a, product_well=well_b, start_positions=pool_a,
                        temperature=float(temperature), info=info)
