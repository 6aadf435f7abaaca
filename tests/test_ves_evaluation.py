"""BiasEvaluator: mixed precision and the grid pass reused between Deep-VES iterations."""

import copy
import pickle

import pytest
import torch

from openmm_nnbias.bias import NeuralBias
from openmm_nnbias.ves import CVGrid, DeepVESOptimizer
from openmm_nnbias.ves.evaluation import BiasEvaluator
from openmm_nnbias.ves.omega import omega_loss, omega_loss_from_values

F64 = torch.float64


def _bias(seed=0):
    return NeuralBias([True, True], [-torch.pi, -torch.pi], [torch.pi, torch.pi], seed=seed, zero_output=False)


def _samples(n_iter, n=20, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(n, 2, generator=g, dtype=F64) * 2 - 1) * torch.pi for _ in range(n_iter)]


def test_mixed_precision_values_and_gradient_match_double():
    bias = _bias()
    grid = CVGrid([-torch.pi] * 2, [torch.pi] * 2, [30, 30], [True, True])
    p = torch.rand(grid.n_points, dtype=F64)
    s = _samples(1)[0]
    params = list(bias.parameters())
    ev32 = BiasEvaluator(bias, params, torch.float32)
    with torch.no_grad():
        v32 = ev32(grid.points)
    assert v32.dtype == torch.float32
    with torch.no_grad():
        v64 = bias(grid.points)
    assert torch.allclose(v32.double(), v64, rtol=1e-5, atol=1e-5 * float(v64.abs().max()))
    # Eq. 10 gradient: float32 passes, float64 leaves
    ev32.backward(omega_loss_from_values(ev32(s), ev32(grid.points), p))
    g32 = [q.grad.clone() for q in params]
    assert all(g.dtype == F64 for g in g32)
    bias.zero_grad(set_to_none=True)
    omega_loss(bias, s, grid.points, p).backward()
    g64 = torch.cat([q.grad.reshape(-1) for q in params])
    err = torch.linalg.vector_norm(torch.cat([g.reshape(-1) for g in g32]) - g64) / torch.linalg.vector_norm(g64)
    assert float(err) < 1e-4


@pytest.mark.parametrize("precision", ["double", "mixed"])
def test_reused_grid_pass_is_bit_identical_and_halves_grid_evaluations(precision):
    grid = CVGrid([-torch.pi] * 2, [torch.pi] * 2, [25, 25], [True, True])
    runs = {}
    for reuse in (True, False):
        bias = _bias(3)
        opt = DeepVESOptimizer(bias, grid, kT=2.5, tauKL=5, computeDtype=precision)
        calls = []
        original = opt.evaluator.__call__

        class Counting(BiasEvaluator):  # count the passes over the grid
            def __call__(self, points):
                calls.append(points.shape[0])
                return original(points)

        opt.evaluator.__class__ = Counting
        for s in _samples(8):
            if not reuse:
                opt.evaluator.invalidate()
            stats = opt.step(s)
            assert stats["updated"] or stats["iteration"] == 0
        runs[reuse] = (torch.cat([q.detach().reshape(-1) for q in bias.parameters()]), calls, opt.target.probabilities)
    assert torch.equal(runs[True][0], runs[False][0])
    assert torch.equal(runs[True][2], runs[False][2])
    grid_calls = {k: sum(1 for n in v[1] if n == grid.n_points) for k, v in runs.items()}
    assert grid_calls[True] == 8 + 1 and grid_calls[False] == 2 * 8 - 1  # one pass per iteration (+ the first)


def test_cache_follows_weight_changes_and_is_not_pickled():
    grid = CVGrid([-torch.pi] * 2, [torch.pi] * 2, [20, 20], [True, True])
    bias = _bias(5)
    opt = DeepVESOptimizer(bias, grid, kT=2.5, computeDtype="mixed")
    for s in _samples(3):
        opt.step(s)
    before = opt.bias_on_grid()
    assert torch.equal(before, opt.bias_on_grid())  # cached
    with torch.no_grad():
        bias.layers[-1].bias.add_(1.0)  # any in-place change of the weights invalidates the cache
    assert torch.allclose(opt.bias_on_grid(), before + 1.0, atol=1e-4)
    clone = pickle.loads(pickle.dumps(opt))  # the cache holds a graph: it must not travel
    assert clone.evaluator._cache is None and clone.evaluator.bias is clone.bias
    state = copy.deepcopy(opt.state_dict())
    opt.step(_samples(1, seed=9)[0])
    opt.load_state_dict(state)
    assert torch.allclose(opt.bias_on_grid(), before + 1.0, atol=1e-4)


def test_bad_precision_is_one_clear_error():
    grid = CVGrid([-1.0], [1.0], [10], [False])
    net = torch.nn.Sequential(torch.nn.Linear(1, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1), torch.nn.Flatten(0)).double()
    with pytest.raises(ValueError, match="precision must be one of"):
        DeepVESOptimizer(net, grid, kT=1.0, computeDtype="half")
