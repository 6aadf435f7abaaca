"""WT-metadynamics references: an alanine-tetrapeptide run continued from its checkpoint equals one run."""

import os
import random

import numpy as np

from openmm_nnbias.io import read_grid_file
from openmm_nnbias.runners import run_reference_ala4


def _run(out, time_ns, restart=False):
    random.seed(0)  # the peptide builder's hydrogen placement draws from Python's random
    run_reference_ala4(str(out), time_ns, platform="Reference", progress=False, restart=restart, chunkPs=1.0,
                       gridWidth=13)


def test_ala4_restart_is_exact(tmp_path):
    _run(tmp_path / "one", 0.003)  # 1500 steps, Gaussians every 500, checkpoints every 1 ps
    _run(tmp_path / "two", 0.002)
    _run(tmp_path / "two", 0.003, restart=True)
    for name in ("colvar", "fes_reference_3d.dat", "fes_reference_phi1_phi2.dat"):
        a, b = (np.loadtxt(os.path.join(tmp_path, d, name), comments="#") for d in ("one", "two"))
        np.testing.assert_array_equal(a, b, err_msg=name)
    f3 = read_grid_file(os.path.join(tmp_path, "one", "fes_reference_3d.dat"))[1]
    assert f3.size == 12 ** 3 and f3.max() > 0


def test_checkpoint_is_plain_data_and_a_legacy_pickle_is_converted_once(tmp_path):
    """``checkpoint.pt`` loads with ``weights_only=True``; the ``checkpoint.pkl`` of earlier versions is
    read once, written as ``checkpoint.pt``, and the restart equals an uninterrupted run."""
    import pickle

    import torch

    from openmm_nnbias.runners.reference import load_reference_checkpoint

    _run(tmp_path / "one", 0.003)
    _run(tmp_path / "two", 0.002)
    state = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=True)
    assert set(state) == {"bias", "context", "step"} and state["step"] == 1000
    legacy = {"bias": state["bias"].numpy(), "context": state["context"], "step": state["step"]}
    with open(tmp_path / "two" / "checkpoint.pkl", "wb") as fh:
        pickle.dump(legacy, fh)
    os.remove(tmp_path / "two" / "checkpoint.pt")
    restored = load_reference_checkpoint(str(tmp_path / "two"))
    assert os.path.exists(tmp_path / "two" / "checkpoint.pt") and restored["step"] == 1000
    np.testing.assert_array_equal(restored["bias"], legacy["bias"])
    _run(tmp_path / "two", 0.003, restart=True)
    a, b = (np.loadtxt(os.path.join(tmp_path, d, "colvar"), comments="#") for d in ("one", "two"))
    np.testing.assert_array_equal(a, b)
