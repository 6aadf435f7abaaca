"""PLUMED-style text files: grid files (``#! FIELDS cv... file.free``) and COLVAR files.

Below both :mod:`openmm_nnbias.ves` (which writes them) and :mod:`openmm_nnbias.analysis`
(which reads them). Grid coordinates are in the CVs' units (nm, rad), free energies in kJ/mol.
"""

from typing import Sequence

import numpy as np

from ._io import atomic_write

__all__ = ["atomic_write_text", "write_grid_file", "read_grid_file", "read_grid_domain", "read_colvar",
           "warn_uneven_spacing", "read_fields", "read_units", "units_lines", "domain_lines"]


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and an atomic rename."""

    def write(tmp):
        with open(tmp, "w") as fh:
            fh.write(text)

    atomic_write(path, write)


def read_fields(path: str, kind: str = "COLVAR") -> list:
    """The field names of the ``#! FIELDS`` header of a grid or COLVAR file (the header only; ``kind`` names the
    file in the error). Raises ValueError when the file has no such header."""
    with open(path) as fh:
        for line in fh:
            if line.startswith("#! FIELDS"):
                return line.split()[2:]
    raise ValueError(f"{path}: no '#! FIELDS' header; not a PLUMED-style {kind} file")


def units_lines(units: dict) -> list:
    """``#! SET units_<field> <unit>`` header lines (PLUMED-style constants) of ``{field: unit}``."""
    return [f"#! SET units_{name} {unit}" for name, unit in units.items()]


def domain_lines(names: Sequence[str], periodic: Sequence[bool], lower: Sequence[float],
                 upper: Sequence[float]) -> list:
    """``#! SET min_<cv>`` / ``max_<cv>`` lines of the periodic CVs: PLUMED's colvar convention for a periodic
    CV's domain (:func:`read_grid_domain` reads them back; a CV without them is not periodic).

    Examples
    --------
    >>> domain_lines(["phi", "d"], [True, False], [-3.141593, 0.0], [3.141593, 2.0])
    ['#! SET min_phi -3.141593', '#! SET max_phi 3.141593']
    """
    out = []
    for name, per, lo, hi in zip(names, periodic, lower, upper):
        if per:
            out += [f"#! SET min_{name} {lo:.10g}", f"#! SET max_{name} {hi:.10g}"]
    return out


def read_units(path: str) -> dict:
    r"""``{field: unit}`` from the ``#! SET units_<field> <unit>`` lines of a grid or COLVAR file ({} if none).

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "colvar")
    >>> _ = open(p, "w").write("#! FIELDS time phi\n#! SET units_time ps\n#! SET units_phi rad\n0.1 1.0\n")
    >>> read_units(p)
    {'time': 'ps', 'phi': 'rad'}
    """
    out = {}
    with open(path) as fh:
        for line in fh:
            if not line.startswith("#"):
                break
            parts = line.split()
            if len(parts) >= 4 and parts[:2] == ["#!", "SET"] and parts[2].startswith("units_"):
                out[parts[2][len("units_"):]] = " ".join(parts[3:])
    return out


