"""Deep-VES recipes: CVs, MD settings and Deep-VES defaults of the embedded systems.

* :data:`DEEPVES_RECIPES` — :class:`DeepVESRecipe` per system
  (``alanine-dipeptide``, ``wolfe-quapp``, ``alanine-tetrapeptide``, ``silicon``, ``silicon-64``,
  the solvated dipeptide, ``villin``): the paper's settings (Bonati et al. 2019 and NOTES.md);
  looked up by name with :func:`~openmm_nnbias.recipes.registry.get_recipe`.
* :func:`tetrapeptide_options`, :data:`PHI_STATES`, :func:`count_transitions` — the
  alanine-tetrapeptide Monte Carlo target and recrossing-triggered decay.

MD units: nm, rad, ps, K, kJ/mol.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, Optional, Tuple

import numpy as np

from ..systems.model_potentials import WQ_TEMPERATURE

__all__ = ["DeepVESRecipe", "DEEPVES_RECIPES", "PHI_STATES", "tetrapeptide_options", "count_transitions"]

#: φ states with hysteresis (rad): β/C7eq side (φ < −0.3 or φ ≥ 2.6, wrapping through ±π) and αL.
PHI_STATES = [(2.6, -0.3), (0.3, 2.0)]


@dataclass(frozen=True)
class DeepVESRecipe:
    """How to run Deep-VES on one embedded system.

    Attributes
    ----------
    name : str
        System name of :func:`openmm_nnbias.recipes.get_system`.
    cvs : tuple of str
        Biased CVs: torsion names of the peptide's ``torsions``, ``"x"`` (position of particle 0,
        nm, on ``positionRange``), or ``"rg_ca"`` / ``"rmsd_ca"`` (radius of gyration of the Cα
        atoms, their RMSD to the starting structure after optimal superposition; nm, on ``ranges``).
    temperature : float
        K.
    timestep : float
        ps.
    friction : float
        1/ps.
    platform : str
        Default OpenMM platform.
    backend : str
        Default bias force backend.
    options : Mapping
        Default :class:`~openmm_nnbias.ves.DeepVESUpdater` keywords (``stride`` in MD steps,
        ``tauKL``/``tauDecay`` in iterations, ``bins``, ``hidden``, ...).
    tetrapeptide : Mapping
        Defaults of :func:`tetrapeptide_options` (``mcPoints``, ``recrossings``, ``decayAfter`` in
        ps); empty for systems without the Monte Carlo target.
    positionRange : tuple of float
        nm, for a ``"x"`` CV.
    biasFactor : float
        Default well-tempered bias factor γ.
    mts : int
        Default inner steps per bias evaluation (CLI ``--mts``).
    ranges : Mapping
        ``{cv name: (lower, upper)}`` of the protein CVs (nm).
    builder : callable, optional
        ``builder(seed)`` → the built system (``topology``, ``system``, ``positions``, ``box``) for
        systems outside :func:`~openmm_nnbias.recipes.get_system` (silicon); its CV ``"n_diamond"``
        is :class:`~openmm_nnbias.cvs.EnvironmentSimilarity` over all atoms.
    presets : Mapping
        Named sets of :attr:`options` that replace the defaults (:meth:`presetOptions`), e.g.
        ``"paper"``: the paper's settings where the default differs from them.
    """

    name: str
    cvs: Tuple[str, ...]
    temperature: float
    timestep: float
    friction: float
    platform: str = "CPU"
    backend: str = "table"
    options: Mapping[str, Any] = field(default_factory=dict)
    tetrapeptide: Mapping[str, Any] = field(default_factory=dict)
    positionRange: Tuple[float, float] = (-3.0, 3.0)
    biasFactor: float = 10.0
    mts: int = 1
    ranges: Mapping[str, Tuple[float, float]] = field(default_factory=dict)
    builder: Optional[Callable[[int], Any]] = None
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def presetOptions(self, name: str) -> dict:
        """The options of the preset ``name`` (ValueError naming the known presets for another name).

        Examples
        --------
        >>> from openmm_nnbias.recipes import get_recipe
        >>> get_recipe("wolfe-quapp").presetOptions("fast")
        Traceback (most recent call last):
        ...
        ValueError: preset: wolfe-quapp has ['paper'], got 'fast'
        """
        if not isinstance(name, str):
            raise TypeError(f"preset must be a str, got {type(name).__name__}")
        if name not in self.presets:
            raise ValueError(f"preset: {self.name} has {sorted(self.presets)}, got {name!r}")
        return dict(self.presets[name])

    def integrator(self, seed: Optional[int] = None):
        """A ``LangevinMiddleIntegrator`` at :attr:`temperature`, :attr:`friction`, :attr:`timestep` (random seed ``seed``)."""
        import openmm as mm
        from openmm import unit

        integ = mm.LangevinMiddleIntegrator(self.temperature * unit.kelvin, self.friction / unit.picosecond,
                                            self.timestep * unit.picosecond)
        if seed is not None:
            integ.setRandomNumberSeed(int(seed))
        return integ

    def buildCVs(self, built):
        """The :class:`~openmm_nnbias.cvs.CVSet` of :attr:`cvs` for the built system ``built``."""
        from ..cvs import RMSD, CVSet, EnvironmentSimilarity, FusedEnvironmentSimilarity, Position, RadiusOfGyration, Torsion

        def one(n):
            if n == "x":
                return Position(0, "x", *self.positionRange)
            if n == "n_diamond":
                kind = FusedEnvironmentSimilarity if getattr(built, "route", "torch") == "fused" else EnvironmentSimilarity
                return kind(range(built.system.getNumParticles()), lattice=0.5431, sigma=0.04, names=n)
            if n == "rg_ca":
                return RadiusOfGyration(built.ca, names=n, lower=self.ranges[n][0], upper=self.ranges[n][1])
            if n == "rmsd_ca":
                return RMSD(built.ca, built.positions, names=n, lower=self.ranges[n][0], upper=self.ranges[n][1])
            return Torsion(built.torsions[n], n)

        return CVSet([one(n) for n in self.cvs])


def _ro(**kw) -> Mapping[str, Any]:
    return MappingProxyType(kw)


def _silicon(n_cells: int, skin: float):
    def build(seed: int = 1):
        from .silicon import silicon_deepves_system

        return silicon_deepves_system(n_cells, skin=skin, seed=seed)
    return build


_PHI_PSI = ("phi1", "psi1", "phi2", "psi2", "phi3", "psi3")
#: Deep-VES recipes by system name.
DEEPVES_RECIPES: Mapping[str, DeepVESRecipe] = MappingProxyType({
    # five Adam steps per ps (stride 100 = 0.2 ps; tauKL and tauDecay x5 in iterations: the same simulated time),
    # 50 samples per iteration (a sample every 2 steps), the network pushed into the Context every 5th iteration
    # (the 64x64 table once per ps), the output layer at 10x the learning rate; fes.dat: Eq. 4 averaged over the
    # last quarter while the bias learns fast. F(phi) within 1 kJ/mol of the reference from 2.25 ns instead of
    # 3.75, at 0.38 of the speed of unbiased MD instead of 0.58 (benchmarks/results/alanine_dipeptide.md: the convergence race,
    # variant it100s2p5avg). Preset "paper": one iteration per ps, a sample every 10 steps, the output layer at 1x
    "alanine-dipeptide": DeepVESRecipe(
        "alanine-dipeptide", ("phi", "psi"), 300.0, 0.002, 1.0,
        options=_ro(stride=100, sampleStride=2, pushInterval=5, tauKL=50000, tauDecay=5000, bins=50,
                    hidden=(48, 24, 12), outputLearningRateScale=10.0),
        presets=_ro(paper=_ro(stride=500, sampleStride=10, pushInterval=1, tauKL=10000, tauDecay=1000,
                              outputLearningRateScale=1.0))),
    # tauKL 5 000 rather than the paper's 5·10⁴: see benchmarks/RESULTS.md (Wolfe–Quapp); 100 bins as in the paper;
    # one particle: the Reference platform is ~100x faster than CPU
    "wolfe-quapp": DeepVESRecipe(
        "wolfe-quapp", ("x",), WQ_TEMPERATURE, 0.005, 10.0, platform="Reference",
        options=_ro(stride=500, tauKL=5000, tauDecay=5000, bins=100, hidden=(48, 24, 12)),
        presets=_ro(paper=_ro(tauKL=50000))),
    # 6 torsions: Monte Carlo target (paper 25 000 points; 10 000 here for the CPU), decay
    # (tauDecay 2 000 as in the paper) started after 10 ns of constant learning rate (paper) and
    # recrossings of the three φ (recrossings 0 and decayAfter 0: marginal KL); decayAfter in ps. A bias snapshot
    # every 1 000 iterations (1 ns): `openmm-nnbias marginals --window 0.25` averages the last quarter's
    "alanine-tetrapeptide": DeepVESRecipe(
        "alanine-tetrapeptide", _PHI_PSI, 300.0, 0.002, 1.0, backend="torch",
        options=_ro(stride=500, tauKL=10000, tauDecay=2000, bins=50, hidden=(96, 48, 24), klThreshold=0.1,
                    snapshotInterval=1000),
        tetrapeptide=_ro(mcPoints=10000, recrossings=4, decayAfter=10000.0),
        presets=_ro(paper=_ro(mcPoints=25000))),
    # in TIP3P with PME and a 1 bar barostat (systems.solvated); the vacuum run's Deep-VES settings
    "alanine-dipeptide-solvated": DeepVESRecipe(
        "alanine-dipeptide-solvated", ("phi", "psi"), 300.0, 0.002, 1.0,
        options=_ro(stride=500, tauKL=10000, tauDecay=1000, bins=50, hidden=(48, 24, 12))),
    # the same with hydrogen mass repartitioning (1.5 amu) and a 4 fs step: 250 steps keep 1 ps per iteration
    "alanine-dipeptide-solvated-hmr": DeepVESRecipe(
        "alanine-dipeptide-solvated-hmr", ("phi", "psi"), 300.0, 0.004, 1.0,
        options=_ro(stride=250, tauKL=10000, tauDecay=1000, bins=50, hidden=(48, 24, 12))),
    # Stillinger-Weber silicon, 216 atoms, NPT 1 700 K / 1 atm (recipes.silicon: the crystal to start, SW and
    # the CV on the fused route where its kernels compile, else the torch route with a warning; MonteCarloBarostat
    # every 25 steps), 2 fs, Langevin 1/ps. CV: number of cubic-diamond atoms (environment similarity,
    # sigma 0.04 nm) on [0, 216]. The paper's Methods: bias factor 100, tauDecay 2 000,
    # 216 bins; tauKL is not in the paper, 5 000 as in the authors' archived input (which has gamma 70 and
    # 500 bins: not used). The bias every 2 steps (--mts 2, outer step 4 fs): the CV costs about as much as SW.
    "silicon": DeepVESRecipe(
        "silicon", ("n_diamond",), 1700.0, 0.002, 1.0, backend="torch", biasFactor=100.0, mts=2,
        builder=_silicon(3, 0.15),
        options=_ro(stride=500, tauKL=5000, tauDecay=2000, bins=216, hidden=(48, 24, 12),
                    checkpointInterval=50),
        presets=_ro(paper=_ro())),
    # the small version: 2x2x2 cells, 64 atoms, 64 bins; SW skin 0.10 nm (the box must stay above
    # 2 (a sigma + skin) = 0.954 nm; the 64-atom liquid at 1 700 K has about 1.06 nm, too close to 1.054 nm
    # with the default 0.15 nm). One iteration every 100 steps (0.2 ps) instead of 500: the same Adam
    # learning rate builds the bias 5x faster in simulated time, so that liquid <-> crystal transitions come
    # within ~1 h of one core (at 500 steps the bias on the crystal had grown to 11 kJ/mol = 0.8 kT
    # after 110 ps). tauKL 5 000 iterations = 1 ns (about 20 transitions of this system). tauDecay 10 000
    # iterations = 2 ns, the 216-atom recipe's (the paper's) decay time in simulated time: with 2 000 iterations
    # (0.4 ns, about 9 transitions) the bias froze before it had balanced the two basins and never crossed again
    # (benchmarks/results/silicon.md).
    "silicon-64": DeepVESRecipe(
        "silicon-64", ("n_diamond",), 1700.0, 0.002, 1.0, backend="torch", biasFactor=100.0, mts=2,
        builder=_silicon(2, 0.10),
        options=_ro(stride=100, tauKL=5000, tauDecay=10000, bins=64, hidden=(48, 24, 12),
                    checkpointInterval=50)),
    # villin headpiece in TIP3P (systems.villin: OpenMM's test.pdb, 8 867 atoms, Amber14, PME, 1 bar barostat), 2 fs;
    # Rg of the 35 CA and their RMSD to the starting structure, torch backend; the dipeptide's Deep-VES settings.
    # Ranges: a 4 ps unbiased run from the PDB (benchmarks/results/protein_cvs.md) kept Rg_CA in 0.89-0.91 nm and
    # RMSD_CA below 0.05 nm; the ranges leave room below the folded state and reach partly unfolded states
    "villin": DeepVESRecipe(
        "villin", ("rg_ca", "rmsd_ca"), 300.0, 0.002, 1.0, backend="torch",
        ranges=_ro(rg_ca=(0.8, 1.6), rmsd_ca=(0.0, 1.0)),
        options=_ro(stride=500, tauKL=10000, tauDecay=1000, bins=50, hidden=(48, 24, 12))),
})

def tetrapeptide_options(mcPoints: Optional[int] = None, recrossings: Optional[int] = None, seed: int = 1,
                         decayAfter: Optional[float] = None, iteration_ps: float = 1.0, biasFactor: float = 10.0,
                         klThreshold: float = 0.1) -> dict:
    """``target`` and decay trigger (``decay``) of the 6-torsion bias (CV order φ1, ψ1, φ2, ψ2, φ3, ψ3).

    Parameters
    ----------
    mcPoints : int
        Monte Carlo target points per iteration (10 chains steps × mcPoints/10 chains; paper 25 000).
    recrossings : int
        Decay starts once each φ made this many transitions between :data:`PHI_STATES`
        (the paper's rule); 0 uses the marginal-KL threshold ``klThreshold`` instead.
    seed : int
        Seed of the Monte Carlo chains.
    decayAfter : float
        Simulated time (ps) of constant learning rate before the decay may start (the paper's
        Ala4 schedule: 10 ns); needs ``recrossings`` > 0 unless 0.
    iteration_ps : float
        Simulated time of one iteration (ps), to convert ``decayAfter`` into iterations.
    biasFactor, klThreshold : float
        Well-tempered γ of the Monte Carlo target; ε of the marginal-KL rule.

    Examples
    --------
    >>> opts = tetrapeptide_options(2000, 4, decayAfter=10000.0, iteration_ps=1.0)
    >>> opts["target"].chains, [type(p).__name__ for p in opts["decay"].parts]
    (200, ['Recrossings', 'MinimumTime'])
    >>> opts["decay"].resolve()["recrossing"].min_iterations
    10000
    """
    from ..ves import KLThreshold, MinimumTime, MonteCarlo, Recrossings

    mcPoints = 10000 if mcPoints is None else int(mcPoints)
    recrossings = 4 if recrossings is None else int(recrossings)
    if mcPoints < 10:
        raise ValueError(f"mcPoints must be >= 10, got {mcPoints}")
    if recrossings < 0:
        raise ValueError(f"recrossings must be >= 0 (0: marginal-KL threshold), got {recrossings}")
    decayAfter = 0.0 if decayAfter is None else float(decayAfter)
    if not (decayAfter >= 0 and math.isfinite(decayAfter)):
        raise ValueError(f"decayAfter must be a finite time >= 0, got {decayAfter} ps")
    if decayAfter > 0 and not recrossings:
        raise ValueError("decayAfter needs recrossings > 0 (with 0 the marginal-KL threshold starts the decay)")
    min_iterations = int(math.ceil(decayAfter / float(iteration_ps) - 1e-9))
    if recrossings:
        decay = Recrossings([0, 2, 4], PHI_STATES, recrossings)
        decay = decay & MinimumTime(iterations=min_iterations) if min_iterations else decay
    else:
        decay = KLThreshold(klThreshold)
    return dict(target=MonteCarlo(biasFactor=biasFactor, chains=mcPoints // 10, steps=10, seed=seed), decay=decay)


def count_transitions(phi: np.ndarray) -> list:
    """Transitions of each column of ``phi`` (time-ordered, rad) between :data:`PHI_STATES`.

    Examples
    --------
    >>> count_transitions(np.array([[-2.0], [1.0], [0.0], [3.0], [1.2]]))
    [3]
    """
    import torch

    from ..ves.monitors import RecrossingMonitor

    phi = np.asarray(phi, float).reshape(len(phi), -1)
    monitor = RecrossingMonitor(list(range(phi.shape[1])), PHI_STATES, 1)
    monitor.update(torch.as_tensor(phi))
    return list(monitor.counts)
