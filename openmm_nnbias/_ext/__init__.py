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
import threading
import time
from typing import Optional

import torch

__all__ = ["FusedKernelsUnavailable", "compiler_missing", "load_ops", "ops_loaded"]

logger = logging.getLogger(__name__)

_HERE = os.path.dirname(os.path.abspath(__file__))
_SOURCES = ("ops.cpp",)
_HEADERS = ("common.h", "envsim.h", "sw.h", "verlet.h")
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
    except (AttributeError, RuntimeError):
        return False
    return True


def _digest() -> str:
    sha = hashlib.sha256(torch.__version__.encode())
    for name in _SOURCES + _HEADERS:
        with open(os.path.join(_HERE, name), "rb") as handle:
            sha.update(name.encode() + b"\0" + handle.read())
    return sha.hexdigest()[:16]


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
                f"openmm_nnbias: the fused kernels (Stillinger-Weber route 'fused', FusedEnvironmentSimilarity) "
                f"are compiled on first use, but {why}; the TorchScript routes need no compiler")
        from torch.utils import cpp_extension

        digest = _digest()
        name = f"openmm_nnbias_ops_{digest}"
        start = time.perf_counter()
        logger.info("loading the fused kernels %s (compiled on first use, ~30 s) from %s", name,
                    os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root())
        try:
            cpp_extension.load(name=name, sources=[os.path.join(_HERE, s) for s in _SOURCES],
                               extra_cflags=["-O3", "-fno-math-errno", "-std=c++17"],
                               extra_include_paths=[_HERE], is_python_module=False, verbose=False)
        except Exception as exc:  # noqa: BLE001 - any failure: one error that names it
            raise FusedKernelsUnavailable(f"openmm_nnbias: compiling or loading the fused kernels failed: "
                                          f"{type(exc).__name__}: {exc}") from exc
        if not ops_loaded():
            raise FusedKernelsUnavailable(f"openmm_nnbias: the library {name} loaded but registered no operators")
        logger.info("fused kernels ready in %.1f s", time.perf_counter() - start)
        _LOADED = True
