"""The runners of the convergence race (``benchmarks/race.py``): Deep-VES (and its variants), OpenMM WT-metaD, OPES.

Every runner simulates vacuum alanine dipeptide (``openmm_nnbias.systems.alanine_dipeptide``:
Amber99SB, HBonds) at 300 K, 2 fs, ``LangevinMiddleIntegrator`` 1/ps, CPU platform, 1 thread,
MD seed = ``seed``, from the built positions with velocities drawn at 300 K with ``seed``.
Each has ``step(n)``, ``estimates()`` → ``{name: (phi, psi, F)}`` (kJ/mol; the first is the main
one), ``save(path)`` / ``load(path)`` (exact continuation) and ``steps`` (MD steps done).

Settings (all bias every 1 ps = 500 steps, target/bias factor 10):

* ``deepves``: ``build_deepves("alanine-dipeptide")`` with the CLI defaults (MLP 48-24-12 ReLU,
  stride 500, τ_KL 10 000, τ_decay 1 000, KL threshold 0.5, 50 bins, γ 10, sample stride 10,
  table backend, synchronous); network seed = ``seed``. Estimates: ``fes_bias.dat`` and, if the
  updater writes one, ``fes.dat``. Checkpoint: ``updater.saveCheckpoint`` / ``loadCheckpoint``.
  Variants: :data:`DEEPVES_VARIANTS` (name → ``build_deepves`` keywords), method ``deepves-<name>``.
* ``metad``: ``openmm.app.Metadynamics`` over φ, ψ: γ 10, height 1.2 kJ/mol, σ 0.35 rad, every
  500 steps, 73 grid points per torsion (the PLUMED alanine-dipeptide tutorial settings
  HEIGHT=1.2 SIGMA=0.35 PACE=500 with BIASFACTOR=10). Estimate: ``getFreeEnergy()``. Checkpoint:
  Context checkpoint + the bias from ``getFreeEnergy()``, restored through ``biasDir`` (public API).
* ``opes``: ``openmm_opes.OPES`` with its README quick-start settings (barrier 50 kJ/mol, a kernel
  every 1 ps = 500 steps at 2 fs, fixed bandwidth ``varianceFrequency=None`` with σ 0.15 rad,
  γ 10, 101 grid points per torsion). Estimates: ``getFreeEnergy(correctSmoothing=True)`` and,
  second, without the correction. Checkpoint: Context checkpoint + ``getState()``.
"""

from __future__ import annotations

import math
import os
import pickle

import numpy as np

from race_score import grid_from_openmm, read_fes

TEMPERATURE, TIMESTEP_PS, FRICTION = 300.0, 0.002, 1.0
METAD_BIAS_FACTOR = 10.0

#: Deep-VES variants: method ``deepves-<name>`` → keywords of ``build_deepves`` (``overrides`` for the updater).
#: Every variant but "" starts from the recipe's ``paper`` preset (so that a change of the CLI default leaves it
#: as it was run): "" is the CLI default (since 2026-12-07 the output layer at 10x the rate, i.e. ``out10``),
#: ``paper`` the CLI default before (the runs in ``race/deepves-paper``).
DEEPVES_VARIANTS = {
    "": {},
    "paper": {},
    "s100": {"sampleStride": 100},  # one sample per 0.2 ps instead of 0.02 ps (README's fast setting)
    "s1": {"sampleStride": 1},  # a sample every step: 500 per iteration instead of 50
    "lr3": {"overrides": {"learningRate": 3e-3}},  # Adam learning rate 3e-3 instead of 1e-3
    "lr10": {"overrides": {"learningRate": 1e-2}},
    "lr3s1": {"sampleStride": 1, "overrides": {"learningRate": 3e-3}},
    # the same runs, plus Eq. 4 averaged over windows of the run so far (estimates ``avg_*``, see FESWindowAverage)
    "avg": {"average": True},
    "lr3s1avg": {"sampleStride": 1, "overrides": {"learningRate": 3e-3}, "average": True},
    "lr10s1avg": {"sampleStride": 1, "overrides": {"learningRate": 1e-2}, "average": True},
    # Adam's second-moment memory 100 iterations instead of 1 000 (betas (0.9, 0.99)): forgets the large early gradients
    "b2avg": {"betas": (0.9, 0.99), "average": True},
    "lr3s1b2avg": {"sampleStride": 1, "overrides": {"learningRate": 3e-3}, "betas": (0.9, 0.99), "average": True},
    # the output layer at 10x the schedule's learning rate (as V = 10 x MLP for Adam): the bias grows 10x faster
    # from its V = 0 start, while the hidden layers' steps move V as before
    "out10avg": {"outputScale": 10.0, "average": True},
    "out10": {"outputScale": 10.0},  # the same without the averages (the 20 ns checks)
    "out30": {"outputScale": 30.0},  # the output layer at 30x
    "out10lr3": {"outputScale": 10.0, "overrides": {"learningRate": 3e-3}},  # every layer at 3x, the output at 30x
    # five iterations per ps instead of one (stride 100 steps = 0.2 ps), τ_KL and τ_decay in iterations x5 so that
    # they span the same simulated time; 10 samples per iteration (it100) or 50 (it100s2, a sample every 2 steps)
    "it100": {"outputScale": 10.0, "overrides": {"stride": 100, "tauKL": 50000, "tauDecay": 5000}},
    "it100s2": {"outputScale": 10.0, "sampleStride": 2, "overrides": {"stride": 100, "tauKL": 50000, "tauDecay": 5000}},
    # the same with the bias evaluated by the network in the MD (torch backend: the compiled torsion operator) instead of
    # a 64x64 table that costs ~16 ms per push (updateParametersInContext), five pushes per ps
    "it100s2t": {"outputScale": 10.0, "sampleStride": 2, "backend": "torch",
                 "overrides": {"stride": 100, "tauKL": 50000, "tauDecay": 5000}},
    # the network pushed into the Context every 5th iteration (1 ps) while Adam still steps every 0.2 ps: the
    # table push (~16 ms) once per ps
    "it100s2p5avg": {"outputScale": 10.0, "sampleStride": 2, "average": True,
                     "overrides": {"stride": 100, "tauKL": 50000, "tauDecay": 5000, "pushInterval": 5}},
    "it100s2avg": {"outputScale": 10.0, "sampleStride": 2, "overrides": {"stride": 100, "tauKL": 50000, "tauDecay": 5000},
                   "average": True},
}

