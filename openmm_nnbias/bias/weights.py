"""Memory-mapped flat weight buffer of this process: the live-update channel to running Contexts.

The buffer is an unlinked file (``/dev/shm`` when available) reached only through this process's
file descriptor, ``/proc/self/fd/<n>``: nothing is left in ``/dev/shm`` however the process ends,
and no other process can map it (there the path names another descriptor or none). The descriptor
stays open for the life of the process (one per torch-backend force, ~14 kB of RAM each), since a
TorchForce may be in a System long after its Python objects are gone. Its first
elements are a header (a magic number and a random token) that the TorchScript module
(:class:`~openmm_nnbias.bias.modules.LiveBiasEnergy`) checks before using the weights.
"""

import os
import secrets
import sys
import tempfile

import numpy as np
import torch

__all__ = ["SharedWeights"]

_MAGIC = 20261201.0
_OPEN: list = []  # descriptors of every buffer of this process (one per torch-backend force)
_HEADER = 3  # magic, two 20-bit halves of the token (exact in float32 too)


def _shm_dir() -> str:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()


def _fd_path(fd: int) -> str:
    for root in ("/proc/self/fd", "/dev/fd"):
        if os.path.isdir(root):
            return f"{root}/{fd}"
    raise OSError(f"no /proc/self/fd or /dev/fd on this platform ({sys.platform}): the torch backend's live "
                  "weights need one; use backend='table'")


class SharedWeights:
    """A flat parameter vector in a memory-mapped buffer of this process, written in place.

    Parameters
    ----------
    numel : int
        Number of parameters.
    dtype : torch.dtype
        ``torch.float64`` or ``torch.float32``.
    directory : str, optional
        Where the (immediately unlinked) file is made (``/dev/shm`` when available: RAM-backed).

    Attributes
    ----------
    path : str
        ``/proc/self/fd/<n>``: valid in this process only, while this object lives.
    header : list of float
        What the buffer starts with (magic number, token halves).

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
        self.numel = int(numel)
        self.dtype = dtype
        token = secrets.randbits(40)
        self.header = [_MAGIC, float(token >> 20), float(token & 0xFFFFF)]
        fd, name = tempfile.mkstemp(prefix="openmm_nnbias_", suffix=".weights", dir=directory or _shm_dir())
        try:
            os.ftruncate(fd, (_HEADER + self.numel) * np.dtype(np_dtype).itemsize)
        finally:
            os.unlink(name)  # only the descriptor keeps it: nothing to clean up, nothing another process finds
        self._fd = fd
        _OPEN.append(fd)  # never closed: a TorchForce in some System may map it long after this object is gone
        self.path = _fd_path(fd)
        self._array = np.memmap(self.path, dtype=np_dtype, mode="r+", shape=(_HEADER + self.numel,))
        self._array[:_HEADER] = self.header
        self._view = torch.from_numpy(self._array[_HEADER:])

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

    def __getstate__(self):
        raise TypeError("SharedWeights belong to the process that made them and cannot be pickled "
                        "(the process learner gets ForceBackend.preparer(), without them)")

