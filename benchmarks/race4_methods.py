"""The runners of the tetrapeptide race (``benchmarks/race4.py``): Deep-VES over 6 torsions, WT-metaD and OPES over φ1–φ3.

Every runner simulates vacuum alanine tetrapeptide (``openmm_nnbias.systems.alanine_tetrapeptide``:
Ace-Ala3-Nme, Amber99SB, HBonds, no cutoff) at 300 K, 2 fs, ``LangevinMiddleIntegrator`` 1/ps
(the ``alanine-tetrapeptide`` recipe), CPU platform, 1 thread, MD seed = ``seed``, from the built
positions with velocities drawn at 300 K with ``seed``.

Interface: ``steps`` (MD steps of 2 fs done; with ``mts`` K the integrator's outer step is K of
them), ``step(n)`` (n a multiple of :data:`SAMPLE_STEPS`), ``colvar`` (path of the run's colvar:
``time phi1 psi1 phi2 psi2 phi3 psi3 bias rbias`` every :data:`SAMPLE_STEPS` steps = 1 ps; ``bias``
V(s, t) of the bias in force when the frame was drawn, ``rbias`` = V − c(t), kJ/mol),
``save(path)`` / ``load(path)`` (exact continuation: a run saved, killed and loaded continues
bit for bit as the run that was not killed), ``close()``. WT-metaD and OPES also give
``bias_grid()`` → ``(axis, V[φ1, φ2, φ3])``, the bias in force now (kJ/mol, one period without
the repeated endpoint); Deep-VES gives ``decay_start_ps()``.

Settings:

* ``deepves``: ``build_deepves("alanine-tetrapeptide")`` with the recipe / CLI defaults (MLP
  96-48-24 ReLU over φ1, ψ1, φ2, ψ2, φ3, ψ3, torch backend, iteration every 500 steps = 1 ps,
  Monte Carlo well-tempered target γ 10 of 10 000 points, τ_KL 10 000, τ_decay 2 000, decay
  after 10 ns and 4 recrossings of every φ, sample stride 10, ``mts`` 1, synchronous); network,
  MD and Monte Carlo seed = ``seed``; ``colvarStride`` 1 ps. Variants (:data:`DEEPVES_VARIANTS`):
  ``deepves-mts4`` (bias every 4th step, ``--mts 4``) and ``deepves-mts4p`` (``--mts 4 --async
  process``, the command of ``benchmarks/results/tetrapeptide.md``; the learner process runs on
  the CPUs this process may use, and its CPU time is counted: :func:`tree_cpu`). Checkpoint:
  ``updater.saveCheckpoint`` / ``loadCheckpoint``.
* ``metad``: ``openmm.app.Metadynamics`` over φ1, φ2, φ3: γ 10, height 1.2 kJ/mol, σ 0.35 rad,
  every 500 steps (the dipeptide race's settings), 37 grid points per torsion (spacing σ/2, as
  the package's Ala4 reference; a 37³ table costs ~0.1 s per update on this CPU, 51³ three times
  that). Checkpoint, with the public ``biasDir``/``saveFrequency`` mechanism only: the bias files
  the object writes into ``<run>/metad_bias`` are summed into one array that goes into
  ``checkpoint.pkl`` with the Context checkpoint; loading writes that array back as the only file
  of the folder and builds a new ``Metadynamics`` (which loads it as a peer's bias) and Simulation.
  The live run rebuilds itself the same way after every checkpoint, so a resumed run is the same
  run bit for bit however often it was killed (see :class:`MetadRunner`).
* ``opes``: ``openmm_opes.OPES`` over φ1, φ2, φ3 with the README quick-start settings the dipeptide
  race uses (barrier 50 kJ/mol, a kernel every 500 steps = 1 ps, fixed bandwidth
  ``varianceFrequency=None`` with σ 0.15 rad, γ 10); 51 grid points per torsion (the dipeptide's
  101 would cost ~2.7 s per kernel in 3-D). Checkpoint: Context checkpoint + ``getState()``; the
  live run also reloads that state (``setState``), so that its density caches are rebuilt exactly
  as in a resumed run.

Frames of WT-metaD and OPES are drawn half-way between depositions (steps 250 mod 500), so that
the bias in force is well defined; c(t): WT-metaD the Tiwary–Parrinello
c(t) = kT ln[∫ds e^{γβV/(γ−1)} / ∫ds e^{βV/(γ−1)}] over the φ grid (from ``getFreeEnergy()``),
OPES ``getCt("current")``; Deep-VES writes its own (``rbias``).
"""

