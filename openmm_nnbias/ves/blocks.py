"""Blocks of a run kept for a window that forgets its beginning, e.g. ``[t/2, t]``, in bounded memory.

The windowed estimates of ``fes.dat`` (:class:`~openmm_nnbias.ves.running_fes.WindowedReweighting`,
:class:`~openmm_nnbias.ves.averaging.WindowedFES`) keep per-block sums. :func:`block_groups` says which blocks
to keep and which to merge: the blocks that start before the window's start are dropped (the newest is always
kept), and older neighbours are merged while a merged block spans at most ``span``. With ``span`` a fixed
fraction of the run's length, the window's start is exact to that fraction and the number of blocks stays
bounded (about 1/fraction plus the recent ones) however long the run.

Examples
--------
>>> block_groups([0.0, 1.0, 2.0, 3.0, 4.0, 5.0], since=1.0, span=2.0)
[[1, 2], [3, 4], [5]]
>>> block_groups([0.0, 1.0], since=9.0)   # no block starts that late: the newest is kept
[[1]]
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["block_groups"]


def block_groups(starts: Sequence[float], since: float, span: float = 0.0) -> list[list[int]]:
    """Groups of block indices to keep, each to be merged into one block (in order).

    Parameters
    ----------
    starts : sequence of float
        Start of each block (any unit, e.g. ps or iterations), increasing.
    since : float
        The window's start: blocks that start before it are dropped, except the newest.
    span : float
        A merged block (the newest excepted, which stays alone) starts at most ``span`` before the
        start of the block after it; 0 merges nothing.

    Returns
    -------
    list of list of int
        Indices into ``starts``; empty when ``starts`` is.
    """
    if not len(starts):
        return []
    first = 0
    while first < len(starts) - 1 and starts[first] < since - 1e-9:
        first += 1
    groups = [[first]]
    for i in range(first + 1, len(starts) - 1):  # i + 1 exists: block i ends where i + 1 starts
        if span > 0 and starts[i + 1] - starts[groups[-1][0]] <= span:
            groups[-1].append(i)
        else:
            groups.append([i])
    if len(starts) - 1 > first:
        groups.append([len(starts) - 1])
    return groups
