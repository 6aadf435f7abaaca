"""Reference free energies by well-tempered metadynamics (:class:`~openmm_nnbias.metad.WellTemperedMetadynamics`).

* :func:`run_reference` — alanine dipeptide over φ/ψ → ``fes_reference.dat``; with
  ``system="alanine-tetrapeptide"`` it calls :func:`run_reference_ala4`.
* :func:`run_reference_ala4` — Ace-Ala3-Nme over φ1, φ2, φ3 on a 3-D grid, the 3-D FES and its
  marginals (:mod:`openmm_nnbias.analysis.marginals`); restartable exactly from ``checkpoint.pt``.

Settings come from :data:`~openmm_nnbias.recipes.METAD_RECIPES`. MD units: rad, kJ/mol, K, ps.
"""

from __future__ import annotations

import math
import os
import pickle
import time
from typing import Optional

import numpy as np

from .._io import atomic_write, truncate_rows
from .._units import KB
from ..io import write_grid_file

__all__ = ["run_reference", "run_reference_ala4", "run_reference_restartable"]


def _setup(name: str, platform: str, threads: int, seed: int, overrides: dict):
    """(simulation, metadynamics, recipe) of a WT-metaD reference run of system ``name``."""
    import dataclasses

    import openmm as mm
    from openmm import app, unit

    from ..metad import WellTemperedMetadynamics
    from ..platforms import get_platform
    from ..recipes import get_recipe, get_system

    r = dataclasses.replace(get_recipe(name, "metad"), **{k: v for k, v in overrides.items() if v is not None})
    pep = get_system(name)
    meta = WellTemperedMetadynamics(pep.system, [pep.torsions[t] for t in r.torsions], r.temperature,
                                    r.biasFactor, r.height, r.width, r.frequency, r.gridWidth)
    temperature = r.temperature * unit.kelvin
    integ = mm.LangevinMiddleIntegrator(temperature, r.friction / unit.picosecond, r.timestep * unit.picosecond)
    integ.setRandomNumberSeed(seed)
    plat = get_platform(platform)
    props = {"Threads": str(threads)} if plat.getName() == "CPU" else {}
    sim = app.Simulation(pep.topology, pep.system, integ, plat, props)
    sim.context.setPositions(pep.positions)
    sim.context.setVelocitiesToTemperature(temperature, seed)
    return sim, meta, r


def _free_energy(meta) -> np.ndarray:
    """FES (kJ/mol, min 0) first torsion slowest, the repeated periodic endpoint dropped."""
    f = meta.getFreeEnergy()  # indexed last torsion first
    f = f[(slice(None, -1),) * f.ndim].transpose(tuple(range(f.ndim))[::-1])
    return f - f.min()


def _save_state(path: str, bias: np.ndarray, context: bytes, step: int) -> None:
    """``checkpoint.pt``: plain data only (loads with ``torch.load(weights_only=True)``)."""
    import torch

    with open(path, "wb") as fh:
        torch.save({"bias": torch.from_numpy(np.ascontiguousarray(bias)), "context": context, "step": int(step)}, fh)


def load_reference_checkpoint(out: str) -> dict:
    """The reference run's restart state in ``out``: ``{"bias": ndarray, "context": bytes, "step": int}``.

    Reads ``checkpoint.pt`` (plain data, ``weights_only=True``). A run whose folder holds only the
    ``checkpoint.pkl`` of earlier versions is converted once: the pickle (written by this package)
    is read and ``checkpoint.pt`` written beside it; later restarts read only ``checkpoint.pt``.
    Raises ValueError when neither exists.
    """
    import logging

    import torch

    path, legacy = os.path.join(out, "checkpoint.pt"), os.path.join(out, "checkpoint.pkl")
    if not os.path.exists(path):
        if not os.path.exists(legacy):
            raise ValueError(f"restart: checkpoint {path!r} does not exist")
        with open(legacy, "rb") as fh:
            state = pickle.load(fh)
        atomic_write(path, lambda tmp: _save_state(tmp, state["bias"], state["context"], state["step"]), suffix=".pt")
        logging.getLogger(__name__).warning("converted %s to %s (plain data); the .pkl file is no longer read",
                                            legacy, path)
    state = torch.load(path, weights_only=True)
    return {"bias": state["bias"].numpy(), "context": state["context"], "step": int(state["step"])}


def _axis(n: int) -> np.ndarray:
    return -math.pi + 2 * math.pi * np.arange(n) / n


