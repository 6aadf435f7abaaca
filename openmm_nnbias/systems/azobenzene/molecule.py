"""Azobenzene (C12H10N2) coordinates written in the package: no downloads, no RDKit at run time.

The two structures were generated once with RDKit 2026.09 from the SMILES
``c1ccc(cc1)/N=N/c1ccccc1`` (trans) and ``c1ccc(cc1)/N=N\\c1ccccc1`` (cis) (ETKDG,
``randomSeed=7``, MMFF94 minimization); MMFF leaves the phenyl rings of trans twisted by
62° and those of cis by 92°, so the rings were then turned about their C–N bonds with ASE
(``set_dihedral``): trans planar (CNNC 180°, N=N–C–C 180°), cis with CNNC 8° and
N=N–C–C 50° (near the known C2 structure). Centred, in Å; both share one atom order:

* 0–5: first phenyl ring (C3 bonded to N6), 6, 7: the azo nitrogens, 8–13: second ring
  (C8 bonded to N7), 14–23: hydrogens (14–18 on the first ring, 19–23 on the second).
* Descriptors of the DiffSim paper (section 4.2): the CNNC dihedral
  :data:`CNNC_DIHEDRAL` = (3, 6, 7, 8) (rotation) and the NNC angle
  :data:`NNC_ANGLE` = (6, 7, 8) (inversion).

They are MMFF structures, i.e. starting points: minimize them on the potential in use
(:func:`openmm_nnbias.recipes.diffsim.azobenzene.minimize_positions`).

Units at the interface: nm (:func:`azobenzene_positions`), amu (:data:`AZOBENZENE_MASSES`).
"""

from __future__ import annotations

from typing import Tuple

import torch

__all__ = ["AZOBENZENE_SYMBOLS", "AZOBENZENE_NUMBERS", "AZOBENZENE_MASSES", "CNNC_DIHEDRAL", "NNC_ANGLE",
           "CNN_ANGLE", "PHENYL_ATOMS", "azobenzene_positions"]

#: Element symbols in atom order.
AZOBENZENE_SYMBOLS: Tuple[str, ...] = tuple("CCCCCCNNCCCCCC") + ("H",) * 10
#: Atomic numbers in atom order.
AZOBENZENE_NUMBERS: Tuple[int, ...] = tuple({"C": 6, "N": 7, "H": 1}[s] for s in AZOBENZENE_SYMBOLS)
#: Masses in amu (IUPAC standard atomic weights, as OpenMM's ``element`` module).
AZOBENZENE_MASSES: Tuple[float, ...] = tuple({"C": 12.01, "N": 14.007, "H": 1.008}[s] for s in AZOBENZENE_SYMBOLS)
#: C–N=N–C dihedral (rotation coordinate).
CNNC_DIHEDRAL: Tuple[int, int, int, int] = (3, 6, 7, 8)
#: N=N–C angle at N7 (inversion coordinate).
NNC_ANGLE: Tuple[int, int, int] = (6, 7, 8)
#: C–N=N angle at N6 (the other inversion angle).
CNN_ANGLE: Tuple[int, int, int] = (3, 6, 7)
#: Atoms of the second phenyl group (C8 ring and its hydrogens), the part that moves in scans.
PHENYL_ATOMS: Tuple[int, ...] = (8, 9, 10, 11, 12, 13, 19, 20, 21, 22, 23)

_TRANS_ANGSTROM = (
    (  4.4593,  -0.1306,  -0.1420),
    (  3.9947,   0.6445,   0.9194),
    (  2.6212,   0.8130,   1.1102),
    (  1.7004,   0.2173,   0.2375),
    (  2.1803,  -0.5684,  -0.8159),
    (  3.5532,  -0.7391,  -1.0094),
    (  0.3113,   0.3433,   0.4228),
    ( -0.3113,  -0.2684,  -0.4735),
    ( -1.7003,  -0.1425,  -0.2883),
    ( -2.6212,  -0.7383,  -1.1612),
    ( -3.9946,  -0.6226,  -0.9345),
    ( -4.4593,   0.0829,   0.1744),
    ( -3.5533,   0.6690,   1.0572),
    ( -2.1804,   0.5516,   0.8275),
    (  5.5280,  -0.2628,  -0.2917),
    (  4.6989,   1.1162,   1.5996),
    (  2.2618,   1.4126,   1.9423),
    (  1.4756,  -1.0470,  -1.4908),
    (  3.9133,  -1.3473,  -1.8350),
    ( -2.2617,  -1.2942,  -2.0231),
    ( -4.6987,  -1.0841,  -1.6217),
    ( -5.5279,   0.1735,   0.3523),
    ( -3.9134,   1.2156,   1.9248),
    ( -1.4757,   1.0057,   1.5192),
)
_CIS_ANGSTROM = (
    (  2.8265,  -1.0002,   0.4850),
    (  2.0178,  -0.9868,  -0.6507),
    (  1.2550,   0.1441,  -0.9493),
    (  1.3089,   1.2763,  -0.1279),
    (  2.1023,   1.2403,   1.0248),
    (  2.8663,   0.1110,   1.3262),
    (  0.5064,   2.3994,  -0.4072),
    ( -0.7283,   2.2700,  -0.6164),
    ( -1.3653,   1.0306,  -0.4126),
    ( -1.1828,   0.3276,   0.7842),
    ( -1.8464,  -0.8808,   1.0062),
    ( -2.7142,  -1.3856,   0.0387),
    ( -2.9259,  -0.6798,  -1.1449),
    ( -2.2609,   0.5283,  -1.3639),
    (  3.4201,  -1.8804,   0.7191),
    (  1.9771,  -1.8566,  -1.3010),
    (  0.6157,   0.1495,  -1.8277),
    (  2.1241,   2.1013,   1.6870),
    (  3.4873,   0.0976,   2.2179),
    ( -0.5160,   0.7267,   1.5435),
    ( -1.6893,  -1.4241,   1.9342),
    ( -3.2322,  -2.3259,   0.2108),
    ( -3.6109,  -1.0664,  -1.8949),
    ( -2.4353,   1.0839,  -2.2811),
)


def azobenzene_positions(isomer: str = "trans", dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Stored (MMFF, not yet minimized) azobenzene coordinates.

    Parameters
    ----------
    isomer : {"trans", "cis"}
        Which isomer (default ``"trans"``).
    dtype : torch.dtype, optional
        Output dtype (default float64).

    Returns
    -------
    torch.Tensor
        ``(24, 3)`` positions in nm.

    Raises
    ------
    TypeError
        If ``isomer`` is not a string.
    ValueError
        If ``isomer`` is neither ``"trans"`` nor ``"cis"``.

    Examples
    --------
    >>> from openmm_nnbias.cvs import Torsion
    >>> x = azobenzene_positions("cis")
    >>> x.shape, round(abs(float(Torsion(CNNC_DIHEDRAL)(x)[0])), 1)
    (torch.Size([24, 3]), 0.1)
    """
    if not isinstance(isomer, str):
        raise TypeError(f"isomer must be a string ('trans' or 'cis'), got {type(isomer).__name__}")
    table = {"trans": _TRANS_ANGSTROM, "cis": _CIS_ANGSTROM}.get(isomer.lower())
    if table is None:
        raise ValueError(f"isomer must be 'trans' or 'cis', got {isomer!r}")
    return 0.1 * torch.tensor(table, dtype=dtype)
