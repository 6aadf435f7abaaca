"""Alanine tetrapeptide: Deep-VES options, WT-metaD reference over φ1, φ2, φ3, and comparison.

* :func:`tetrapeptide_options` — Monte Carlo target and decay trigger of ``deepves --system
  alanine-tetrapeptide``.
* :func:`run_reference_ala4` — OpenMM's well-tempered ``app.Metadynamics`` over the three φ on a
  3-D grid; writes the 3-D FES and its marginals F(φ1, φ2), F(φ2, φ3), F(φi) obtained by
  integrating exp(−βF) over the other angles. Restartable.
* :func:`reweighted_marginals` / :func:`compare_ala4` — the same marginals from a Deep-VES
  ``colvar`` (weights exp(β·rbias)) and their RMSE against the reference over F < cutoff.

MD units: rad, kJ/mol, K, ps.
"""

import math
import os
import pickle
import time

import numpy as np

from ..analysis.fes_io import write_grid_file

__all__ = ["PHI_STATES", "MARGINALS", "tetrapeptide_options", "run_reference_ala4", "marginals_from_fes3d",
           "reweighted_marginals", "weighted_marginals", "compare_ala4", "count_transitions"]

KB = 0.008314462618  # kJ/mol/K
#: φ states with hysteresis (rad): β/C7eq side (φ < −0.3 or φ ≥ 2.6, wrapping through ±π) and αL.
PHI_STATES = [(2.6, -0.3), (0.3, 2.0)]
#: marginals written and compared (indices into φ1, φ2, φ3)
MARGINALS = [(0, 1), (1, 2), (0,), (1,), (2,)]


