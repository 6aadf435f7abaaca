"""The energy choices of the azobenzene DiffSim run (``openmm-nnbias diffsim --potential``).

A *potential specification* is one of

* ``"7net-0"`` / ``"7net-l3i5"``: a pretrained SevenNet model
  (:class:`~openmm_nnbias.systems.azobenzene.SevenNetEnergy`, needs ``sevenn``);
* ``"gfn1-mlp"``: the shipped GFN1-xTB-fitted :class:`~openmm_nnbias.systems.azobenzene.AzobenzeneMLP`
  (:meth:`~openmm_nnbias.systems.azobenzene.AzobenzeneMLP.pretrained`);
* the path of a ``.pt`` file written by :meth:`~openmm_nnbias.systems.azobenzene.AzobenzeneMLP.save`.

:func:`potential_spec` checks one and returns the record stored in a run's checkpoint
(``{"name": ...}``; for the shipped MLP also the ``sha256`` of its weights, so that a package
upgrade that changes them is noticed; for a file ``{"name": "mlp-file", "path": ..., "sha256": ...}``),
so that a restart on another potential is refused; :func:`load_potential` builds the torch energy of
the differentiable simulator from that record. ``sevenn`` is imported only for a SevenNet choice.

Units: nm, kJ/mol.
"""

from __future__ import annotations

import hashlib
import os

__all__ = ["SEVENNET_POTENTIALS", "MLP_POTENTIALS", "AZOBENZENE_POTENTIALS", "potential_spec",
           "potential_label", "is_sevennet", "load_potential"]

#: SevenNet models (``sevenn``'s pretrained names).
SEVENNET_POTENTIALS = ("7net-0", "7net-l3i5")
#: Named AzobenzeneMLP models shipped with the package.
MLP_POTENTIALS = ("gfn1-mlp",)
#: Every named choice; anything else must be the path of an AzobenzeneMLP file.
AZOBENZENE_POTENTIALS = SEVENNET_POTENTIALS + MLP_POTENTIALS


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _shipped_sha256() -> str:
    """sha256 of the shipped gfn1-mlp weights (the file :meth:`AzobenzeneMLP.pretrained` reads)."""
    from importlib.resources import as_file

    from .mlp import pretrained_resource

    with as_file(pretrained_resource()) as path:
        return _sha256(str(path))


