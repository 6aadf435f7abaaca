"""Grid/COLVAR file I/O, kept importable here; the code lives in :mod:`openmm_nnbias.io`."""

from ..io import atomic_write_text, read_colvar, read_grid_domain, read_grid_file, write_grid_file

__all__ = ["atomic_write_text", "write_grid_file", "read_grid_file", "read_grid_domain", "read_colvar"]
