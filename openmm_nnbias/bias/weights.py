"""Shared, memory-mapped flat weight buffer: the live-update channel to running Contexts."""

import atexit
import os
import tempfile

import numpy as np
import torch

__all__ = ["SharedWeights"]

_FILES: set = set()


@atexit.register
def _cleanup() -> None:  # pragma: no cover - runs at interpreter exit
    for path in list(_FILES):
        try:
            os.unlink(path)
        except OSError:
            pass


def _shm_dir() -> str:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()


class SharedWeights:
    """A flat parameter vector in a memory-mapped file, written in place.

    Parameters
    ----------
    numel : int
        Number of parameters.
    dtype : torch.dtype
        ``torch.float64`` or ``torch.float32``.
    directory : str, optional
        Where to create the file (``/dev/shm`` when available: RAM-backed).

    Examples
    --------
    >>> import torch
    >>> w = SharedWeights(3, torch.float64)
    >>> w.write(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    >>> w.read().tolist()
    [1.0, 2.0, 3.0]
    """

    def __init__(self, numel: int, dtype: torch.dtype = torch.float64, directory: str = None):
        np_dtype = {torch.float64: np.float64, torch.float32: np.float32}.get(dtype)
        if np_dtype is None:
            raise ValueError(f"SharedWeights supports float32 and float64, got {dtype}")
        fd, self.path = tempfile.mkstemp(prefix="openmm_nnbias_", suffix=".weights",
                                         dir=directory or _shm_dir())
        os.close(fd)
        _FILES.add(self.path)
        self.numel = int(numel)
        self.dtype = dtype
        self._array = np.memmap(self.path, dtype=np_dtype, mode="w+", shape=(self.numel,))
        self._view = torch.from_numpy(self._array)

    def write(self, flat: torch.Tensor) -> None:
        """Copy a flat parameter vector into the shared buffer (in place, no allocation)."""
        if flat.numel() != self.numel:
            raise ValueError(f"expected {self.numel} parameters, got {flat.numel()}")
        self._view.copy_(flat.detach().reshape(-1))

    def write_parameters(self, module: torch.nn.Module) -> None:
        """Copy ``module.parameters()`` (in order) into the buffer.

        Raises ValueError, leaving the buffer unchanged, if any weight is NaN or infinite.
        """
        with torch.no_grad():
            flat = torch.cat([p.detach().reshape(-1) for p in module.parameters()])
        if flat.numel() != self.numel:
            raise ValueError(f"module has {flat.numel()} parameters, buffer holds {self.numel}")
        if not bool(torch.isfinite(flat).all()):
            raise ValueError("bias weights contain non-finite values (NaN or inf); not pushed")
        self._view.copy_(flat)

    def read(self) -> torch.Tensor:
        return self._view.clone()
