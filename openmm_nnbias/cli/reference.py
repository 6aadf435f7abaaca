"""Reference FES of alanine dipeptide with OpenMM's own well-tempered ``app.Metadynamics``."""

import math
import os
import time

import numpy as np

from ..analysis.fes_io import write_grid_file

__all__ = ["run_reference"]


def run_reference(out: str, time_ns: float = 50.0, platform: str = "CPU", threads: int = 1,
                  bias_factor: float = 6.0, height: float = 1.0, width: float = 0.35,
                  frequency: int = 500, grid_width: int = 73, seed: int = 1, progress: bool = True,
                  snapshot_ns: float = None, system: str = "alanine-dipeptide", restart: bool = False):
    """Run WT-metadynamics over φ/ψ and write ``out/fes_reference.dat`` (kJ/mol, min 0).

    OpenMM's ``Metadynamics.getFreeEnergy()`` puts periodic variables on
    ``np.linspace(min, max, gridWidth)`` (endpoint included, last point = first); the last
    point of each periodic axis is dropped before writing, so the file holds ``gridWidth − 1``
    points per CV at ``min + i·2π/(gridWidth − 1)``. With ``snapshot_ns`` the FES is also kept
    every ``snapshot_ns`` as ``fes_<t>ns.dat`` (to follow convergence).
    ``system="alanine-tetrapeptide"``: WT-metaD over φ1, φ2, φ3, see
    :func:`~openmm_nnbias.cli.reference_ala4.run_reference_ala4` (restartable).
    """
    if system == "alanine-tetrapeptide":
        from .reference_ala4 import run_reference_ala4

        return run_reference_ala4(out, time_ns, platform=platform, threads=threads, seed=seed,
                                  progress=progress, restart=restart)
    if system != "alanine-dipeptide" or restart:
        raise ValueError(f"reference: system {system!r}" + (" with --restart" if restart else "")
                         + " is not supported (alanine-dipeptide without restart, or alanine-tetrapeptide)")
    import torch  # noqa: F401
    import openmm as mm
    from openmm import app, unit
    from tqdm import tqdm

    from ..platforms import get_platform
    from ..systems import alanine_dipeptide

    pep = alanine_dipeptide()
    os.makedirs(out, exist_ok=True)
    cvs = []
    for name in ("phi", "psi"):
        t = mm.CustomTorsionForce("theta")
        t.addTorsion(*pep.torsions[name], [])
        cvs.append(app.BiasVariable(t, -math.pi, math.pi, width, True, grid_width))
    meta = app.Metadynamics(pep.system, cvs, 300 * unit.kelvin, bias_factor, height * unit.kilojoule_per_mole,
                            frequency, saveFrequency=None, biasDir=None)
    integ = mm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.002 * unit.picosecond)
    integ.setRandomNumberSeed(seed)
    plat = get_platform(platform)
    props = {"Threads": str(threads)} if platform == "CPU" else {}
    sim = app.Simulation(pep.topology, pep.system, integ, plat, props)
    sim.context.setPositions(pep.positions)
    sim.context.setVelocitiesToTemperature(300 * unit.kelvin, seed)
    total = int(round(time_ns * 1000 / 0.002))
    chunk = 50000
    if snapshot_ns:
        chunk = max(frequency, int(round(snapshot_ns * 1000 / 0.002)))
    t0 = time.time()
    with tqdm(total=round(time_ns, 3), unit="ns", disable=not progress) as bar:
        done = 0
        while done < total:
            n = min(chunk, total - done)
            meta.step(sim, n)
            done += n
            bar.update(n * 0.002 / 1000)
            bar.set_postfix(ns_day=f"{done * 0.002e-3 / ((time.time() - t0) / 86400):.0f}")
            _write(meta, out, grid_width)
            if snapshot_ns:
                _write(meta, out, grid_width, f"fes_{done * 0.002 / 1000:.2f}ns.dat")
    return os.path.join(out, "fes_reference.dat")


def _write(meta, out, grid_width, name="fes_reference.dat"):
    fes = meta.getFreeEnergy().value_in_unit_system(__import__("openmm").unit.md_unit_system)
    fes = np.asarray(fes)[:-1, :-1]   # drop the repeated periodic endpoint (see docstring)
    # getFreeEnergy() is indexed [psi, phi] (last variable first); write phi slowest
    fes = fes.T
    fes = fes - fes.min()
    axis = np.linspace(-math.pi, math.pi, grid_width)[:-1]
    write_grid_file(os.path.join(out, name), ["phi", "psi"], [axis, axis], fes, [True, True],
                    lower=[-math.pi, -math.pi], upper=[math.pi, math.pi])
