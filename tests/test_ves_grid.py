"""Tests of openmm_nnbias.ves.grid.CVGrid."""

import math

import pytest
import torch

from openmm_nnbias.ves import CVGrid

from _devices import DEVICES

torch.set_num_threads(1)
F64 = torch.float64


def test_points_are_bin_centres_in_c_order():
    grid = CVGrid([0.0, -1.0], [1.0, 1.0], [2, 4], [False, True])
    assert grid.shape == (2, 4)
    assert grid.n_points == 8 and grid.n_cv == 2
    assert grid.points.shape == (8, 2) and grid.points.dtype == F64
    torch.testing.assert_close(grid.bin_width, torch.tensor([0.5, 0.5], dtype=F64))
    expected_second = torch.tensor([-0.75, -0.25, 0.25, 0.75], dtype=F64)
    torch.testing.assert_close(grid.points[:4, 1], expected_second)  # last CV fastest
    torch.testing.assert_close(grid.points[:4, 0], torch.full((4,), 0.25, dtype=F64))
    torch.testing.assert_close(grid.points[4:, 0], torch.full((4,), 0.75, dtype=F64))
    assert grid.cell_volume == pytest.approx(0.25)


def test_index_of_points_is_identity_3d():
    grid = CVGrid([0, -math.pi, -2], [1, math.pi, 2], [3, 5, 4], [False, True, False])
    idx = grid.index(grid.points)
    assert torch.equal(idx, torch.arange(grid.n_points))


def test_periodic_wrapping():
    grid = CVGrid([-math.pi], [math.pi], [36], [True])
    s = torch.tensor([[0.3], [0.3 + 2 * math.pi], [0.3 - 4 * math.pi]], dtype=F64)
    idx = grid.index(s)
    assert idx[0] == idx[1] == idx[2]
    # the upper edge of a periodic CV is the lower edge: bin 0
    assert grid.index(torch.tensor([[math.pi]], dtype=F64)).item() == 0
    assert grid.index(torch.tensor([[-math.pi]], dtype=F64)).item() == 0
    # just below the lower edge wraps to the last bin
    assert grid.index(torch.tensor([[-math.pi - 1e-9]], dtype=F64)).item() == 35


def test_non_periodic_edges_and_errors():
    grid = CVGrid([-1.0, 0.0], [1.0, 2.0], [4, 2], [True, False])
    # value exactly at upper goes to the last bin
    assert grid.index(torch.tensor([[0.0, 2.0]], dtype=F64)).item() == 2 * 2 + 1
    assert grid.index(torch.tensor([[0.0, 0.0]], dtype=F64)).item() == 2 * 2
    with pytest.raises(ValueError, match=r"CV 1.*2\.5.*\[0\.0, 2\.0\]"):
        grid.index(torch.tensor([[0.0, 1.0], [0.0, 2.5]], dtype=F64))
    with pytest.raises(ValueError, match="NaN"):
        grid.index(torch.tensor([[float("nan"), 1.0]], dtype=F64))
    with pytest.raises(ValueError, match="CV 1"):
        grid.index(torch.tensor([[0.0, float("inf")]], dtype=F64))
    with pytest.raises(ValueError, match="shape"):
        grid.index(torch.zeros(3, 3, dtype=F64))


def test_histogram_counts_weights_and_out_of_range():
    grid = CVGrid([0.0], [3.0], [3], [False])
    s = torch.tensor([0.1, 0.2, 1.5, 2.9, 3.0], dtype=torch.float32)  # 1-D accepted, any dtype
    counts = grid.histogram(s)
    assert counts.tolist() == [2.0, 1.0, 2.0]
    w = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    assert grid.histogram(s, weights=w).tolist() == [3.0, 3.0, 9.0]
    s_out = torch.tensor([[0.1], [5.0], [-1.0]], dtype=F64)
    with pytest.raises(ValueError, match="outside"):
        grid.histogram(s_out)
    assert grid.histogram(s_out, out_of_range="ignore").tolist() == [1.0, 0.0, 0.0]
    assert grid.in_range(s_out).tolist() == [True, False, False]
    with pytest.raises(ValueError, match="weights"):
        grid.histogram(s, weights=torch.ones(2))
    with pytest.raises(ValueError, match="out_of_range"):
        grid.histogram(s, out_of_range="clip")


@pytest.mark.parametrize(
    "args, message",
    [
        (([0.0], [1.0, 2.0], [3], [False]), "upper has 2 entries"),
        (([1.0], [0.0], [3], [False]), "must be > lower"),
        (([0.0], [1.0], [0], [False]), "bins must be >= 1"),
        (([0.0], [float("inf")], [3], [False]), "finite"),
        (([], [], [], []), "at least one CV"),
        (([0.0], [1.0], [3], [False, True]), "periodic has 2 entries"),
    ],
)
def test_constructor_errors(args, message):
    with pytest.raises(ValueError, match=message):
        CVGrid(*args)


@pytest.mark.parametrize("device", DEVICES)
def test_to_device_roundtrip(device):
    grid = CVGrid([0.0], [1.0], [10], [False]).to("cpu")
    assert grid.device.type == "cpu"
    grid.to(device)
    assert grid.points.device.type == torch.device(device).type
    idx = grid.index(torch.tensor([[0.55]], dtype=F64))  # CPU samples, grid on the device
    assert idx.device.type == torch.device(device).type and idx.item() == 5
