"""What the input-file modules share: the section reader of the schema and one-line read errors.

:class:`_Section` reads the keys of one mapping of the input file, naming each by its path
(``deepves.stride``) in every message; :func:`_read` turns any failure of a file reader into one
ValueError line naming the key.
"""

import difflib
import math
import numbers
import os
from typing import Optional

from .._units import parse_with_unit

__all__ = ["REQUIRED"]

#: Marker of a key without default in a schema.
REQUIRED = object()


def _near(key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f"did you mean {close[0]!r}? " * bool(close)


class _Section:
    """Keys of one mapping, read with their path for messages; overridden keys are named by their flag."""

    def __init__(self, raw, path: str, known: dict, labels: dict) -> None:
        if not isinstance(raw, dict):
            raise TypeError(f"{path} must be a mapping of keys, got {type(raw).__name__}")
        for key in raw:
            if key not in known:
                raise ValueError(f"unknown key '{path}.{key}' ({_near(str(key), known)}known: {', '.join(known)})")
        self.raw, self.path, self.known, self.labels = raw, path, known, labels

    def name(self, key: str) -> str:
        full = f"{self.path}.{key}"
        return self.labels.get(full, full)

    def has(self, key: str) -> bool:
        return self.raw.get(key) is not None

    def value(self, key: str):
        if key in self.raw:
            if self.raw[key] is None and self.known[key] is not None:
                raise TypeError(f"{self.name(key)} must not be null (leave it out for the default)")
            return self.raw[key]
        if self.known[key] is REQUIRED:
            raise ValueError(f"{self.path} needs the key '{key}'")
        return self.known[key]

    def number(self, key: str, lo: float = -math.inf, lo_open: bool = False, unit: Optional[str] = None):
        v = self.value(key)
        if v is None:
            return None
        if isinstance(v, str) and unit is not None:
            v = parse_with_unit(self.name(key), v, unit)
        elif isinstance(v, bool) or not isinstance(v, numbers.Real):
            what = f"a number in {unit} or a string such as '1 {unit}'" if unit else "a number"
            raise TypeError(f"{self.name(key)} must be {what}, got {type(v).__name__} {v!r}")
        v = float(v)
        if not math.isfinite(v) or (v <= lo if lo_open else v < lo):
            raise ValueError(f"{self.name(key)} must be a finite number {'>' if lo_open else '>='} {lo:g}"
                             f"{' ' + unit if unit else ''}, got {v:g}")
        return v

    def integer(self, key: str, minimum: int = 1):
        v = self.value(key)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{self.name(key)} must be an integer, got {type(v).__name__} {v!r}")
        if v < minimum:
            raise ValueError(f"{self.name(key)} must be >= {minimum}, got {v}")
        return int(v)

    def text(self, key: str, choices=None):
        v = self.value(key)
        if v is None and (choices is None or None in choices):
            return None
        if not isinstance(v, str):
            raise TypeError(f"{self.name(key)} must be a string, got {type(v).__name__} {v!r}")
        if choices is not None and v not in choices:
            raise ValueError(f"{self.name(key)} must be one of {[c for c in choices if c is not None]}, got {v!r}")
        return v

    def ints(self, key: str, minimum: int = 1):
        v = self.value(key)
        if v is None:
            return None
        if not isinstance(v, list) or not v or any(isinstance(x, bool) or not isinstance(x, int) for x in v):
            raise TypeError(f"{self.name(key)} must be a non-empty list of integers, got {v!r}")
        if min(v) < minimum:
            raise ValueError(f"{self.name(key)} entries must be >= {minimum}, got {v}")
        return [int(x) for x in v]

    def path_(self, key: str, base: str, check: bool):
        v = self.text(key)
        if v is None:
            return None
        p = os.path.normpath(os.path.join(base, os.path.expanduser(v)))
        if check and not os.path.isfile(p):
            raise FileNotFoundError(f"{self.name(key)}: file {v!r} not found (looked for {p})")
        return p


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read(key: str, path: str, reader):
    """``reader(path)``, any failure as one ValueError line naming ``key``."""
    try:
        return reader(path)
    except Exception as exc:  # noqa: BLE001 - OpenMM's and mdtraj's parsers raise many kinds
        raise ValueError(f"{key}: cannot read {path}: {_first_line(exc)}") from None
