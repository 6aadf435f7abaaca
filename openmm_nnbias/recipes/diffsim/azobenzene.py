"""DiffSim problem for azobenzene: cis → trans in the electronic ground state, vacuum, on SevenNet-0.

The molecular example of Šípka et al. 2023 (section 4.2). Their potential (Axelrod et al.
2022) is not available here; the energy is the bundled universal model SevenNet-0
(:class:`~openmm_nnbias.systems.azobenzene.SevenNetEnergy`), chosen over CHGNet by
``benchmarks/azobenzene_potentials.py`` (see ``benchmarks/RESULTS.md``: both are materials
models). On SevenNet-0, ΔE(cis − trans) = 0.38 eV (literature 0.5–0.6) but the relaxed
rotation path rises only ≈ 0.13 eV above cis (literature ≈ 1 eV) and inversion 0.42 eV:
a bias trained here learns SevenNet's azobenzene, not the real one.

System
------
C12H10N2 (24 atoms) from the coordinates stored in :mod:`openmm_nnbias.systems.azobenzene.molecule` (no downloads), in
vacuum, no constraints (flexible C–H bonds), no centre-of-mass motion removal.

* **Minima**: the stored trans and cis structures are displaced by a seeded 0.001 nm
  (to leave the symmetric planar stationary points) and minimized on the potential
  (:func:`minimize_positions`, L-BFGS).
* **CVs**: the CNNC dihedral (3, 6, 7, 8) (rotation, periodic, rad) and the N6=N7–C8 angle
  (inversion, rad), the paper's two descriptors
  (:func:`azobenzene_cvs`, :class:`~openmm_nnbias.cvs.Torsion` and
  :class:`~openmm_nnbias.cvs.Angle`).
* **Wells**: 90 % ellipsoids of short unbiased runs from each minimum (first third dropped
  as equilibration, as for the other setups, :func:`~openmm_nnbias.diffsim.setup.unbiased_well_run`);
  the frames of the cis run are the pool of start configurations.
* **Dynamics**: T = 300 K (the paper's first stage; its second stage refines at 1 000 K),
  γ = 1 ps⁻¹, dt = 0.5 fs (flexible C–H bonds on a neural potential).

The settings of ``openmm-nnbias diffsim --system azobenzene`` per ``--potential`` (sizes, time step,
stages) are :data:`AZOBENZENE_DEFAULTS`.

Units: nm, ps, kJ/mol, amu, K, rad.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable, Optional, Sequence, Tuple

import torch

from openmm_nnbias.bias import NeuralBias
from openmm_nnbias.cvs import Angle, CVSet, Torsion

from openmm_nnbias._units import KB
from openmm_nnbias.diffsim.training import DiffSimTrainer
from openmm_nnbias.systems.azobenzene.molecule import (AZOBENZENE_MASSES, AZOBENZENE_NUMBERS, CNNC_DIHEDRAL, NNC_ANGLE,
                                                     azobenzene_positions)

if TYPE_CHECKING:
    from openmm_nnbias.diffsim.setup import DiffSimSetup

__all__ = ["azobenzene_cvs", "minimize_positions", "azobenzene_setup", "AZOBENZENE_CLI", "AZOBENZENE_STAGES",
           "AZOBENZENE_MLP_CLI", "AZOBENZENE_MLP_STAGES", "AZOBENZENE_DEFAULTS", "AZOBENZENE_DEFAULT_POTENTIAL",
           "AZOBENZENE_LEGACY_POTENTIAL", "azobenzene_defaults_help"]


def azobenzene_cvs() -> CVSet:
    """The paper's descriptors: CNNC dihedral (``"cnnc"``) and N=N–C angle (``"nnc"``), in rad.

    Examples
    --------
    >>> cvs = azobenzene_cvs()
    >>> cvs.names, [round(v, 2) for v in cvs(azobenzene_positions("trans")).tolist()]
    (['cnnc', 'nnc'], [3.14, 1.93])
    """
    return CVSet([Torsion(list(CNNC_DIHEDRAL), "cnnc"), Angle(list(NNC_ANGLE), names="nnc")])


def minimize_positions(potential: Callable[[torch.Tensor], torch.Tensor], positions: torch.Tensor,
                       max_steps: int = 300, force_tolerance: float = 10.0) -> Tuple[torch.Tensor, float, float]:
    """Minimize one structure with L-BFGS (strong-Wolfe line search).

    Parameters
    ----------
    potential : callable
        ``(B, N, 3)`` nm → ``(B,)`` kJ/mol, differentiable.
    positions : torch.Tensor
        ``(N, 3)`` start in nm (not modified).
    max_steps : int, optional
        Maximum energy evaluations (default 300).
    force_tolerance : float, optional
        Stop when every force component is below this, kJ/mol/nm (default 10 ≈ 0.01 eV/Å).

    Returns
    -------
    positions : torch.Tensor
        ``(N, 3)`` minimized positions (nm), detached.
    energy : float
        kJ/mol.
    max_force : float
        Largest force component at the end, kJ/mol/nm.

    Raises
    ------
    TypeError
        If ``positions`` is not a tensor.
    ValueError
        If ``positions`` is not ``(N, 3)``, ``max_steps < 1`` or ``force_tolerance <= 0``.

    Examples
    --------
    >>> U = lambda x: 100.0 * ((x - 1.0) ** 2).sum((-2, -1))
    >>> x, e, f = minimize_positions(U, torch.zeros(2, 3, dtype=torch.float64))
    >>> round(e, 8), bool(f < 10.0)
    (0.0, True)
    """
    if not isinstance(positions, torch.Tensor):
        raise TypeError(f"positions must be a torch.Tensor (N, 3) in nm, got {type(positions).__name__}")
    if positions.ndim != 2 or positions.shape[-1] != 3:
        raise ValueError(f"positions must have shape (N, 3) in nm, got {tuple(positions.shape)}")
    if int(max_steps) < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps!r}")
    if not (math.isfinite(float(force_tolerance)) and float(force_tolerance) > 0):
        raise ValueError(f"force_tolerance must be positive (kJ/mol/nm), got {force_tolerance!r}")
    x = positions.detach().clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=int(max_steps), max_eval=int(max_steps),
                            tolerance_grad=float(force_tolerance), tolerance_change=1e-14, history_size=50,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        energy = potential(x[None])[0]
        energy.backward()
        return energy

    with torch.enable_grad():
        opt.step(closure)
        x.grad = None
        energy = potential(x[None])[0]
        (grad,) = torch.autograd.grad(energy, x)
    return x.detach(), float(energy.detach()), float(grad.abs().max())


def _check_setup_args(ints: dict, positives: dict, timestep: float, dtype) -> None:
    small = [name for name, v in ints.items() if int(v) < 1]
    if small:
        raise ValueError(f"{small[0]} must be >= 1, got {ints[small[0]]!r}")
    bad = [name for name, v in positives.items() if not (math.isfinite(float(v)) and float(v) > 0)]
    if bad:
        raise ValueError(f"{bad[0]} must be positive and finite, got {positives[bad[0]]!r}")
    if float(timestep) > 0.001:
        raise ValueError(f"timestep {timestep} ps is too long for flexible C-H bonds; use <= 0.001 ps")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")


def azobenzene_setup(*, potential: Optional[torch.nn.Module] = None, model: str = "7net-0",
                     n_replicas: int = 16, n_steps: int = 4000, adjoint_steps: int = 190, batch_size: int = 120,
                     lr: float = 3e-3, hidden: Sequence[int] = (32, 32), activation: str = "silu",
                     temperature: float = 300.0, timestep: float = 0.0005, friction: float = 1.0,
                     well_replicas: int = 4, well_steps: int = 600, well_friction: float = 10.0,
                     minimize_steps: int = 300, max_grad_norm: Optional[float] = None, storage: str = "window",
                     seed: int = 0, dtype: torch.dtype = torch.float64, device="cpu") -> "DiffSimSetup":
    """Azobenzene cis → trans in vacuum on a neural potential, ready to train.

    See the module docstring for the minima, CVs, wells and dynamics.

    Parameters
    ----------
    potential : torch.nn.Module, optional
        Energy ``(B, 24, 3)`` nm → ``(B,)`` kJ/mol in the atom order of :mod:`openmm_nnbias.systems.azobenzene.molecule`;
        default a new ``SevenNetEnergy(AZOBENZENE_NUMBERS, model=model, dtype=dtype)``
        (pass one to reuse a loaded model).
    model : str, optional
        SevenNet model when ``potential`` is None (default ``"7net-0"``).
    n_replicas, n_steps, adjoint_steps, batch_size : int, optional
        Replicas per epoch (16), trajectory length in steps (4 000 = 2 ps), adjoint window K
        (190) and pairs per mini-batch (120).
    lr : float, optional
        Adam learning rate (3e-3; the paper's first stage uses a relatively high one).
    hidden : sequence of int, optional
        Hidden widths of the bias network (default (32, 32)).
    activation : str, optional
        Default ``"silu"`` (continuous bias forces).
    temperature, timestep, friction : float, optional
        K, ps, 1/ps (300, 0.0005, 1.0).
    well_replicas, well_steps, well_friction : optional
        Unbiased well runs from each minimum: replicas (4), steps (600; the first third is
        equilibration, frames every 10 steps are kept), friction in 1/ps (10: the wells are
        equilibrium properties, a stronger friction only equilibrates faster).
    minimize_steps : int, optional
        L-BFGS energy evaluations per minimum (300).
    max_grad_norm, storage : optional
        Passed to :class:`~openmm_nnbias.diffsim.DiffSimTrainer` (no clipping; ``"window"``).
    seed : int, optional
        Seeds the symmetry-breaking displacement, the well runs, the network and the trainer.
    dtype, device : optional
        Simulation dtype (float64 or float32; default float64) and device (default CPU).

    Returns
    -------
    DiffSimSetup
        ``info`` holds the minimized energies (kJ/mol and eV), ΔE(cis − trans), the CVs of
        both minima and the largest remaining force component.

    Raises
    ------
    ImportError
        If ``potential`` is None and ``sevenn`` is not installed.
    ValueError
        For a non-positive size, rate or temperature, ``timestep > 0.001`` ps,
        ``well_steps < 30`` or an unsupported dtype.
    """
    from openmm_nnbias.diffsim.setup import DiffSimSetup, unbiased_well_run
    from openmm_nnbias.systems.azobenzene.sevennet import EV_TO_KJ_PER_MOL, SevenNetEnergy

    _check_setup_args(dict(n_replicas=n_replicas, n_steps=n_steps, adjoint_steps=adjoint_steps,
                           batch_size=batch_size, well_replicas=well_replicas, minimize_steps=minimize_steps),
                      dict(temperature=temperature, timestep=timestep, friction=friction,
                           well_friction=well_friction, lr=lr), timestep, dtype)
    if int(well_steps) < 30:
        raise ValueError(f"well_steps must be >= 30 (the first third is equilibration), got {well_steps!r}")
    device = torch.device(device)
    if potential is None:
        potential = SevenNetEnergy(AZOBENZENE_NUMBERS, model=model, dtype=dtype)
    potential = potential.to(device)
    masses = torch.tensor(AZOBENZENE_MASSES, dtype=dtype, device=device)
    cvs = azobenzene_cvs().to(device)
    gen = torch.Generator().manual_seed(int(seed))
    minima, energies, max_force = {}, {}, 0.0
    for isomer in ("trans", "cis"):
        x = azobenzene_positions(isomer, dtype)
        x = (x + 0.001 * torch.randn(x.shape, generator=gen, dtype=dtype)).to(device)
        minima[isomer], energies[isomer], f = minimize_positions(potential, x, max_steps=int(minimize_steps))
        max_force = max(max_force, f)
    wells = dict(temperature=float(temperature), timestep=float(timestep), friction=float(well_friction),
                 n_replicas=int(well_replicas), n_steps=int(well_steps), equilibration=int(well_steps) // 3)
    runs = {isomer: unbiased_well_run(potential, masses, minima[isomer], cvs, seed=seed + k, **wells)
            for k, isomer in enumerate(("cis", "trans"))}
    (reactant, pool), (product, _) = runs["cis"], runs["trans"]
    bias = NeuralBias.from_cvs(cvs, hidden=tuple(hidden), activation=activation, dtype=dtype, seed=seed)
    settings = dict(temperature=float(temperature), timestep=float(timestep), friction=float(friction),
                    n_steps=int(n_steps), n_replicas=int(n_replicas), adjoint_steps=int(adjoint_steps),
                    batch_size=int(batch_size), lr=float(lr), max_grad_norm=max_grad_norm, storage=storage,
                    seed=int(seed))
    trainer = DiffSimTrainer(potential, cvs, bias, masses, product, pool, **settings)
    with torch.no_grad():
        s = cvs(torch.stack([minima["cis"], minima["trans"]])).tolist()
    de = energies["cis"] - energies["trans"]
    info = dict(settings, system="azobenzene", potential=type(potential).__name__,
                model=getattr(potential, "model_name", None), constraints="none (flexible bonds)",
                cm_motion_remover=False, kT_kj_per_mol=KB * float(temperature),
                trajectory_ps=int(n_steps) * float(timestep), reactant="cis", product="trans",
                cis_cnnc_nnc=s[0], trans_cnnc_nnc=s[1], cis_energy_kj_per_mol=energies["cis"],
                trans_energy_kj_per_mol=energies["trans"], delta_e_cis_trans_kj_per_mol=de,
                delta_e_cis_trans_ev=de / EV_TO_KJ_PER_MOL, minimized_max_force_kj_per_mol_nm=max_force,
                n_start_configurations=int(pool.shape[0]))
    trainer.config.update({"system": "azobenzene"})
    return DiffSimSetup(name="azobenzene", trainer=trainer, potential=potential, cvs=cvs, bias=bias,
                        masses=masses, reactant_well=reactant, product_well=product, start_positions=pool,
                        temperature=float(temperature), info=info)


#: Settings of ``openmm-nnbias diffsim --system azobenzene`` on SevenNet where they differ from
#: :func:`~openmm_nnbias.recipes.diffsim.azobenzene.azobenzene_setup` (SevenNet-0 costs ~0.2 s per
#: replica-step on one CPU core): float32, 1 fs, K = 30, short well runs and minimizations.
AZOBENZENE_CLI = {"dtype": "float32", "timestep": 0.001, "adjoint_steps": 30, "n_replicas": 2, "n_steps": 150,
                  "well_replicas": 2, "well_steps": 90, "minimize_steps": 60}
#: The default two-stage schedule of the azobenzene run on SevenNet (K : Adam rate : epochs), see :mod:`openmm_nnbias.diffsim.stages`.
AZOBENZENE_STAGES = "300:1e-2:2,1000:1e-3:1"
#: On an :class:`~openmm_nnbias.systems.azobenzene.AzobenzeneMLP` (~1000× cheaper than SevenNet-0): the setup's own
#: defaults (written out so that the checkpoint records them).
AZOBENZENE_MLP_CLI = {"dtype": "float64", "timestep": 0.0005, "adjoint_steps": 190, "n_replicas": 16,
                      "n_steps": 4000, "well_replicas": 4, "well_steps": 600, "minimize_steps": 300}
#: The paper's two stages on the MLP: 300 K at the setup's Adam rate until the bias crosses, then a
#: 10× lower rate at 1 000 K (refinement; K : Adam rate : epochs).
AZOBENZENE_MLP_STAGES = "300:3e-3:8,1000:3e-4:4"
#: The one table of per-potential defaults of ``--system azobenzene --potential P``: setup settings and
#: stage schedule (``"mlp-file"``: a path to an ``AzobenzeneMLP.save`` file).
AZOBENZENE_DEFAULTS = {
    "7net-0": {"settings": AZOBENZENE_CLI, "stages": AZOBENZENE_STAGES},
    "7net-l3i5": {"settings": AZOBENZENE_CLI, "stages": AZOBENZENE_STAGES},
    "gfn1-mlp": {"settings": AZOBENZENE_MLP_CLI, "stages": AZOBENZENE_MLP_STAGES},
    "mlp-file": {"settings": AZOBENZENE_MLP_CLI, "stages": AZOBENZENE_MLP_STAGES},
}
#: ``--potential`` of a new azobenzene run without one: the shipped MLP (trains in CPU-minutes, no extra).
AZOBENZENE_DEFAULT_POTENTIAL = "gfn1-mlp"
#: The potential of checkpoints written before ``--potential`` existed (they were all SevenNet-0).
AZOBENZENE_LEGACY_POTENTIAL = "7net-0"


def azobenzene_defaults_help() -> str:
    """The per-potential defaults of :data:`AZOBENZENE_DEFAULTS` as one line of ``--help`` text.

    Examples
    --------
    >>> "gfn1-mlp" in azobenzene_defaults_help()
    True
    """
    fmt = {"dtype": "{}", "timestep": "dt {} ps", "adjoint_steps": "K {}", "n_replicas": "{} replicas",
           "n_steps": "{} steps", "well_replicas": "wells {}", "well_steps": "x {} steps",
           "minimize_steps": "{} minimize steps"}
    groups = {}
    for name, d in AZOBENZENE_DEFAULTS.items():
        groups.setdefault(id(d["settings"]), [[], d])[0].append("PATH" if name == "mlp-file" else name)
    parts = []
    for names, d in groups.values():
        text = ", ".join(fmt[k].format(v) for k, v in d["settings"].items()).replace(", x ", " x ")
        parts.append(f"{'/'.join(names)}: {text}, stages {d['stages']}")
    return "; ".join(parts)
