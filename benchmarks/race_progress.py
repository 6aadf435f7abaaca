"""The ``progress.csv`` of a race run (``race.py``, ``race4.py``) and the median [range] text of their tables."""

from __future__ import annotations

import csv
import math
import os

import numpy as np

__all__ = ["read_rows", "write_rows", "fmt", "stat"]


def read_rows(path):
    """The rows of a ``progress.csv`` as dicts of strings ([] when there is no file)."""
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return list(csv.DictReader(fh))


def write_rows(path, rows, fields):
    """Write ``rows`` (dicts) with the columns ``fields`` atomically (a temporary file, then a rename)."""
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def fmt(x):
    """A progress value as text: "" for None, 6 significant digits for floats."""
    if x is None:
        return ""
    return f"{x:.6g}" if isinstance(x, (float, np.floating)) else str(x)


def stat(values, scale=1.0, digits=2):
    """"median [min–max of the finite ones] (finite / all)", "not reached" when the median is not finite."""
    v = np.array(values, float) * scale
    reached = int(np.isfinite(v).sum())
    med = np.median(v) if len(v) else math.nan
    fin = v[np.isfinite(v)]
    text = "not reached" if not np.isfinite(med) else f"{med:.{digits}f}"
    if len(fin):
        text += f" [{fin.min():.{digits}f}–{fin.max():.{digits}f}]"
    return f"{text} ({reached}/{len(v)})"