from __future__ import annotations

import copy
import math
import os
import pickle

import numpy as np

from race4_common import (TEMPERATURE, TIMESTEP_PS, FRICTION, KT, SAMPLE_STEPS, TORSIONS, BIASED3, COLVAR_FIELDS, tree_cpu, _atomic_pickle, dihedrals, write_colvar_header, truncate_colvar, _simulation, _torsion_force, _to_phi_order)  # noqa: F401 (re-exported for race4.py and the tests)
METAD = dict(biasFactor=10.0, height=1.2, sigma=0.35, frequency=500, grid=37)
OPES_SETTINGS = dict(biasFactor=10.0, barrier=50.0, sigma=0.15, frequency=500, grid=51)

#: Deep-VES variants: method ``deepves-<name>`` → keywords of ``build_deepves`` (``mts``, ``mode``).
DEEPVES_VARIANTS = {
    "": {},  # the recipe / CLI defaults: mts 1, synchronous
    "mts4": {"mts": 4},
    "mts4p": {"mts": 4, "mode": "process"},
}


class Unbiased:
    """Plain MD of the same system (speed yardstick): ``cpu_per_ns(steps)`` in CPU s per simulated ns."""

    def __init__(self, seed=12345):
        from openmm_nnbias.systems import alanine_tetrapeptide

        pep = alanine_tetrapeptide()
        self.sim = _simulation(pep, pep.system, seed)
        self.sim.step(100)

    def cpu_per_ns(self, steps=2500):
        c0 = tree_cpu()
        self.sim.step(steps)
        return (tree_cpu() - c0) / (steps * TIMESTEP_PS / 1000)