#: windows of :class:`FESWindowAverage`: name → (fraction of the run so far to forget, or None; fixed length ps)
AVERAGE_WINDOWS = {"avg_half": (0.5, None), "avg_quarter": (0.75, None), "avg_250ps": (None, 250.0),
                   "avg_100ps": (None, 100.0)}


class FESWindowAverage:
    """Eq. 4 (F = −V − kT ln p on the grid) averaged uniformly over the iterations of a window of the run so far.

    ``add(t_ps, F)`` after every iteration; F is summed in blocks of ``block`` iterations (the window edges are
    therefore exact to a block). ``fes(name, now_ps)``: the average over :data:`AVERAGE_WINDOWS` ``[name]``, min 0.
    Memory stays bounded over long runs: a block that starts before every window's left edge is dropped (the
    edges only move forward), and blocks that started more than ``fine_ps`` ago are merged into blocks of up to
    ``coarse_ps`` (the fraction windows' edges are then exact to ``coarse_ps``, the fixed windows, shorter than
    ``fine_ps``, to a block).
    """

    def __init__(self, block=10, fine_ps=300.0, coarse_ps=50.0):
        self.block, self.fine_ps, self.coarse_ps = int(block), float(fine_ps), float(coarse_ps)
        self.origin = None
        self.starts, self.sums, self.counts = [], [], []

    def _edge(self, name, now_ps):
        frac, length = AVERAGE_WINDOWS[name]
        return now_ps - length if frac is None else self.origin + frac * (now_ps - self.origin)

    def add(self, t_ps, fes):
        fes = np.asarray(fes, dtype=np.float64)
        if not np.isfinite(fes).all():
            return
        if self.origin is None:
            self.origin = float(t_ps)
        if not self.counts or self.counts[-1] >= self.block:
            self._compact(float(t_ps))
            self.starts.append(float(t_ps))
            self.sums.append(np.zeros_like(fes))
            self.counts.append(0)
        self.sums[-1] += fes
        self.counts[-1] += 1

    def _compact(self, now_ps):
        edge = min(self._edge(name, now_ps) for name in AVERAGE_WINDOWS)
        while self.starts and self.starts[0] < edge:  # outside every window, now and later
            del self.starts[0], self.sums[0], self.counts[0]
        i, old = 1, now_ps - self.fine_ps
        while i < len(self.starts) and self.starts[i] < old:
            if self.starts[i] - self.starts[i - 1] < self.coarse_ps:
                self.sums[i - 1] = self.sums[i - 1] + self.sums[i]
                self.counts[i - 1] += self.counts[i]
                del self.starts[i], self.sums[i], self.counts[i]
            else:
                i += 1

    def fes(self, name, now_ps):
        since = self._edge(name, now_ps)
        keep = [i for i, t in enumerate(self.starts) if t >= since] or [len(self.starts) - 1]
        f = sum(self.sums[i] for i in keep) / sum(self.counts[i] for i in keep)
        return f - f.min()

    def state(self):
        return {"block": self.block, "starts": np.array(self.starts), "sums": np.array(self.sums),
                "counts": np.array(self.counts), "origin": self.origin, "fine_ps": self.fine_ps,
                "coarse_ps": self.coarse_ps}

    def load(self, st):
        self.block = int(st["block"])
        self.starts, self.counts = [float(x) for x in st["starts"]], [int(x) for x in st["counts"]]
        self.sums = [np.array(x) for x in st["sums"]]
        # states written before the compaction had no origin: their first block is the run's start
        self.origin = float(st["origin"]) if "origin" in st else (self.starts[0] if self.starts else None)
        if "fine_ps" in st:
            self.fine_ps, self.coarse_ps = float(st["fine_ps"]), float(st["coarse_ps"])


