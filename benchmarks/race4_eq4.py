"""The six 1-D marginals of a tetrapeptide Deep-VES bias by Eq. 4 (the tetrapeptide race's ``eq4`` estimate).

With the well-tempered target (γ = 10) a converged bias is V = −(1 − 1/γ) F + const, so F = −V γ/(γ − 1) (Eq. 4);
each marginal is −kT ln ∫ e^(−βF) over the other five torsions, integrated with ``chunks`` × 200 000 uniform points
of the 6-torus, importance weights e^(−βF) (:func:`eq4_marginals` also returns their effective sample size): the
package's ``openmm-nnbias marginals`` (``analysis.bias_fes``), binned as the race's other estimates.

The race keeps the bias of every Deep-VES snapshot (``snapshots/bias_<t>ns.pt``, :func:`keep_bias`: the network's
``state_dict``, plain tensors); ``race4.py report`` turns them into ``snapshots/eq4_<t>ns.npz`` once
(:func:`eq4_snapshots`) and scores them as the estimate ``deepves (eq4)``.

    python benchmarks/race4_eq4.py RUN/checkpoint.pt [CHUNKS]     # one checkpoint, scored against the reference
"""

from __future__ import annotations

import glob
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from race4_common import KT, TORSIONS  # noqa: E402
from race4_score import marginals, save_snapshot  # noqa: E402

HIDDEN = (96, 48, 24)  # the alanine-tetrapeptide recipe's network
GAMMA = 10.0  # its bias factor
CHUNK = 200_000
CHUNKS = 60  # 12 million points: effective sample size ≈ 2 700 for the 20-ns bias of seed 1


def bias_state(checkpoint_path):
    """The network ``state_dict`` of a Deep-VES checkpoint (``updater.saveCheckpoint``)."""
    import torch

    return torch.load(checkpoint_path, weights_only=True, map_location="cpu")["optimizer"]["bias"]


def keep_bias(checkpoint_path, path):
    """Save the bias of a Deep-VES checkpoint to ``path`` (atomic)."""
    import torch

    tmp = path + ".tmp"
    torch.save(bias_state(checkpoint_path), tmp)
    os.replace(tmp, path)


def eq4_marginals(state, chunks=CHUNKS, gamma=GAMMA, seed=0):
    """``((6, n) marginals, effective sample size)`` of the bias ``state`` (a ``NeuralBias`` state_dict) by Eq. 4.

    The points and weights of ``openmm_nnbias.analysis.bias_fes.bias_log_weights`` (``openmm-nnbias marginals``),
    binned as the race's marginals (``race4_score.marginals``: bins centred at −π + i·2π/n).
    """
    from openmm_nnbias.analysis.bias_fes import bias_log_weights
    from openmm_nnbias.bias.network import NeuralBias

    bias = NeuralBias([True] * 6, [-math.pi] * 6, [math.pi] * 6, hidden=HIDDEN)
    bias.load_state_dict(state)
    samples, logw = zip(*bias_log_weights(bias, KT, gamma, chunks * CHUNK, seed, CHUNK))
    samples, logw = np.concatenate(samples), np.concatenate(logw)
    w = np.exp(logw - logw.max())
    return marginals(samples, logw), float(w.sum() ** 2 / (w ** 2).sum())


def eq4_snapshots(folder, chunks=CHUNKS):
    """Write ``eq4_<t>ns.npz`` next to every ``bias_<t>ns.pt`` of ``folder/snapshots`` that has none; their count."""
    import torch

    done = 0
    for path in sorted(glob.glob(os.path.join(folder, "snapshots", "bias_*ns.pt"))):
        out = path.replace(os.sep + "bias_", os.sep + "eq4_")[:-len(".pt")] + ".npz"
        if os.path.exists(out):
            continue
        est, ess = eq4_marginals(torch.load(path, weights_only=True, map_location="cpu"), chunks)
        save_snapshot(out, est, ess=ess)
        done += 1
    return done


def main(argv=None):
    import torch

    from race4_score import read_reference, score

    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        raise SystemExit(__doc__.strip().splitlines()[-1].strip())
    torch.set_num_threads(1)
    chunks = int(argv[1]) if len(argv) > 1 else CHUNKS
    est, ess = eq4_marginals(bias_state(argv[0]), chunks)
    ref = read_reference(os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", "race4", "reference"))
    sc = score(est, ref)
    print(f"samples {chunks * CHUNK}, ESS {ess:.0f}")
    print("Eq. 4 marginals from the bias:", round(sc["rmse_mean"], 2), [round(sc["rmse_" + k], 2) for k in TORSIONS])


if __name__ == "__main__":
    main()