def tetrapeptide_options(mcPoints=None, recrossings=None, seed: int = 1, decayAfter=None,
                         iteration_ps: float = 1.0) -> dict:
    """DeepVESUpdater keywords for the 6-torsion bias (CV order φ1, ψ1, φ2, ψ2, φ3, ψ3).

    Parameters
    ----------
    mcPoints : int
        Monte Carlo target points per iteration (10 chains steps × mcPoints/10 chains; paper 25 000).
    recrossings : int
        Decay starts once each φ made this many transitions between :data:`PHI_STATES`
        (the paper's rule); 0 uses the marginal-KL threshold instead.
    decayAfter : float
        Simulated time (ps) of constant learning rate before the decay may start (the paper's
        Ala4 schedule: 10 ns); needs ``recrossings`` > 0 unless 0.
    iteration_ps : float
        Simulated time of one iteration (ps), to convert ``decayAfter`` into iterations.

    Examples
    --------
    >>> opts = tetrapeptide_options(2000, 4, decayAfter=10000.0, iteration_ps=1.0)
    >>> opts["monteCarlo"]["n_chains"], opts["recrossing"].cv_indices, opts["recrossing"].min_iterations
    (200, [0, 2, 4], 10000)
    """
    from ..ves import RecrossingMonitor

    mcPoints = 10000 if mcPoints is None else int(mcPoints)
    recrossings = 4 if recrossings is None else int(recrossings)
    if mcPoints < 10:
        raise ValueError(f"--mc-points must be >= 10, got {mcPoints}")
    if recrossings < 0:
        raise ValueError(f"--recrossings must be >= 0 (0: marginal-KL threshold), got {recrossings}")
    decayAfter = 0.0 if decayAfter is None else float(decayAfter)
    if not (decayAfter >= 0 and math.isfinite(decayAfter)):
        raise ValueError(f"--decay-after must be a finite time >= 0, got {decayAfter} ps")
    if decayAfter > 0 and not recrossings:
        raise ValueError("--decay-after needs --recrossings > 0 (with 0 the marginal-KL threshold starts the decay)")
    min_iterations = int(math.ceil(decayAfter / float(iteration_ps) - 1e-9))
    monitor = RecrossingMonitor([0, 2, 4], PHI_STATES, recrossings, min_iterations) if recrossings else None
    return dict(targetSampling="mc", monteCarlo=dict(n_chains=mcPoints // 10, n_steps=10, seed=seed),
                recrossing=monitor)


def count_transitions(phi: np.ndarray) -> list:
    """Transitions of each column of ``phi`` (time-ordered, rad) between :data:`PHI_STATES`.

    Examples
    --------
    >>> count_transitions(np.array([[-2.0], [1.0], [0.0], [3.0], [1.2]]))
    [3]
    """
    import torch

    from ..ves import RecrossingMonitor

    phi = np.asarray(phi, float).reshape(len(phi), -1)
    monitor = RecrossingMonitor(list(range(phi.shape[1])), PHI_STATES, 1)
    monitor.update(torch.as_tensor(phi))
    return list(monitor.counts)


def marginals_from_fes3d(fes3d: np.ndarray, kT: float) -> dict:
    """Marginal free energies (min 0) of a 3-D FES ``[φ1, φ2, φ3]`` by summing exp(−βF)."""
    f = np.asarray(fes3d, float)
    logp = -(f - np.nanmin(f)) / kT
    out = {}
    for keep in MARGINALS:
        axes = tuple(a for a in range(3) if a not in keep)
        m = np.max(logp, axis=axes, keepdims=True)
        lm = np.log(np.exp(logp - m).sum(axis=axes)) + np.squeeze(m, axis=axes)
        fm = -kT * lm
        out[keep] = fm - fm.min()
    return out


def _axis(n):
    return -math.pi + 2 * math.pi * np.arange(n) / n


def _write_marginals(out, marg, n, prefix="fes_reference"):
    names = ["phi1", "phi2", "phi3"]
    for keep, f in marg.items():
        tag = "_".join(names[k] for k in keep)
        write_grid_file(os.path.join(out, f"{prefix}_{tag}.dat"), [names[k] for k in keep],
                        [_axis(n)] * len(keep), f, [True] * len(keep),
                        lower=[-math.pi] * len(keep), upper=[math.pi] * len(keep))


def run_reference_ala4(out: str, time_ns: float = 20.0, platform: str = "CPU", threads: int = 1,
                       bias_factor: float = 8.0, height: float = 1.2, width: float = 0.35,
                       frequency: int = 500, grid_width: int = 37, seed: int = 1, progress: bool = True,
                       restart: bool = False, chunk_ps: float = 100.0) -> str:
    """WT-metaD (``app.Metadynamics``) of Ace-Ala3-Nme over φ1, φ2, φ3; total ``time_ns``.

    Writes ``fes_reference_3d.dat`` (φ1 slowest; ``grid_width − 1`` points per periodic axis),
    the marginals ``fes_reference_phi1_phi2.dat``, ``..._phi2_phi3.dat``, ``..._phi{i}.dat``,
    ``colvar`` (time, φ1, φ2, φ3 every ``frequency`` steps) and ``checkpoint.pkl`` (bias grid,
    Context checkpoint) every ``chunk_ps``; ``restart`` continues from it.

    Examples
    --------
    >>> run_reference_ala4("ref_ala4", time_ns=0.001, progress=False)   # doctest: +SKIP
    'ref_ala4/fes_reference_3d.dat'
    """
    import torch  # noqa: F401
    import openmm as mm
    from openmm import app, unit
    from tqdm import tqdm

    from ..platforms import get_platform
    from ..systems import alanine_tetrapeptide

    if not time_ns > 0:
        raise ValueError(f"time must be > 0, got {time_ns} ns")
    if grid_width < 4 or frequency < 1:
        raise ValueError(f"need grid_width >= 4 and frequency >= 1, got {grid_width}, {frequency}")
    pep = alanine_tetrapeptide()
    os.makedirs(out, exist_ok=True)
    cvs = []
    for name in ("phi1", "phi2", "phi3"):
        t = mm.CustomTorsionForce("theta")
        t.addTorsion(*pep.torsions[name], [])
        cvs.append(app.BiasVariable(t, -math.pi, math.pi, width, True, grid_width))
    meta = app.Metadynamics(pep.system, cvs, 300 * unit.kelvin, bias_factor, height * unit.kilojoule_per_mole,
                            frequency, saveFrequency=None, biasDir=None)
    dt = 0.002
    integ = mm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, dt * unit.picosecond)
    integ.setRandomNumberSeed(seed)
    plat = get_platform(platform)
    props = {"Threads": str(threads)} if plat.getName() == "CPU" else {}
    sim = app.Simulation(pep.topology, pep.system, integ, plat, props)
    sim.context.setPositions(pep.positions)
    sim.context.setVelocitiesToTemperature(300 * unit.kelvin, seed)
    checkpoint, colvar = os.path.join(out, "checkpoint.pkl"), os.path.join(out, "colvar")
    if restart:
        if not os.path.exists(checkpoint):
            raise ValueError(f"checkpoint {checkpoint!r} does not exist")
        with open(checkpoint, "rb") as fh:
            state = pickle.load(fh)
        # OpenMM's Metadynamics has no restart of its own: restore its grid (private attributes)
        meta._selfBias[...] = state["bias"]
        meta._totalBias[...] = state["bias"]
        meta._table.setFunctionParameters(*meta._widths, meta._totalBias.flatten(), *meta._limits)
        meta._force.updateParametersInContext(sim.context)
        sim.context.loadCheckpoint(state["context"])
        sim.currentStep = state["step"]
        if os.path.exists(colvar):  # drop rows written after the checkpoint (a run killed mid-chunk)
            with open(colvar) as fh:
                lines = fh.readlines()
            keep = [ln for ln in lines if ln.startswith("#") or float(ln.split()[0]) <= state["step"] * 0.002 + 1e-9]
            with open(colvar, "w") as fh:
                fh.writelines(keep)
    else:
        with open(colvar, "w") as fh:
            fh.write("#! FIELDS time phi1 phi2 phi3\n")
    total = int(round(time_ns * 1000 / dt))
    chunk = max(frequency, int(round(chunk_ps / dt)) // frequency * frequency)
    t0, start = time.time(), sim.currentStep
    with tqdm(total=round(time_ns, 4), initial=round(start * dt / 1000, 4), unit="ns", disable=not progress) as bar:
        while sim.currentStep < total:
            rows = []
            end = min(total, sim.currentStep + chunk)
            while sim.currentStep < end:
                meta.step(sim, min(frequency - sim.currentStep % frequency, end - sim.currentStep))
                rows.append([sim.currentStep * dt, *meta.getCollectiveVariables(sim)])
            with open(colvar, "a") as fh:
                np.savetxt(fh, np.array(rows), fmt="%.6f")
            bar.n = round(sim.currentStep * dt / 1000, 4)
            bar.set_postfix(ns_day=f"{(sim.currentStep - start) * dt * 1e-3 / ((time.time() - t0) / 86400):.0f}")
            bar.refresh()
            _write(meta, out, grid_width)
            state = {"bias": np.array(meta._selfBias), "context": sim.context.createCheckpoint(),
                     "step": sim.currentStep}
            with open(checkpoint + ".tmp", "wb") as fh:
                pickle.dump(state, fh)
            os.replace(checkpoint + ".tmp", checkpoint)
    return os.path.join(out, "fes_reference_3d.dat")


def _write(meta, out, grid_width):
    from openmm import unit

    fes = np.asarray(meta.getFreeEnergy().value_in_unit_system(unit.md_unit_system))
    fes = fes[:-1, :-1, :-1].transpose(2, 1, 0)  # [φ3, φ2, φ1] → [φ1, φ2, φ3], drop endpoints
    fes = fes - fes.min()
    n = grid_width - 1
    write_grid_file(os.path.join(out, "fes_reference_3d.dat"), ["phi1", "phi2", "phi3"], [_axis(n)] * 3, fes,
                    [True] * 3, lower=[-math.pi] * 3, upper=[math.pi] * 3)
    _write_marginals(out, marginals_from_fes3d(fes, KB * meta.temperature.value_in_unit(unit.kelvin)), n)


def reweighted_marginals(colvar, kT: float, n: int = 36, t_min: float = 0.0, column: str = "rbias",
                         t_max: float = math.inf) -> dict:
    """Marginals of φ1, φ2, φ3 from a Deep-VES ``colvar`` (weights exp(rbias/kT), ``t_min`` ≤ t < ``t_max`` ps).

    ``colvar`` is a path or the dict of columns that ``read_colvar`` returns.

    Histogram bins are centred on the reference grid points −π + i·2π/n (periodic).
    """
    from ..analysis.fes_io import read_colvar

    data = read_colvar(colvar) if isinstance(colvar, (str, os.PathLike)) else colvar
    keep = (data["time"] >= t_min) & (data["time"] < t_max)
    if not keep.any():
        where = repr(colvar) if isinstance(colvar, (str, os.PathLike)) else "the colvar data"
        raise ValueError(f"no colvar frame with {t_min} <= t < {t_max} ps in {where}")
    phi = np.column_stack([data[k][keep] for k in ("phi1", "phi2", "phi3")])
    return weighted_marginals(phi, data[column][keep] / kT, kT, n)


def weighted_marginals(phi: np.ndarray, logw: np.ndarray, kT: float, n: int = 36) -> dict:
    """Free-energy marginals :data:`MARGINALS` (kJ/mol, min 0) of samples ``phi`` (N, 3; rad) with
    log-weights ``logw`` (N,); bins centred on −π + i·2π/n (periodic); empty bins are ``inf``."""
    w = np.exp(logw - np.max(logw))
    idx = np.floor((np.asarray(phi) + math.pi) / (2 * math.pi) * n + 0.5).astype(int) % n
    out = {}
    for m in MARGINALS:
        flat = idx[:, m[0]] if len(m) == 1 else idx[:, m[0]] * n + idx[:, m[1]]
        h = np.bincount(flat, weights=w, minlength=n ** len(m)).reshape([n] * len(m))
        with np.errstate(divide="ignore"):
            f = -kT * np.log(h)
        out[m] = f - f[np.isfinite(f)].min()
    return out


def compare_ala4(colvar: str, reference_dir: str, t_min: float = 0.0, cutoff: float = 20.0,
                 temperature: float = 300.0) -> dict:
    """RMSE (kJ/mol, best constant offset, over F_ref < cutoff) of every marginal: {name: (rmse, n)}."""
    from ..analysis.compare import fes_rmse
    from ..analysis.fes_io import read_grid_file

    names = ["phi1", "phi2", "phi3"]
    n = len(read_grid_file(os.path.join(reference_dir, "fes_reference_phi1.dat"))[1])
    ref_marg = {}
    for m in MARGINALS:  # grid files: first CV slowest, as the arrays here
        tag = "_".join(names[k] for k in m)
        ref_marg[m] = read_grid_file(os.path.join(reference_dir, f"fes_reference_{tag}.dat"))[1].reshape([n] * len(m))
    rw = reweighted_marginals(colvar, KB * temperature, n=n, t_min=t_min)
    return {"_".join(names[k] for k in m): fes_rmse(rw[m], ref_marg[m], cutoff) for m in MARGINALS}