def _atomic_pickle(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        pickle.dump(obj, fh)
    os.replace(tmp, path)


def _simulation(pep, seed):
    import openmm as mm
    from openmm import app, unit

    integ = mm.LangevinMiddleIntegrator(TEMPERATURE * unit.kelvin, FRICTION / unit.picosecond,
                                        TIMESTEP_PS * unit.picosecond)
    integ.setRandomNumberSeed(int(seed))
    plat = mm.Platform.getPlatformByName("CPU")
    sim = app.Simulation(pep.topology, pep.system, integ, plat, {"Threads": "1"})
    sim.context.setPositions(pep.positions)
    sim.context.setVelocitiesToTemperature(TEMPERATURE * unit.kelvin, int(seed))
    return sim


def _torsion(atoms):
    import openmm as mm

    t = mm.CustomTorsionForce("theta")
    t.addTorsion(*atoms, [])
    return t


class Unbiased:
    """Plain MD of the same system (speed yardstick): ``cpu_per_ns(steps)`` in CPU s per simulated ns."""

    def __init__(self, seed=12345):
        import time

        from openmm_nnbias.systems import alanine_dipeptide

        self.sim = _simulation(alanine_dipeptide(), seed)
        self.sim.step(100)
        self._clock = time.process_time

    def cpu_per_ns(self, steps=2500):
        c0 = self._clock()
        self.sim.step(steps)
        return (self._clock() - c0) / (steps * TIMESTEP_PS / 1000)


class MetadRunner:
    """``app.Metadynamics`` over φ, ψ; restarts through its public ``biasDir`` files (no private attributes).

    A checkpoint holds the Context checkpoint and the bias V = −F (γ − 1)/γ from ``getFreeEnergy()``.
    :meth:`load` builds a new Metadynamics over an empty ``biasDir`` holding that bias as one file, which
    ``Metadynamics`` reads as the bias of another walker and adds to its own (zero at the start); the
    continued run deposits the same hills on the same total bias (equal to rounding).
    """

    def __init__(self, seed, folder):
        self.seed, self.biasDir = seed, os.path.join(folder, "metad_bias")
        self._build(None)

    def _build(self, bias):
        import shutil

        from openmm import app, unit

        from openmm_nnbias.systems import alanine_dipeptide

        shutil.rmtree(self.biasDir, ignore_errors=True)
        os.makedirs(self.biasDir)
        if bias is not None:
            np.save(os.path.join(self.biasDir, "bias_0_1.npy"), bias)
        pep = alanine_dipeptide()
        cvs = [app.BiasVariable(_torsion(pep.torsions[n]), -math.pi, math.pi, 0.35, True, 73) for n in ("phi", "psi")]
        self.meta = app.Metadynamics(pep.system, cvs, TEMPERATURE * unit.kelvin, METAD_BIAS_FACTOR,
                                     1.2 * unit.kilojoule_per_mole, 500, saveFrequency=500, biasDir=self.biasDir)
        self.sim = _simulation(pep, self.seed)

    @property
    def steps(self):
        return self.sim.currentStep

    def step(self, n):
        self.meta.step(self.sim, n)

    def _free_energy(self):
        from openmm import unit

        return np.asarray(self.meta.getFreeEnergy().value_in_unit(unit.kilojoule_per_mole))

    def estimates(self):
        return {"bias": grid_from_openmm(self._free_energy())}

    def save(self, path):
        bias = -self._free_energy() * (METAD_BIAS_FACTOR - 1) / METAD_BIAS_FACTOR
        _atomic_pickle(path, {"context": self.sim.context.createCheckpoint(), "bias": bias})

    def load(self, path):
        with open(path, "rb") as fh:
            st = pickle.load(fh)
        if "bias" not in st:
            raise ValueError(f"{path}: a metadynamics checkpoint of an earlier format (private bias arrays); "
                             "remove the run's folder and run it again")
        self._build(st["bias"])
        self.sim.context.loadCheckpoint(st["context"])


class OPESRunner:
    def __init__(self, seed, folder):
        from openmm import app, unit
        from openmm_opes import OPES

        from openmm_nnbias.systems import alanine_dipeptide

        pep = alanine_dipeptide()
        cvs = [app.BiasVariable(_torsion(pep.torsions[n]), -math.pi, math.pi, 0.15, True, 101) for n in ("phi", "psi")]
        self.opes = OPES(pep.system, cvs, temperature=TEMPERATURE * unit.kelvin,
                         barrier=50 * unit.kilojoule_per_mole, frequency=500, varianceFrequency=None, biasFactor=10)
        self.sim = _simulation(pep, seed)

    @property
    def steps(self):
        return self.sim.currentStep

    def step(self, n):
        self.opes.step(self.sim, n)

    def estimates(self):
        from openmm import unit

        def kj(f):
            return f.value_in_unit(unit.kilojoule_per_mole) if unit.is_quantity(f) else np.asarray(f)

        return {"smooth": grid_from_openmm(kj(self.opes.getFreeEnergy(correctSmoothing=True))),
                "raw": grid_from_openmm(kj(self.opes.getFreeEnergy()))}

    def save(self, path):
        _atomic_pickle(path, {"context": self.sim.context.createCheckpoint(), "opes": self.opes.getState()})

    def load(self, path):
        with open(path, "rb") as fh:
            st = pickle.load(fh)
        self.opes.setState(st["opes"])
        self.sim.context.loadCheckpoint(st["context"])
        self.opes.updateContext(self.sim.context)


class DeepVESRunner:
    def __init__(self, seed, folder, variant=""):
        import torch

        from openmm_nnbias.runners import build_deepves

        torch.set_num_threads(1)
        kw = dict(DEEPVES_VARIANTS[variant])
        if variant:
            kw["preset"] = "paper"
        self.average = FESWindowAverage() if kw.pop("average", False) else None
        betas = kw.pop("betas", None)
        output_scale = kw.pop("outputScale", None)
        if output_scale is not None:  # the library's option: the output layer in an Adam group of its own
            kw["overrides"] = {**kw.get("overrides", {}), "outputLearningRateScale": output_scale}
        self.out = os.path.join(folder, "ves")
        self.sim, self.updater, dt = build_deepves("alanine-dipeptide", out=self.out, platform="CPU", threads=1,
                                                   seed=int(seed), **kw)
        if abs(dt - TIMESTEP_PS) > 1e-12:
            raise ValueError(f"Deep-VES time step {dt} ps, the race uses {TIMESTEP_PS} ps")
        if betas is not None:  # torch.optim's public param_groups; kept in the optimizer's checkpoint
            for group in self.updater.optimizer.adam.param_groups:
                group["betas"] = tuple(betas)

    @property
    def steps(self):
        return self.sim.currentStep

    def step(self, n):
        if self.average is None:
            self.sim.step(n)
            return
        stride = self.updater.stride
        while n > 0:  # one iteration at a time: Eq. 4 of each new bias goes into the window average
            k = min(n, stride - self.sim.currentStep % stride)
            self.sim.step(k)
            n -= k
            if self.sim.currentStep % stride == 0:
                self.average.add(self.sim.currentStep * TIMESTEP_PS, self.updater.getFreeEnergyFromBias())

    def estimates(self):
        self.updater.flush()
        self.updater.writeFes()
        out = {"bias": read_fes(os.path.join(self.out, "fes_bias.dat"))}
        best = os.path.join(self.out, "fes.dat")
        if os.path.exists(best):
            out["best"] = read_fes(best)
        if self.average is not None and self.average.counts:
            phi, psi, _ = out["bias"]
            for name in AVERAGE_WINDOWS:
                out[name] = (phi, psi, self.average.fes(name, self.sim.currentStep * TIMESTEP_PS))
        return out

    def save(self, path):
        self.updater.saveCheckpoint(path, self.sim)
        if self.average is not None:
            np.savez(path + ".avg.npz", **self.average.state())

    def load(self, path):
        self.updater.loadCheckpoint(path, self.sim)
        if self.average is not None:
            self.average.load(np.load(path + ".avg.npz"))

    def close(self):
        self.updater.close()


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