def write_grid_file(path: str, names: Sequence[str], axes: Sequence[np.ndarray], values: np.ndarray,
                    periodic: Sequence[bool], field: str = "file.free", lower=None, upper=None,
                    units: Sequence[str] = None, field_unit: str = "kJ/mol", settings: dict = None) -> None:
    """Write a grid of ``values`` (shape = lengths of ``axes``, first CV slowest) PLUMED style.

    One line per grid point, a blank line after each row of the last CV (as PLUMED does for 2D
    grids), header ``#! FIELDS <names> <field>``, ``#! SET`` lines with the ranges and, with
    ``units`` (one per CV, e.g. "rad"), ``#! SET units_<name>`` lines for the CVs and the field, and a
    ``#! SET <key> <value>`` line for each item of ``settings`` (e.g. ``{"estimator": "reweighted"}``).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> x = np.linspace(-1, 1, 3)
    >>> p = os.path.join(tempfile.mkdtemp(), "fes.dat")
    >>> write_grid_file(p, ["x"], [x], x ** 2, [False])
    >>> read_grid_file(p)[1].tolist()
    [1.0, 0.0, 1.0]
    """
    values = np.asarray(values, dtype=float)
    shape = tuple(len(a) for a in axes)
    if values.shape != shape:
        values = values.reshape(shape)
    lines = ["#! FIELDS " + " ".join(list(names) + [field])]
    for i, name in enumerate(names):
        lo = axes[i][0] if lower is None else lower[i]
        hi = axes[i][-1] if upper is None else upper[i]
        lines.append(f"#! SET min_{name} {lo:.10g}")
        lines.append(f"#! SET max_{name} {hi:.10g}")
        lines.append(f"#! SET nbins_{name} {len(axes[i])}")
        lines.append(f"#! SET periodic_{name} {'true' if periodic[i] else 'false'}")
    if units is not None:
        lines += units_lines({**dict(zip(names, units)), field: field_unit})
    for key, value in (settings or {}).items():
        if not str(key).isidentifier() or not str(value) or any(c.isspace() for c in str(value)):
            raise ValueError(f"settings: {key!r}: {value!r} is not a key and a value without spaces")
        lines.append(f"#! SET {key} {value}")
    mesh = np.meshgrid(*axes, indexing="ij")
    flat_pts = np.stack([m.reshape(-1) for m in mesh], axis=-1)
    flat_vals = values.reshape(-1)
    last = shape[-1]
    for k, (pt, v) in enumerate(zip(flat_pts, flat_vals)):
        lines.append(" ".join(f"{c:.8f}" for c in pt) + f" {v:.8f}")
        if len(shape) > 1 and (k + 1) % last == 0:
            lines.append("")
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_grid_file(path: str):
    """Read a grid file → (points (n, d), values (n,), names)."""
    names = read_fields(path, "grid")
    data = np.loadtxt(path, comments="#", ndmin=2)
    return data[:, :-1], data[:, -1], names[:-1]


def read_grid_domain(path: str) -> dict:
    """``#! SET`` lines of a grid file → {cv: {"min", "max", "nbins", "periodic"}}."""
    out: dict = {}
    with open(path) as fh:
        for line in fh:
            if not line.startswith("#! SET "):
                continue
            key, val = line.split()[2:4]
            field, _, cv = key.partition("_")
            if field not in ("min", "max", "nbins", "periodic"):  # units (read_units) or other settings
                continue
            out.setdefault(cv, {})[field] = (val == "true") if field == "periodic" else float(val)
    return out


def read_colvar(path: str, every: float = None):
    """Read a COLVAR file → (dict of column name → array).

    Parameters
    ----------
    path : str
        A PLUMED-style file whose first column is ``time`` (ps).
    every : float, optional
        Keep only the rows whose time is a multiple of ``every`` ps: one spacing for a file whose
        rows are not evenly spaced, e.g. a run restored from a thinned archive. A row's time may
        differ from the multiple by 10⁻⁶ ps + 10⁻⁸ of the time (OpenMM sums the steps in floating
        point: the written times drift by a few 10⁻⁶ ps over tens of ns).

    Examples
    --------
    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "colvar")
    >>> _ = open(p, "w").write("#! FIELDS time x\\n0.5 1\\n1.0 2\\n1.5 3\\n2.0 4\\n")
    >>> read_colvar(p, every=1.0)["x"]
    array([2., 4.])
    >>> _ = open(p, "w").write("#! FIELDS time x\\n26189.500004 1\\n26190.000004 2\\n")
    >>> read_colvar(p, every=1.0)["x"]          # a time 4e-6 ps off after 26 ns of steps
    array([2.])
    """
    names = read_fields(path, "COLVAR")
    data = np.loadtxt(path, comments="#", ndmin=2)
    if every is not None:
        if not every > 0:
            raise ValueError(f"every must be a positive time in ps, got {every!r}")
        t = data[:, 0]
        data = data[np.abs(t - np.round(t / every) * every) < 1e-6 + 1e-8 * np.abs(t)]
    return {n: data[:, i] for i, n in enumerate(names)}


def warn_uneven_spacing(times, path: str, stacklevel: int = 3) -> bool:
    """Warn (and return True) when the frame times (ps) of ``path`` are not evenly spaced.

    Averages over such frames weigh the densely written stretches more; ``read_colvar(every=)``
    gives one spacing.
    """
    import warnings

    dt = np.diff(np.asarray(times, dtype=float))
    if dt.size > 1 and dt.max() > 1.01 * dt.min():
        warnings.warn(f"{path}: frames are not evenly spaced in time ({dt.min():g}–{dt.max():g} ps); the densely "
                      f"written stretches weigh more: read it with every= (ps) to use one spacing",
                      stacklevel=stacklevel)
        return True
    return False
