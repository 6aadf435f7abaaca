"""Fused CPU kernels: C++ TorchScript operators ``torch.ops.openmm_nnbias.<name>``, compiled on first use.

The C++ sources ship with the package (``ops.cpp`` and the kernels in ``*.h``). :func:`load_ops`
compiles them once with ``torch.utils.cpp_extension.load`` (a C++ compiler and ``ninja`` are
needed; about 30 s on one core) into torch's extensions cache (``$TORCH_EXTENSIONS_DIR``, by
default ``~/.cache/torch_extensions``) and loads the library into the process; later processes
load the cached library in well under a second. The build directory is named after a hash of
the sources, so every version of them has its own library.

Operators (units: nm, kJ/mol; float64 results; see the ``*.h`` files for the formulas):

``verlet_build(positions, box, reach) -> (pairs, image_bound)``
    Pairs ``i < j`` closer than ``reach`` under OpenMM's minimum image, as a ``(P, 5)`` int32 table
    ``(i, j, s0, s1, s2)`` with the periodic image ``s`` of the pair, and ``max |s_k|`` ``(3,)``.
``verlet_stale(positions, box, ref_positions, ref_box, image_bound, skin) -> bool``
    Whether a list built at ``ref_positions`` / ``ref_box`` may miss a pair now.
``sw_energy_forces(positions, box, pairs, cutoff, A_eps, B, sigma, p, q, gamma_sigma, lam_eps, cos0)``
    Stillinger-Weber ``(energy, forces (N, 3))``.
``envsim(positions, box, pairs, references, sigma, lam, rc, lcut, r0, nn, mm, jacobian)``
    The environment-similarity count ``(1,)``, per-atom similarities ``(m,)`` and the Jacobian ``(m, 3)``.
``envsim_switch(k, r0, nn, mm) -> (value, dvalue)``
    Its rational switch ``1 − s(k/r0)`` and the derivative in ``k``, elementwise.
``bias_torsions(positions, box, atoms, scale, flat, widths, activation) -> (energy, forces)``
    A neural bias over torsion CVs: torsions of the ``(K, 4)`` int64 table ``atoms`` (minimum image
    with a box), features ``(cos, sin)`` of ``scale · θ``, the MLP of layer ``widths`` ``(2K, …, 1)``
    whose weights lie in the float64 buffer ``flat`` (order of ``NeuralBias.parameters()``), forward
    and backward, and the atom forces ``(N, 3)`` (kJ/mol/nm); energy in kJ/mol. CPU only.

A scripted module that calls these operators can be saved and loaded (also by openmm-torch's
``TorchForce`` in the same process) once :func:`load_ops` has run in that process.

Examples
--------
>>> from openmm_nnbias._ext import compiler_missing, load_ops
>>> if compiler_missing() is None:
...     load_ops()
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import threading
import time
from typing import Optional

import torch

__all__ = ["FusedKernelsUnavailable", "build_directory", "clear_stale_lock", "compiler_missing", "load_ops", "ops_loaded"]

logger = logging.getLogger(__name__)

_HERE = os.path.dirname(os.path.abspath(__file__))
_SOURCES = ("ops.cpp",)
_HEADERS = ("bias_torsions.h", "common.h", "envsim.h", "sw.h", "verlet.h")
_LOCK = threading.Lock()
_LOADED = False


class FusedKernelsUnavailable(RuntimeError):
    """The fused kernels cannot be compiled or loaded here (the message says why)."""


def compiler_missing() -> Optional[str]:
    """Why the fused kernels cannot be compiled here, or None when a C++ compiler and ninja exist.

    Returns
    -------
    str or None
        A one-line reason (no C++ compiler on ``PATH``, no ``ninja``), None if both are there.
    """
    from torch.utils import cpp_extension

    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None:
        return f"no C++ compiler: {cxx!r} is not on PATH (install g++ or set CXX)"
    if not cpp_extension.is_ninja_available():
        return "ninja is not installed (pip install ninja)"
    return None


def ops_loaded() -> bool:
    """Whether the operators are registered in this process."""
    try:
        torch.ops.openmm_nnbias.sw_energy_forces  # noqa: B018 (raises when not registered)
        torch.ops.openmm_nnbias.envsim  # noqa: B018
        torch.ops.openmm_nnbias.bias_torsions  # noqa: B018
    except (AttributeError, RuntimeError):
        return False
    return True


def _digest() -> str:
    sha = hashlib.sha256(torch.__version__.encode())
    for name in _SOURCES + _HEADERS:
        with open(os.path.join(_HERE, name), "rb") as handle:
            sha.update(name.encode() + b"\0" + handle.read())
    return sha.hexdigest()[:16]


#: a build that holds its lock longer than this (s) is taken for one whose process died
STALE_LOCK_S = 900.0


def build_directory(name: str) -> str:
    """Where ``torch.utils.cpp_extension.load`` builds ``name`` by default (so a cached build is found).

    ``$TORCH_EXTENSIONS_DIR/name`` when that is set, else ``~/.cache/torch_extensions/py<X><Y>_<cpu|cuXYZ>/name``.
    """
    from torch.utils import cpp_extension

    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    if root is None:
        cuda = "cpu" if torch.version.cuda is None else f"cu{torch.version.cuda.replace('.', '')}"
        python = f"py{sys.version_info.major}{sys.version_info.minor}{getattr(sys, 'abiflags', '')}"
        root = os.path.join(cpp_extension.get_default_build_root(), f"{python}_{cuda}")
    return os.path.join(root, name)


def clear_stale_lock(build: str, stale_after: Optional[float] = None, poll: float = 1.0) -> bool:
    """Wait while another process builds in ``build``; remove a lock left by one that died.

    ``torch.utils.cpp_extension`` marks a build with the file ``build/lock`` and makes every other
    process wait for it to go, for ever: a build killed mid-way (Ctrl-C, a test timeout) would hang
    every later :func:`load_ops`. A lock older than ``stale_after`` s (default :data:`STALE_LOCK_S`,
    many times a build's ~30 s) is removed with a warning. Returns whether a lock was removed.
    """
    import warnings

    lock = os.path.join(build, "lock")
    stale_after = STALE_LOCK_S if stale_after is None else float(stale_after)
    while True:
        try:
            age = time.time() - os.path.getmtime(lock)
        except FileNotFoundError:
            return False
        if age > stale_after:
            warnings.warn(f"openmm_nnbias: removing the lock {lock} of a fused-kernel build that stopped "
                          f"{age / 60:.0f} min ago (its process died); building again", RuntimeWarning, stacklevel=3)
            try:
                os.remove(lock)
            except FileNotFoundError:
                pass
            return True
        time.sleep(poll)


def load_ops() -> None:
    """Compile (first use) and load the fused kernels into this process; a no-op once loaded.

    Raises
    ------
    FusedKernelsUnavailable
        No C++ compiler or no ninja (:func:`compiler_missing`), or the compilation failed (with
        the compiler's output). The TorchScript routes need neither.
    """
    global _LOADED
    with _LOCK:
        if _LOADED:
            return
        if ops_loaded():  # registered by an earlier copy of this module
            _LOADED = True
            return
        why = compiler_missing()
        if why is not None:
            raise FusedKernelsUnavailable(
                f"openmm_nnbias: the fused kernels (Stillinger-Weber route 'fused', FusedEnvironmentSimilarity, "
                f"FusedLiveBiasEnergy) are compiled on first use, but {why}; the TorchScript routes need no compiler")
        from torch.utils import cpp_extension

        digest = _digest()
        name = f"openmm_nnbias_ops_{digest}"
        build = build_directory(name)
        start = time.perf_counter()
        logger.info("loading the fused kernels %s (compiled on first use, ~30 s) from %s", name, build)
        try:
            os.makedirs(build, exist_ok=True)
            clear_stale_lock(build)
            cpp_extension.load(name=name, sources=[os.path.join(_HERE, s) for s in _SOURCES],
                               extra_cflags=["-O3", "-fno-math-errno", "-std=c++17"],
                               extra_include_paths=[_HERE], build_directory=build, is_python_module=False,
                               verbose=False)
        except Exception as exc:  # noqa: BLE001 - any failure: one error that names it
            raise FusedKernelsUnavailable(f"openmm_nnbias: compiling or loading the fused kernels failed: "
                                          f"{type(exc).__name__}: {exc}") from exc
        if not ops_loaded():
            raise FusedKernelsUnavailable(f"openmm_nnbias: the library {name} loaded but registered no operators")
        logger.info("fused kernels ready in %.1f s", time.perf_counter() - start)
        _LOADED = True
