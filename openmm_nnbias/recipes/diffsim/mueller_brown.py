"""Ready-to-train DiffSim problems (potential, CVs, wells, start states, bias, trainer).

Müller–Brown in the authors' difficulty
---------------------------------------
Šípka et al. rescale the Müller–Brown surface to ``x' = 16x + 32``, ``y' = 16y + 8``
(Å) and multiply its energies by 0.0866 (→ kcal/mol), so the A → B barrier (over the
A/C saddle) is 106.04 × 0.0866 = 9.18 kcal/mol ≈ 15.4 k_BT at 300 K; they integrate
with dt = 1 fs, γ = 0.1 ps⁻¹, 6 000 steps. Here the surface keeps its native lengths
(1 MB length unit = 1 nm, :class:`~openmm_nnbias.systems.MuellerBrownEnergy`) and:

* ``energy_scale = 0.0866 × 4.184 = 0.36234`` kJ/mol per MB unit, T = 300 K: the same
  barrier, 38.42 kJ/mol = 15.40 k_BT (B → A: 9.81 k_BT);
* mass 2.56 amu: one MB length unit is 16 Å = 1.6 nm in the authors' frame and 1 nm here,
  and the dynamics is unchanged under ``L → L/1.6, m → 1.6² m`` (the time scale is
  ``L √(m/E)``). The authors' code (``rarediffsim``, ``MullerBrownNotebook2D``) uses mass
  **0.1 amu** on its Å scale, i.e. 0.1 × 1.6² = **0.256 amu** here: this setup's particle is
  10 × heavier than theirs (its dynamics √10 ≈ 3.2 × slower), a choice of this setup, not
  the authors' value. :func:`~openmm_nnbias.recipes.diffsim.mb_authors.mueller_brown_authors_setup`
  has their mass, 10 K thermostat, both directions and Gaussian-grid bias;
* dt = 1 fs, γ = 0.1 ps⁻¹ and the adjoint window K = 190 as the authors. The default
  trajectory is shorter (2 000 steps = 2 ps) and there are fewer replicas (64 instead of
  300) so that an epoch takes seconds on one CPU core; the unbiased success fraction
  is 0 at either length (the unbiased A → B rate is ~1e-6 ps⁻¹).

Reactant A ≈ (−0.558, 1.442), product B ≈ (0.623, 0.028) nm; wells are the 90 %
ellipsoids (:class:`Well`, p = 0.1) of short unbiased runs started in each minimum.
Those runs use a higher friction (10 ps⁻¹ by default) only to equilibrate faster: the
wells are equilibrium properties and do not depend on γ. Their frames (after
equilibration) are the pool of reactant start configurations.

Units: nm, ps, kJ/mol, amu, K.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from openmm_nnbias._units import KB
from openmm_nnbias.cvs import CVSet, Position

from openmm_nnbias.diffsim.setup import DiffSimSetup, assemble_setup, check_setup_arguments
from openmm_nnbias.systems.model_potentials import MuellerBrownEnergy

__all__ = ["mueller_brown_setup", "MB_ENERGY_SCALE", "MB_MASS", "MB_MINIMA", "MB_SADDLES"]

#: kJ/mol per Müller–Brown energy unit (authors' 0.0866 kcal/mol).
MB_ENERGY_SCALE = 0.0866 * 4.184
#: Particle mass in amu of this setup, 1.6² × 1 amu (the authors' is 0.1 amu = 0.256 here, see module docstring).
MB_MASS = 1.6 ** 2
#: Minima (x, y) in nm.
MB_MINIMA = {"A": (-0.5582, 1.4417), "B": (0.6235, 0.0280), "C": (-0.0500, 0.4667)}
#: Saddle points (x, y) in nm: A/C and C/B.
MB_SADDLES = {"AC": (-0.8220, 0.6243), "CB": (0.2124, 0.2930)}


def mueller_brown_setup(*, n_replicas: int = 64, n_steps: int = 2000, adjoint_steps: int = 190,
                        batch_size: int = 120, lr: float = 1e-3, hidden: Sequence[int] = (32, 32),
                        activation: str = "silu", temperature: float = 300.0, timestep: float = 0.001,
                        friction: float = 0.1, mass: float = MB_MASS, energy_scale: float = MB_ENERGY_SCALE,
                        well_replicas: int = 32, well_steps: int = 1500, well_friction: float = 10.0,
                        max_grad_norm: Optional[float] = None, seed: int = 0,
                        dtype: torch.dtype = torch.float64, device="cpu") -> DiffSimSetup:
    """Müller–Brown A → B at the authors' difficulty (15.4 k_BT barrier), ready to train.

    See the module docstring for the unit mapping. CVs are the particle's ``x`` and ``y``
    (nm, declared ranges [−1.5, 1.2] and [−0.2, 2.0]); the bias is a
    :class:`~openmm_nnbias.bias.NeuralBias` over them starting from B ≡ 0.

    Parameters
    ----------
    n_replicas, n_steps, adjoint_steps, batch_size : int, optional
        Replicas per epoch, trajectory length in steps, adjoint window K, pairs per
        mini-batch (defaults 64, 2000, 190, 120).
    lr : float, optional
        Adam learning rate (default 1e-3, the authors'; 3e-3 also reaches ~0.95
        success but grows a bias of several hundred kJ/mol in two epochs).
    hidden : sequence of int, optional
        Hidden widths of the bias network (default (32, 32)).
    activation : str, optional
        Smooth by default (``"silu"``) so that bias forces are continuous.
    temperature, timestep, friction : float, optional
        K, ps, 1/ps of the training dynamics (defaults 300, 0.001, 0.1).
    mass, energy_scale : float, optional
        amu and kJ/mol per MB unit (defaults :data:`MB_MASS`, :data:`MB_ENERGY_SCALE`).
    well_replicas, well_steps, well_friction : optional
        Unbiased well runs: replicas, steps (the first third is equilibration), 1/ps.
    max_grad_norm : float, optional
        Clip each mini-batch gradient (default off).
    seed : int, optional
        Seeds the well runs, the network initialization and the trainer.
    dtype : torch.dtype, optional
        float64 (default) or float32.
    device : str or torch.device, optional
        Simulation device (default ``"cpu"``).

    Returns
    -------
    DiffSimSetup

    Examples
    --------
    >>> setup = mueller_brown_setup(n_replicas=4, n_steps=50, adjoint_steps=10, well_replicas=4,
    ...                             well_steps=150)
    >>> round(setup.info["barrier_kT"], 1), setup.cvs.names
    (15.4, ['x', 'y'])
    >>> setup.trainer.train_epoch().success_fraction
    0.0
    """
    check_setup_arguments(dict(n_replicas=n_replicas, n_steps=n_steps, adjoint_steps=adjoint_steps,
                               batch_size=batch_size, well_replicas=well_replicas),
                          dict(temperature=temperature, timestep=timestep, mass=mass, energy_scale=energy_scale,
                               well_friction=well_friction), well_steps, dtype)
    device = torch.device(device)
    potential = MuellerBrownEnergy(energy_scale=float(energy_scale)).to(device)
    cvs = CVSet([Position(0, "x", -1.5, 1.2), Position(0, "y", -0.2, 2.0)]).to(device)
    masses = torch.tensor([float(mass)], dtype=dtype, device=device)

    def start(xy):
        return torch.tensor([[xy[0], xy[1], 0.0]], dtype=dtype, device=device)

    kT = KB * float(temperature)
    xy = torch.tensor([MB_MINIMA["A"], MB_MINIMA["B"], MB_SADDLES["AC"]], dtype=torch.float64)
    e = MuellerBrownEnergy(energy_scale=float(energy_scale))(torch.cat([xy, torch.zeros(3, 1, dtype=xy.dtype)],
                                                                       1)[:, None, :]).tolist()
    info = {"system": "mueller-brown", "energy_scale_kj_per_mol": float(energy_scale), "mass_amu": float(mass),
            "temperature_K": float(temperature), "kT_kj_per_mol": kT, "timestep_ps": float(timestep),
            "friction_per_ps": float(friction), "n_steps": int(n_steps), "n_replicas": int(n_replicas),
            "adjoint_steps": int(adjoint_steps), "barrier_kT": (e[2] - e[0]) / kT,
            "barrier_reverse_kT": (e[2] - e[1]) / kT, "reactant": "A", "product": "B"}
    setup = assemble_setup("mueller-brown", potential, cvs, masses, start(MB_MINIMA["A"]), start(MB_MINIMA["B"]),
                           temperature=temperature, timestep=timestep, friction=friction, n_steps=n_steps,
                           n_replicas=n_replicas, adjoint_steps=adjoint_steps, batch_size=batch_size, lr=lr,
                           hidden=hidden, activation=activation, well_replicas=well_replicas,
                           well_steps=well_steps, well_friction=well_friction, max_grad_norm=max_grad_norm,
                           seed=seed, dtype=dtype, info=info)
    setup.trainer.config.update({"mass": float(mass), "energy_scale": float(energy_scale)})
    return setup