def _write_fes(path: str, names, fes: np.ndarray) -> None:
    d = len(names)
    write_grid_file(path, list(names), [_axis(fes.shape[0])] * d, fes, [True] * d,
                    lower=[-math.pi] * d, upper=[math.pi] * d, units=["rad"] * d)


def run_reference(out: str, timeNs: float = 50.0, platform: str = "CPU", threads: int = 1,
                  biasFactor: Optional[float] = None, height: Optional[float] = None, width: Optional[float] = None,
                  frequency: Optional[int] = None, gridWidth: Optional[int] = None, seed: int = 1,
                  progress: bool = True, snapshotNs: Optional[float] = None, system: str = "alanine-dipeptide",
                  restart: bool = False) -> str:
    """Run WT-metadynamics over φ/ψ for ``timeNs`` ns and write ``out/fes_reference.dat`` (kJ/mol, min 0).

    The file holds ``gridWidth − 1`` points per CV at ``−π + i·2π/(gridWidth − 1)`` (the grid's
    repeated periodic endpoint dropped). With ``snapshotNs`` the FES is also kept every
    ``snapshotNs`` as ``fes_<t>ns.dat`` (to follow convergence). ``biasFactor``, ``height``
    (kJ/mol), ``width`` (rad), ``frequency`` (steps) and ``gridWidth`` default to the recipe's.
    ``system="alanine-tetrapeptide"``: :func:`run_reference_ala4` (restartable). Returns the FES path.
    """
    overrides = dict(biasFactor=biasFactor, height=height, width=width, frequency=frequency, gridWidth=gridWidth)
    if system == "alanine-tetrapeptide":
        return run_reference_ala4(out, timeNs, platform=platform, threads=threads, seed=seed,
                                  progress=progress, restart=restart, **overrides)
    if system in ("alanine-dipeptide-solvated", "alanine-dipeptide-solvated-hmr"):
        return run_reference_restartable(system, out, timeNs, platform=platform, threads=threads, seed=seed,
                                         progress=progress, restart=restart, **overrides)
    if system != "alanine-dipeptide" or restart:
        raise ValueError(f"reference: system {system!r}" + (" with restart" if restart else "")
                         + " is not supported (alanine-dipeptide without restart, alanine-dipeptide-solvated(-hmr), "
                         "alanine-tetrapeptide)")
    if not timeNs > 0:
        raise ValueError(f"time must be > 0, got {timeNs} ns")
    from tqdm import tqdm

    sim, meta, r = _setup(system, platform, threads, seed, overrides)
    os.makedirs(out, exist_ok=True)
    total = int(round(timeNs * 1000 / r.timestep))
    chunk = max(r.frequency, int(round(snapshotNs * 1000 / r.timestep))) if snapshotNs else 50000
    t0 = time.time()
    with tqdm(total=round(timeNs, 3), unit="ns", disable=not progress) as bar:
        while sim.currentStep < total:
            n = min(chunk, total - sim.currentStep)
            meta.step(sim, n)
            bar.update(n * r.timestep / 1000)
            bar.set_postfix(ns_day=f"{sim.currentStep * r.timestep * 1e-3 / ((time.time() - t0) / 86400):.0f}")
            fes = _free_energy(meta)
            _write_fes(os.path.join(out, "fes_reference.dat"), r.torsions, fes)
            if snapshotNs:
                _write_fes(os.path.join(out, f"fes_{sim.currentStep * r.timestep / 1000:.2f}ns.dat"), r.torsions, fes)
    return os.path.join(out, "fes_reference.dat")


def run_reference_ala4(out: str, timeNs: float = 20.0, platform: str = "CPU", threads: int = 1,
                       seed: int = 1, progress: bool = True, restart: bool = False, chunkPs: float = 100.0,
                       **overrides) -> str:
    """WT-metaD of Ace-Ala3-Nme over φ1, φ2, φ3 for a total of ``timeNs`` ns.

    Writes ``fes_reference_3d.dat`` (φ1 slowest; ``gridWidth − 1`` points per periodic axis),
    the marginals ``fes_reference_phi1_phi2.dat``, ``..._phi2_phi3.dat``, ``..._phi{i}.dat``,
    ``colvar`` (time ps, φ1, φ2, φ3 rad every ``frequency`` steps) and ``checkpoint.pt`` (bias
    grid, Context checkpoint, step) every ``chunkPs`` ps; ``restart`` continues from it exactly.
    ``overrides``: fields of the recipe's :class:`~openmm_nnbias.recipes.MetadRecipe`
    (``biasFactor``, ``height``, ``width``, ``frequency``, ``gridWidth``).

    Examples
    --------
    >>> run_reference_ala4("ref_ala4", timeNs=0.001, progress=False)   # doctest: +SKIP
    'ref_ala4/fes_reference_3d.dat'
    """
    return run_reference_restartable("alanine-tetrapeptide", out, timeNs, platform, threads, seed, progress,
                                     restart, chunkPs, **overrides)