def potential_spec(potential) -> dict:
    """Check a ``--potential`` value and return its checkpoint record.

    Parameters
    ----------
    potential : str or dict
        A name of :data:`AZOBENZENE_POTENTIALS`, the path of an ``AzobenzeneMLP.save`` file, or
        a record this function returned (returned as a copy).

    Returns
    -------
    dict
        ``{"name": NAME}`` (SevenNet), ``{"name": "gfn1-mlp", "sha256": HEX}`` (the shipped weights), or
        for a file ``{"name": "mlp-file", "path": ABSPATH, "sha256": HEX}``.

    Raises
    ------
    TypeError
        If ``potential`` is not a string or a record.
    ValueError
        Naming ``potential``: a missing file, or a file that is not an AzobenzeneMLP.

    Examples
    --------
    >>> potential_spec("7net-0"), sorted(potential_spec("gfn1-mlp"))
    ({'name': '7net-0'}, ['name', 'sha256'])
    >>> potential_spec("/nonexistent/model.pt")
    Traceback (most recent call last):
    ...
    ValueError: potential must be one of 7net-0, 7net-l3i5, gfn1-mlp or an AzobenzeneMLP .pt file; no file '/nonexistent/model.pt'
    """
    if isinstance(potential, dict) and "name" in potential:
        return dict(potential)
    if not isinstance(potential, (str, os.PathLike)):
        raise TypeError(f"potential must be a string (a name or a path), got {type(potential).__name__}")
    value = os.fspath(potential)
    if value in MLP_POTENTIALS:
        return {"name": value, "sha256": _shipped_sha256()}
    if value in AZOBENZENE_POTENTIALS:
        return {"name": value}
    choices = f"potential must be one of {', '.join(AZOBENZENE_POTENTIALS)} or an AzobenzeneMLP .pt file"
    if not os.path.isfile(value):
        raise ValueError(f"{choices}; no file {value!r}")
    from .mlp import AzobenzeneMLP

    try:
        model = AzobenzeneMLP.load(value)
    except Exception as exc:  # torch.load errors, wrong keys, wrong shapes: all "not an AzobenzeneMLP"
        raise ValueError(f"{choices}; {value!r} is not an AzobenzeneMLP written by AzobenzeneMLP.save "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if model.n_atoms != 24:
        raise ValueError(f"{choices}; {value!r} is an AzobenzeneMLP of {model.n_atoms} atoms, azobenzene has 24")
    return {"name": "mlp-file", "path": os.path.abspath(value), "sha256": _sha256(value)}


def potential_label(spec: dict) -> str:
    """Short text naming a record (the name, or ``path (sha256 …)``) for messages.

    Examples
    --------
    >>> potential_label({"name": "mlp-file", "path": "/a/m.pt", "sha256": "0123456789abcdef"})
    "'/a/m.pt' (sha256 0123456789ab)"
    """
    if spec.get("name") == "mlp-file":
        return f"{spec['path']!r} (sha256 {spec['sha256'][:12]})"
    if "sha256" in spec:
        return f"{spec.get('name')!r} (weights sha256 {spec['sha256'][:12]})"
    return repr(spec.get("name"))


def is_sevennet(spec: dict) -> bool:
    """True for a SevenNet record (``{"name": "7net-0"}``, ...).

    Examples
    --------
    >>> is_sevennet({"name": "7net-0"}), is_sevennet({"name": "gfn1-mlp"})
    (True, False)
    """
    return spec.get("name") in SEVENNET_POTENTIALS


def load_potential(spec, dtype=None):
    """The torch energy ``(..., 24, 3)`` nm → ``(...)`` kJ/mol of a record or ``--potential`` value.

    Parameters
    ----------
    spec : dict or str
        A record of :func:`potential_spec` or a value it accepts.
    dtype : torch.dtype, optional
        SevenNet: the dtype its weights are cast to (default float64). The MLP keeps its stored
        dtype (float64) whatever the simulation's: it casts inputs and returns the input's dtype.

    Returns
    -------
    torch.nn.Module
        :class:`~openmm_nnbias.systems.azobenzene.SevenNetEnergy` or :class:`~openmm_nnbias.systems.azobenzene.AzobenzeneMLP`.

    Raises
    ------
    ValueError
        As :func:`potential_spec`, or if a file's sha256 no longer matches the record.
    ImportError
        For a SevenNet choice without ``sevenn``.

    Examples
    --------
    >>> type(load_potential("gfn1-mlp")).__name__
    'AzobenzeneMLP'
    """
    import torch

    spec = potential_spec(spec)
    if is_sevennet(spec):
        from .molecule import AZOBENZENE_NUMBERS
        from .sevennet import SevenNetEnergy

        return SevenNetEnergy(AZOBENZENE_NUMBERS, model=spec["name"], dtype=dtype or torch.float64)
    from .mlp import AzobenzeneMLP

    if spec["name"] == "gfn1-mlp":
        if "sha256" in spec and _shipped_sha256() != spec["sha256"]:
            raise ValueError(f"potential: the shipped gfn1-mlp weights differ from those of the record "
                             f"{potential_label(spec)} (another package version)")
        return AzobenzeneMLP.pretrained()
    if spec["name"] != "mlp-file":
        raise ValueError(f"potential: unknown record {spec!r}")
    if not os.path.isfile(spec["path"]) or _sha256(spec["path"]) != spec["sha256"]:
        raise ValueError(f"potential: the file {potential_label(spec)} is missing or has changed")
    return AzobenzeneMLP.load(spec["path"])
