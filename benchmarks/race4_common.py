"""Constants and helpers shared by the tetrapeptide race's runners (``race4_methods.py``), its run loop
(``race4.py``) and its report (``race4_report.py``): CPU time of a process tree, atomic pickles, torsions of
positions, the six-torsion colvar file, the Simulation and torsion forces, the columns of ``progress.csv``."""

from __future__ import annotations

import math
import os
import pickle

import numpy as np

from openmm_nnbias._units import KB
from race_progress import write_rows as _write_rows

TEMPERATURE, TIMESTEP_PS, FRICTION = 300.0, 0.002, 1.0
KT = KB * TEMPERATURE  # kJ/mol
SAMPLE_STEPS = 500  # 1 ps between colvar frames (= the deposition / iteration stride)
TORSIONS = ("phi1", "psi1", "phi2", "psi2", "phi3", "psi3")
BIASED3 = ("phi1", "phi2", "phi3")
COLVAR_FIELDS = ("time",) + TORSIONS + ("bias", "rbias")
RMSE = ["rmse_mean"] + [f"rmse_{t}" for t in TORSIONS]
#: columns of a run's ``progress.csv``
FIELDS = (["t_ns", "steps", "cpu_s", "wall_s", "seg_cpu_s", "fes_cpu_s", "unbiased_cpu_s_per_ns", "speed_ratio"]
          + RMSE + ["covered", "rmse_mean_alt", "covered_alt", "estimate", "estimate_alt", "decay_ps"])


# ----------------------------------------------------------------------------------------------- helpers
def tree_cpu():
    """CPU seconds (user + system) of this process and all its descendants, finished ones included.

    This process: ``time.process_time`` (ns resolution). ``time.process_time`` misses a learner
    process: finished children that were waited for are in psutil's ``children_user``/``children_system``,
    running ones are read one by one (10 ms ticks).
    """
    import time

    import psutil

    me = psutil.Process()
    t = me.cpu_times()
    total = time.process_time() + t.children_user + t.children_system
    for child in me.children(recursive=True):
        try:
            c = child.cpu_times()
            total += c.user + c.system
        except psutil.Error:  # ended between the listing and the read: counted once reaped
            pass
    return total


def _atomic_pickle(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        pickle.dump(obj, fh)
    os.replace(tmp, path)


def dihedrals(pos, quads):
    """Torsion angles (rad, (−π, π], OpenMM's sign convention) of ``quads`` (k, 4) in positions ``pos`` (n, 3)."""
    p = np.asarray(pos, float)[np.asarray(quads)]
    b1, b2, b3 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 1], p[:, 3] - p[:, 2]
    n1, n2 = np.cross(b1, b2), np.cross(b2, b3)
    y = np.linalg.norm(b2, axis=1) * np.sum(b1 * n2, axis=1)
    return np.arctan2(y, np.sum(n1 * n2, axis=1))


def write_colvar_header(path):
    with open(path, "w") as fh:
        fh.write("#! FIELDS " + " ".join(COLVAR_FIELDS) + "\n#! SET units_time ps\n"
                 + "".join(f"#! SET units_{t} rad\n" for t in TORSIONS)
                 + "#! SET units_bias kJ/mol\n#! SET units_rbias kJ/mol\n")


def truncate_colvar(path, t_ps):
    """Keep the header and the whole rows with time ≤ ``t_ps`` (rows of a segment cut by a kill go, a torn line too)."""
    if not os.path.exists(path):
        return
    tmp = path + ".tmp"
    with open(path) as src, open(tmp, "w") as dst:
        for line in src:
            f = line.split()
            if line.startswith("#") or (len(f) == len(COLVAR_FIELDS) and line.endswith("\n")
                                        and float(f[0]) <= t_ps + 1e-6):
                dst.write(line)
    os.replace(tmp, path)


def _simulation(pep, system, seed):
    import openmm as mm
    from openmm import app, unit

    integ = mm.LangevinMiddleIntegrator(TEMPERATURE * unit.kelvin, FRICTION / unit.picosecond,
                                        TIMESTEP_PS * unit.picosecond)
    integ.setRandomNumberSeed(int(seed))
    sim = app.Simulation(pep.topology, system, integ, mm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    sim.context.setPositions(pep.positions)
    sim.context.setVelocitiesToTemperature(TEMPERATURE * unit.kelvin, int(seed))
    return sim


def _torsion_force(atoms):
    import openmm as mm

    t = mm.CustomTorsionForce("theta")
    t.addTorsion(*atoms, [])
    return t


def _to_phi_order(grid):
    """A grid indexed ``[φ3, φ2, φ1]`` on ``linspace(−π, π, n)`` → ``[φ1, φ2, φ3]`` without the endpoint."""
    g = np.asarray(grid, float)[:-1, :-1, :-1].transpose(2, 1, 0)
    return -math.pi + 2 * math.pi * np.arange(g.shape[0]) / g.shape[0], g


# ----------------------------------------------------------------------------------------------- progress.csv
def write_rows(path, rows):
    _write_rows(path, rows, FIELDS)