# ----------------------------------------------------------------------------------------------- φ-biased runners
class _PhiBiasRunner:
    """Shared by WT-metaD and OPES: the colvar of six torsions, frames half-way between depositions."""

    def __init__(self, seed, folder):
        from openmm_nnbias.systems import alanine_tetrapeptide

        self.seed, self.folder = int(seed), folder
        self.pep = alanine_tetrapeptide()
        self.quads = np.array([self.pep.torsions[t] for t in TORSIONS])
        self.colvar = os.path.join(folder, "colvar")
        self._rows = []
        self._colvar_from = 0.0  # ps: a fresh run starts the colvar anew, a loaded one cuts it back to here
        self._colvar_ready = False

    @property
    def steps(self):
        return self.sim.currentStep

    def _bias_group(self):
        return self.force.getForceGroup()

    def _frame(self):
        from openmm import unit

        st = self.sim.context.getState(getPositions=True)
        pos = st.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        v, c = self._bias_and_ct()
        self._rows.append([self.sim.currentStep * TIMESTEP_PS, *dihedrals(pos, self.quads), v, v - c])

    def step(self, n):
        if n % SAMPLE_STEPS or self.steps % SAMPLE_STEPS:
            raise ValueError(f"steps must be whole multiples of {SAMPLE_STEPS}")
        half = SAMPLE_STEPS // 2
        for _ in range(n // SAMPLE_STEPS):
            self._advance(half)
            self._frame()
            self._advance(SAMPLE_STEPS - half)
        self.flush()

    def flush(self):
        """Append the frames kept in memory to ``colvar``."""
        if not self._colvar_ready:
            if self._colvar_from == 0 or not os.path.exists(self.colvar):
                write_colvar_header(self.colvar)
            else:
                truncate_colvar(self.colvar, self._colvar_from)
            self._colvar_ready = True
        if self._rows:
            with open(self.colvar, "a") as fh:
                np.savetxt(fh, np.array(self._rows), fmt="%.6f")
            self._rows = []

    def _start_colvar(self, t_ps):
        """The colvar continues after ``t_ps`` (set up at the first flush; nothing is written before a step)."""
        self._colvar_from, self._colvar_ready = t_ps, False

    def close(self):
        self.flush()


class MetadRunner(_PhiBiasRunner):
    """``openmm.app.Metadynamics`` over φ1–φ3; exact restarts through its public ``biasDir`` files.

    Why the live run rebuilds itself at each checkpoint: a new ``Metadynamics`` reading a bias
    folder sums the files it finds, while the running object had added its Gaussians one by one to
    its total; the two sums differ by rounding (and after a second restart the order of several
    files matters), so a resumed run would drift away from the unkilled one. Rebuilding both from
    the same single summed file makes them identical; the cost is one Context per ``--every``.
    """

    def __init__(self, seed, folder):
        super().__init__(seed, folder)
        self.bias_dir = os.path.join(folder, "metad_bias")
        self._build(np.zeros((METAD["grid"],) * 3), None, 0)
        self._start_colvar(0.0)

    def _build(self, bias, context_checkpoint, step):
        """New System, ``Metadynamics`` (loading ``bias`` as its only peer file) and Simulation."""
        from openmm import app, unit

        os.makedirs(self.bias_dir, exist_ok=True)
        for f in os.listdir(self.bias_dir):
            os.remove(os.path.join(self.bias_dir, f))
        np.save(os.path.join(self.bias_dir, "bias_0_0.npy"), bias)
        system = copy.deepcopy(self.pep.system)
        cvs = [app.BiasVariable(_torsion_force(self.pep.torsions[t]), -math.pi, math.pi, METAD["sigma"], True,
                                METAD["grid"]) for t in BIASED3]
        self.meta = app.Metadynamics(system, cvs, TEMPERATURE * unit.kelvin, METAD["biasFactor"],
                                     METAD["height"] * unit.kilojoule_per_mole, METAD["frequency"],
                                     saveFrequency=METAD["frequency"], biasDir=self.bias_dir)
        if not np.allclose(self._v_grid_raw(), bias, rtol=1e-9, atol=1e-9):  # not loaded (an id clash, p ~ 1e-9)
            raise RuntimeError("app.Metadynamics did not load the restored bias file")
        self.force = system.getForce(system.getNumForces() - 1)  # the bias force it added
        self.sim = _simulation(self.pep, system, self.seed)
        if context_checkpoint is not None:
            self.sim.context.loadCheckpoint(context_checkpoint)
        self.sim.currentStep = step

    def _v_grid_raw(self):
        """V on the object's grid (indexed [φ3, φ2, φ1], endpoint repeated) from the public ``getFreeEnergy``."""
        from openmm import unit

        g = METAD["biasFactor"]
        f = self.meta.getFreeEnergy().value_in_unit(unit.kilojoule_per_mole)
        return -f * (g - 1) / g

    def step(self, n):
        # the object writes its bias file at the end of this segment (and at most a few times inside it)
        self.meta.saveFrequency = math.gcd(self.steps, self.steps + n)
        super().step(n)

    def _advance(self, n):
        self.meta.step(self.sim, n)

    def _bias_and_ct(self):
        from openmm import unit
        from scipy.special import logsumexp

        v = self.sim.context.getState(getEnergy=True, groups={self._bias_group()}).getPotentialEnergy()
        grid = _to_phi_order(self._v_grid_raw())[1] / KT
        g = METAD["biasFactor"]
        c = KT * (logsumexp(grid * g / (g - 1)) - logsumexp(grid / (g - 1)))
        return v.value_in_unit(unit.kilojoule_per_mole), c

    def bias_grid(self):
        return _to_phi_order(self._v_grid_raw())

    def _summed_files(self):
        """The bias of the object now: the sum of the files it wrote and loaded (its saves are every deposition)."""
        files = sorted(f for f in os.listdir(self.bias_dir) if f.startswith("bias_") and f.endswith(".npy"))
        return sum(np.load(os.path.join(self.bias_dir, f)) for f in files)

    def save(self, path):
        self.flush()
        if self.steps % METAD["frequency"]:
            raise ValueError("WT-metaD checkpoints are taken at deposition steps")
        bias = self._summed_files()
        state = {"bias": bias, "context": self.sim.context.createCheckpoint(), "step": self.steps}
        _atomic_pickle(path, state)
        self._build(state["bias"], state["context"], state["step"])  # the live run = a resumed run

    def load(self, path):
        with open(path, "rb") as fh:
            st = pickle.load(fh)
        self._build(st["bias"], st["context"], st["step"])
        self._start_colvar(st["step"] * TIMESTEP_PS)


class OPESRunner(_PhiBiasRunner):
    def __init__(self, seed, folder):
        from openmm import app, unit
        from openmm_opes import OPES

        super().__init__(seed, folder)
        system = self.pep.system
        s = OPES_SETTINGS
        cvs = [app.BiasVariable(_torsion_force(self.pep.torsions[t]), -math.pi, math.pi, s["sigma"], True, s["grid"])
               for t in BIASED3]
        self.opes = OPES(system, cvs, temperature=TEMPERATURE * unit.kelvin, barrier=s["barrier"] * unit.kilojoule_per_mole,
                         frequency=s["frequency"], varianceFrequency=None, biasFactor=s["biasFactor"])
        self.force = system.getForce(system.getNumForces() - 1)
        self.sim = _simulation(self.pep, system, self.seed)
        self._start_colvar(0.0)

    def _advance(self, n):
        self.opes.step(self.sim, n)

    def _bias_and_ct(self):
        from openmm import unit

        v = self.opes.getBiasEnergy(self.sim.context).value_in_unit(unit.kilojoule_per_mole)
        c = self.opes.getCt("current")
        c = c.value_in_unit(unit.kilojoule_per_mole) if unit.is_quantity(c) else float(c)
        return v, (c if math.isfinite(c) else v)  # NaN before the first kernel: the flat bias, c(t) = V

    def bias_grid(self):
        from openmm import unit

        return _to_phi_order(self.opes.getBias().value_in_unit(unit.kilojoule_per_mole))

    def save(self, path):
        self.flush()
        state = self.opes.getState()
        _atomic_pickle(path, {"context": self.sim.context.createCheckpoint(), "opes": state})
        self.opes.setState(state)  # caches rebuilt from the kernels, as a resumed run has them
        self.opes.updateContext(self.sim.context)

    def load(self, path):
        with open(path, "rb") as fh:
            st = pickle.load(fh)
        self.opes.setState(st["opes"])
        self.sim.context.loadCheckpoint(st["context"])
        self.opes.updateContext(self.sim.context)
        self._start_colvar(self.steps * TIMESTEP_PS)


# ----------------------------------------------------------------------------------------------- Deep-VES
class DeepVESRunner:
    def __init__(self, seed, folder, variant=""):
        import torch

        from openmm_nnbias.runners import build_deepves

        torch.set_num_threads(1)
        kw = dict(DEEPVES_VARIANTS[variant])
        self.mts = kw.get("mts", 1)
        self.out = os.path.join(folder, "ves")
        self.colvar = os.path.join(self.out, "colvar")
        self.sim, self.updater, dt = build_deepves(
            "alanine-tetrapeptide", out=self.out, platform="CPU", threads=1, seed=int(seed), sampleStride=10,
            overrides={"colvarStride": SAMPLE_STEPS // self.mts}, **kw)
        if abs(dt - TIMESTEP_PS * self.mts) > 1e-12:
            raise ValueError(f"Deep-VES outer step {dt} ps, the race uses {TIMESTEP_PS} ps x mts {self.mts}")
        if self.updater.stride * self.mts != SAMPLE_STEPS:
            raise ValueError(f"Deep-VES iteration {self.updater.stride} x {self.mts} steps, the race expects {SAMPLE_STEPS}")

    @property
    def steps(self):
        return self.sim.currentStep * self.mts

    def step(self, n):
        if n % SAMPLE_STEPS:
            raise ValueError(f"steps must be whole multiples of {SAMPLE_STEPS}")
        self.sim.step(n // self.mts)
        self.updater.flush()

    def decay_start_ps(self):
        """Simulated time (ps) of the first ``ves.log`` row past the constant-learning-rate phase, or None."""
        path = os.path.join(self.out, "ves.log")
        if not os.path.exists(path):
            return None
        return decay_start(path)

    def save(self, path):
        self.updater.saveCheckpoint(path, self.sim)

    def load(self, path):
        self.updater.loadCheckpoint(path, self.sim)

    def close(self):
        self.updater.close()


def decay_start(ves_log):
    """Time (ps) of the first row of ``ves_log`` whose phase is not "learning", or None."""
    with open(ves_log) as fh:
        fields = fh.readline().split()[2:]
        i_time, i_phase = fields.index("time"), fields.index("phase")
        for line in fh:
            cols = line.split()
            if cols and not line.startswith("#") and len(cols) > i_phase and cols[i_phase] != "learning":
                return float(cols[i_time])
    return None


def make_runner(method, seed, folder):
    """The runner of ``method`` (``deepves``, ``deepves-<variant>``, ``metad``, ``opes``)."""
    if method == "metad":
        return MetadRunner(seed, folder)
    if method == "opes":
        return OPESRunner(seed, folder)
    if method == "deepves" or method.startswith("deepves-"):
        variant = method[len("deepves-"):] if "-" in method else ""
        if variant not in DEEPVES_VARIANTS:
            raise ValueError(f"unknown Deep-VES variant {variant!r}; known: {sorted(DEEPVES_VARIANTS)}")
        return DeepVESRunner(seed, folder, variant)
    raise ValueError(f"unknown method {method!r} (deepves, deepves-<variant>, metad, opes)")


def checkpoint_name(method):
    return "checkpoint.pt" if method.startswith("deepves") else "checkpoint.pkl"