def _write_reference(out: str, system: str, r, fes: np.ndarray) -> str:
    """The FES files of a reference run; returns the main one's path."""
    if len(r.torsions) == 3:
        from ..analysis.marginals import marginals_from_fes3d, write_marginals

        _write_fes(os.path.join(out, "fes_reference_3d.dat"), r.torsions, fes)
        write_marginals(out, marginals_from_fes3d(fes, KB * r.temperature), fes.shape[0])
        return os.path.join(out, "fes_reference_3d.dat")
    _write_fes(os.path.join(out, "fes_reference.dat"), r.torsions, fes)
    return os.path.join(out, "fes_reference.dat")


def run_reference_restartable(system: str, out: str, timeNs: float, platform: str = "CPU", threads: int = 1,
                              seed: int = 1, progress: bool = True, restart: bool = False, chunkPs: float = 100.0,
                              **overrides) -> str:
    """WT-metaD of an embedded system over its recipe's torsions, restartable exactly, for ``timeNs`` ns in total.

    Every ``chunkPs`` ps it writes the FES (``fes_reference.dat``; for three torsions
    ``fes_reference_3d.dat`` and its marginals), appends ``colvar`` (time ps, torsions rad, every
    ``frequency`` steps) and saves ``checkpoint.pt`` (bias grid, Context checkpoint, step) atomically;
    ``restart`` continues from it (rows written after it are dropped). Returns the main FES path.
    """
    from tqdm import tqdm

    if not timeNs > 0:
        raise ValueError(f"time must be > 0, got {timeNs} ns")
    checkpoint, colvar = os.path.join(out, "checkpoint.pt"), os.path.join(out, "colvar")
    if restart and not (os.path.exists(checkpoint) or os.path.exists(os.path.join(out, "checkpoint.pkl"))):
        raise ValueError(f"restart: checkpoint {checkpoint!r} does not exist")
    sim, meta, r = _setup(system, platform, threads, seed, overrides)
    dt = r.timestep
    os.makedirs(out, exist_ok=True)
    if restart:
        state = load_reference_checkpoint(out)
        meta.setBias(state["bias"], sim.context)
        sim.context.loadCheckpoint(state["context"])
        sim.currentStep = state["step"]
        if os.path.exists(colvar):  # drop rows written after the checkpoint (a run killed mid-chunk)
            truncate_rows(colvar, lambda t: float(t) <= state["step"] * dt + 1e-9)
    else:
        with open(colvar, "w") as fh:
            fh.write("#! FIELDS time " + " ".join(r.torsions) + "\n#! SET units_time ps\n"
                     + "".join(f"#! SET units_{t} rad\n" for t in r.torsions))
    total = int(round(timeNs * 1000 / dt))
    chunk = max(r.frequency, int(round(chunkPs / dt)) // r.frequency * r.frequency)
    t0, start = time.time(), sim.currentStep
    path = None
    with tqdm(total=round(timeNs, 4), initial=round(start * dt / 1000, 4), unit="ns", disable=not progress) as bar:
        while sim.currentStep < total:
            rows = []
            end = min(total, sim.currentStep + chunk)
            while sim.currentStep < end:
                meta.step(sim, min(r.frequency - sim.currentStep % r.frequency, end - sim.currentStep))
                rows.append([sim.currentStep * dt, *meta.getCollectiveVariables(sim)])
            with open(colvar, "a") as fh:
                np.savetxt(fh, np.array(rows), fmt="%.6f")
            bar.n = round(sim.currentStep * dt / 1000, 4)
            bar.set_postfix(ns_day=f"{(sim.currentStep - start) * dt * 1e-3 / ((time.time() - t0) / 86400):.0f}")
            bar.refresh()
            path = _write_reference(out, system, r, _free_energy(meta))
            bias, context, step = meta.getBias(), sim.context.createCheckpoint(), sim.currentStep
            atomic_write(checkpoint, lambda tmp: _save_state(tmp, bias, context, step), suffix=".pt")
    return path or _write_reference(out, system, r, _free_energy(meta))
