"""Azobenzene (C12H10N2) coordinates written in the package: no downloads, no RDKit at run time.

The two structures were generated once with RDKit 2026.09 from the SMILES
``c1ccc(cc1)/N=N/c1ccccc1`` (trans) and ``c1ccc(cc1)/N=N\\c1ccccc1`` (cis) (ETKDG,
``randomSeed=7``, MMFF94 minimization) and are stored here in Å; both share one atom order:

* 0–5: first phenyl ring (C3 bonded to N6), 6, 7: the azo nitrogens, 8–13: second ring
  (C8 bonded to N7), 14–23: hydrogens (14–18 on the first ring, 19–23 on the second).
* Descriptors of the DiffSim paper (section 4.2): the CNNC dihedral
  :data:`CNNC_DIHEDRAL` = (3, 6, 7, 8) (rotation) and the NNC angle
  :data:`NNC_ANGLE` = (6, 7, 8) (inversion).

They are MMFF structures, i.e. starting points: minimize them on the potential in use
(:func:`openmm_nnbias.diffsim.setups_azobenzene.minimize_positions`).

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
    (  4.4845,  -0.0189,  -0.0135),
    (  3.7277,   0.5775,  -1.0209),
    (  2.3426,   0.6888,  -0.8786),
    (  1.7003,   0.1970,   0.2660),
    (  2.4735,  -0.3876,   1.2748),
    (  3.8589,  -0.5003,   1.1357),
    (  0.3112,   0.3230,   0.4513),
    ( -0.3114,  -0.2887,  -0.4450),
    ( -1.7004,  -0.1732,  -0.2527),
    ( -2.3520,   1.0675,  -0.2840),
    ( -3.7369,   1.1485,  -0.1211),
    ( -4.4843,  -0.0134,   0.0650),
    ( -3.8496,  -1.2545,   0.0850),
    ( -2.4644,  -1.3321,  -0.0780),
    (  5.5627,  -0.1060,  -0.1227),
    (  4.2135,   0.9576,  -1.9157),
    (  1.7559,   1.1599,  -1.6628),
    (  1.9883,  -0.7598,   2.1732),
    (  4.4477,  -0.9617,   1.9242),
    ( -1.7727,   1.9745,  -0.4351),
    ( -4.2299,   2.1168,  -0.1415),
    ( -5.5623,   0.0481,   0.1916),
    ( -4.4310,  -2.1620,   0.2254),
    ( -1.9720,  -2.3009,  -0.0663),
)
_CIS_ANGSTROM = (
    (  2.9101,  -0.8970,   0.6357),
    (  2.2850,  -0.2112,   1.6763),
    (  1.4555,   0.8762,   1.3946),
    (  1.2283,   1.2745,   0.0720),
    (  1.8840,   0.5962,  -0.9622),
    (  2.7141,  -0.4916,  -0.6838),
    (  0.4258,   2.3976,  -0.2073),
    ( -0.8089,   2.2682,  -0.4165),
    ( -1.4149,   0.9976,  -0.3758),
    ( -1.9755,   0.5167,   0.8134),
    ( -2.6143,  -0.7245,   0.8464),
    ( -2.7144,  -1.4862,  -0.3171),
    ( -2.1851,  -1.0048,  -1.5137),
    ( -1.5469,   0.2368,  -1.5434),
    (  3.5569,  -1.7432,   0.8538),
    (  2.4460,  -0.5190,   2.7061),
    (  0.9783,   1.4179,   2.2066),
    (  1.7412,   0.9194,  -1.9896),
    (  3.2098,  -1.0180,  -1.4951),
    ( -1.9084,   1.1155,   1.7176),
    ( -3.0366,  -1.0933,   1.7773),
    ( -3.2124,  -2.4524,  -0.2929),
    ( -2.2725,  -1.5924,  -2.4238),
    ( -1.1452,   0.6170,  -2.4786),
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
    (torch.Size([24, 3]), 0.0)
    """
    if not isinstance(isomer, str):
        raise TypeError(f"isomer must be a string ('trans' or 'cis'), got {type(isomer).__name__}")
    table = {"trans": _TRANS_ANGSTROM, "cis": _CIS_ANGSTROM}.get(isomer.lower())
    if table is None:
        raise ValueError(f"isomer must be 'trans' or 'cis', got {isomer!r}")
    return 0.1 * torch.tensor(table, dtype=dtype)
