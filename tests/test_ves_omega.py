"""Tests of omega_loss (Eq. 10), omega_functional (Eq. 3) and bias_normalization (c(t))."""

import math

import pytest
import torch

from openmm_nnbias.ves import CVGrid
from openmm_nnbias.ves.omega import bias_normalization, omega_functional, omega_loss

torch.set_num_threads(1)
F64 = torch.float64


class MLPBias(torch.nn.Module):
    """Tiny float64 MLP bias; periodic CVs enter as (cos s, sin s)."""

    def __init__(self, hidden=(8, 8), periodic=False, scale=3.0, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.periodic, self.scale = periodic, scale
        sizes = [2 if periodic else 1, *hidden]
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [torch.nn.Linear(a, b), torch.nn.Tanh()]
        layers.append(torch.nn.Linear(sizes[-1], 1))
        self.net = torch.nn.Sequential(*layers).double()

    def forward(self, s):
        x = torch.cat([torch.cos(s), torch.sin(s)], dim=1) if self.periodic else s / self.scale
        return self.net(x).squeeze(-1)


class PolynomialBias(torch.nn.Module):
    """V(s) = sum_k c_k s^k, k = 1..4: linear in the parameters, so Omega is convex."""

    def __init__(self):
        super().__init__()
        self.coeffs = torch.nn.Parameter(torch.zeros(4, dtype=F64))

    def forward(self, s):
        powers = torch.cat([s**k for k in range(1, 5)], dim=1)
        return powers @ self.coeffs


def biased_weights(bias, points, free_energy, kT):
    """Exact P_V on the grid, proportional to exp(-beta (F + V))."""
    with torch.no_grad():
        logits = -(free_energy + bias(points)) / kT
    return torch.softmax(logits, dim=0)


CASES = {
    "harmonic-bounded": dict(lower=-3.0, upper=3.0, periodic=False,
                             fes=lambda s: 0.5 * 2.0 * s**2, kT=1.0),
    "cosine-periodic": dict(lower=-math.pi, upper=math.pi, periodic=True,
                            fes=lambda s: 3.0 * (1 - torch.cos(s - 0.4)) + 0.5 * torch.sin(2 * s),
                            kT=2.494),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("target_kind", ["uniform", "tempered"])
def test_eq10_gradient_matches_finite_differences_of_omega(case, target_kind):
    c = CASES[case]
    grid = CVGrid([c["lower"]], [c["upper"]], [60], [c["periodic"]])
    points, kT = grid.points, c["kT"]
    fes = c["fes"](points[:, 0])
    if target_kind == "uniform":
        p = torch.full((grid.n_points,), 1.0 / grid.n_points, dtype=F64)
    else:
        p = torch.softmax(-fes / (10.0 * kT), dim=0)
    bias = MLPBias(periodic=c["periodic"], scale=c["upper"])
    params = list(bias.parameters())

    weights = biased_weights(bias, points, fes, kT)
    loss = omega_loss(bias, points, points, p, sample_weights=weights)
    grads = torch.autograd.grad(loss, params)

    def omega():
        with torch.no_grad():
            return float(omega_functional(bias, points, grid.cell_volume, fes, p, kT))

    h = 1e-6
    n_checked = 0
    for param, grad in zip(params, grads):
        flat, gflat = param.data.view(-1), grad.view(-1)
        for j in range(flat.numel()):
            old = float(flat[j])
            flat[j] = old + h
            up = omega()
            flat[j] = old - h
            down = omega()
            flat[j] = old
            fd = (up - down) / (2 * h)
            assert float(gflat[j]) == pytest.approx(fd, rel=1e-6, abs=1e-9), (param.shape, j)
            n_checked += 1
    assert n_checked == sum(q.numel() for q in params)
    # the output offset does not change Omega: its Eq. 10 gradient is exactly 0
    assert abs(float(grads[-1])) < 1e-12


def test_omega_functional_is_kl_difference():
    grid = CVGrid([-3.0], [3.0], [40], [False])
    s = grid.points[:, 0]
    kT = 1.7
    fes = 0.5 * s**2 + 0.3 * s
    p = torch.softmax(-fes / (5 * kT), dim=0)
    bias = MLPBias(seed=3)
    omega = float(omega_functional(bias, grid.points, grid.cell_volume, fes, p, kT).detach())
    with torch.no_grad():
        p_v = torch.softmax(-(fes + bias(grid.points)) / kT, dim=0)
    p_0 = torch.softmax(-fes / kT, dim=0)
    kl = lambda a, b: float((a * torch.log(a / b)).sum())  # noqa: E731
    assert omega / kT == pytest.approx(kl(p, p_v) - kl(p, p_0), rel=1e-12)


def _minimise(bias, grid, fes, kT, steps, lr):
    p = torch.full((grid.n_points,), 1.0 / grid.n_points, dtype=F64)
    adam = torch.optim.Adam(bias.parameters(), lr=lr)
    for _ in range(steps):
        weights = biased_weights(bias, grid.points, fes, kT)
        adam.zero_grad()
        omega_loss(bias, grid.points, grid.points, p, sample_weights=weights).backward()
        adam.step()
    with torch.no_grad():
        residual = bias(grid.points) + fes
    residual = residual - residual.mean()
    return float(torch.sqrt((residual**2).mean())) / kT


def test_known_optimum_polynomial_bias():
    grid = CVGrid([-3.0], [3.0], [60], [False])
    kT = 1.0
    fes = 0.5 * 1.0 * grid.points[:, 0] ** 2
    rmse = _minimise(PolynomialBias(), grid, fes, kT, steps=400, lr=0.02)
    assert rmse < 1e-3


def test_known_optimum_mlp_bias():
    grid = CVGrid([-3.0], [3.0], [60], [False])
    kT = 1.0
    fes = 0.5 * 1.0 * grid.points[:, 0] ** 2
    rmse = _minimise(MLPBias(hidden=(16, 16), seed=1), grid, fes, kT, steps=600, lr=0.01)
    assert rmse < 0.02  # untrained: 1.35 kT


def test_omega_loss_values_and_weights():
    bias = PolynomialBias()
    bias.coeffs.data = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=F64)  # V = s
    samples = torch.tensor([[1.0], [3.0]], dtype=F64)
    points = torch.tensor([[0.0], [2.0]], dtype=F64)
    p = torch.tensor([3.0, 1.0], dtype=F64)  # normalised inside: (0.75, 0.25)
    def loss(**kwargs):
        return float(omega_loss(bias, samples, points, p, **kwargs).detach())

    assert loss() == pytest.approx(-2.0 + 0.5)
    w = torch.tensor([1.0, 3.0])
    assert loss(sample_weights=w) == pytest.approx(-2.5 + 0.5)
    assert loss(sample_weights=10 * w) == pytest.approx(-2.0)
    with pytest.raises(ValueError, match="sample_weights"):
        omega_loss(bias, samples, points, p, sample_weights=torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match="target_probabilities"):
        omega_loss(bias, samples, points, torch.ones(3))
    with pytest.raises(ValueError, match="target_points"):
        omega_loss(bias, samples, torch.zeros(2, 2), p)
    with pytest.raises(ValueError, match="N > 0"):
        omega_loss(bias, torch.zeros(0, 1), points, p)

    class BadBias(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(2, dtype=F64))

        def forward(self, s):
            return s * self.w  # (B, 2): wrong

    with pytest.raises(ValueError, match="output shape"):
        omega_loss(BadBias(), torch.zeros(4, 1, dtype=F64), points, p)


def test_bias_normalization():
    kT = 2.5
    p = torch.tensor([0.2, 0.3, 0.5], dtype=F64)
    assert bias_normalization(torch.full((3,), 7.0), p, kT) == pytest.approx(7.0)
    v = torch.tensor([0.0, 2.0, -1.0], dtype=F64)
    by_hand = kT * math.log(0.2 + 0.3 * math.exp(2 / kT) + 0.5 * math.exp(-1 / kT))
    assert bias_normalization(v, p, kT) == pytest.approx(by_hand, rel=1e-14)
    assert bias_normalization(v, 4 * p, kT) == pytest.approx(by_hand, rel=1e-14)
    # zero-probability bins are ignored; huge biases do not overflow
    p0 = torch.tensor([0.0, 1.0, 0.0], dtype=F64)
    assert bias_normalization(v + 1e5, p0, kT) == pytest.approx(1e5 + 2.0)
    with pytest.raises(ValueError, match="kT"):
        bias_normalization(v, p, 0.0)
    with pytest.raises(ValueError, match="entries"):
        bias_normalization(v, torch.ones(2), kT)
