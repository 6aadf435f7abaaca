"""Multiple Deep-VES walkers on torch.distributed (gloo): pooled gradients, histograms, identical weights.

Most tests run two walkers as two threads of this process, each with its own gloo process group
over a shared in-memory store (fast, same arithmetic as two processes); the last test spawns two
real processes through ``openmm-nnbias deepves --walkers 2``.
"""

import datetime
import os
import threading

import numpy as np
import pytest
import torch
import torch.distributed as dist

from openmm_nnbias.ves import CVGrid, DeepVESOptimizer
from openmm_nnbias.ves.omega import omega_loss
from openmm_nnbias.ves.walkers import WalkerGroup

torch.set_num_threads(1)
F64 = torch.float64
N_SAMPLES = (300, 700)  # unequal on purpose: a plain mean of the two gradients would be wrong


_RNG_LOCK = threading.Lock()  # walker threads seed and draw from torch's global generator


class MLPBias(torch.nn.Module):
    def __init__(self, seed):
        super().__init__()
        with _RNG_LOCK:
            torch.manual_seed(seed)
            self.net = torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16),
                                           torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()

    def forward(self, s):
        return self.net(s / 2.0).squeeze(-1)


def make_opt(seed, reducer=None):
    grid = CVGrid([-1.7], [1.7], [50], [False])
    return DeepVESOptimizer(MLPBias(seed), grid, kT=1.0, biasFactor=10.0, learningRate=0.03, tauKL=5,
                            klThreshold=0.05, tauDecay=50, reducer=reducer)


def walker_samples(rank, iteration):
    """Different samples for each walker and iteration, inside the grid (1.2 * sin keeps |s| < 1.7)."""
    gen = torch.Generator().manual_seed(1000 * rank + iteration)
    return (1.2 * torch.sin(2.0 * torch.randn(N_SAMPLES[rank], 1, generator=gen, dtype=F64))) + 0.1 * rank


def run_walkers(fn, world_size=2, check_interval=1):
    """Run ``fn(group)`` for every rank in its own thread; return the list of results (or raise)."""
    store = dist.HashStore()
    prefix = f"t{np.random.default_rng().integers(1 << 30)}"
    results, errors = [None] * world_size, [None] * world_size

    def target(rank):
        try:
            pg = dist.ProcessGroupGloo(dist.PrefixStore(prefix, store), rank, world_size,
                                       datetime.timedelta(seconds=20))
            group = WalkerGroup(rank, world_size, backend="gloo", processGroup=pg, checkInterval=check_interval)
            results[rank] = fn(group)
        except Exception as exc:  # noqa: BLE001 - re-raised in the main thread
            errors[rank] = exc

    threads = [threading.Thread(target=target, args=(r,)) for r in range(world_size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), "walker thread hung (mismatched collectives?)"
    return results, errors


def params(opt):
    return [p.detach().clone() for p in opt.bias.parameters()]


def test_walkers_identical_weights_and_pooled_trajectory():
    n_iter = 8

    def walker(group):
        opt = make_opt(seed=10 + group.rank, reducer=group)  # different nets: the broadcast unifies them
        stats = [opt.step(walker_samples(group.rank, it)) for it in range(n_iter)]
        return params(opt), stats, opt.kl_monitor.histogram.clone()

    (res0, res1), errors = run_walkers(walker)
    assert errors == [None, None], errors
    for a, b in zip(res0[0], res1[0]):
        assert torch.equal(a, b)  # bit-identical weights on both walkers
    assert torch.equal(res0[2], res1[2])
    # one optimizer on the concatenated samples, started from walker 0's network
    ref = make_opt(seed=10)
    start = params(ref)
    ref_stats = [ref.step(torch.cat([walker_samples(0, it), walker_samples(1, it)])) for it in range(n_iter)]
    moved = max(float((a - b).abs().max()) for a, b in zip(params(ref), start))
    assert moved > 1e-2  # Adam really changed the weights
    *weights, offset = zip(res0[0], params(ref))
    for a, b in weights:
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # the output bias only shifts V, which leaves Eq. 10 at exactly 0: its "gradient" is rounding
    # noise (~1e-16) that Adam divides by eps = 1e-8, so it drifts by up to ~lr * 1e-8 per step
    torch.testing.assert_close(offset[0], offset[1], rtol=0, atol=n_iter * 0.03 * 1e-7)
    for s, r in zip(res0[1], ref_stats):
        assert s["updated"] == r["updated"] and not s["skipped"]
        assert s["kl"] == pytest.approx(r["kl"], rel=1e-10)
        assert s["loss"] == pytest.approx(r["loss"], rel=1e-10, abs=1e-12)
        assert s["grad_norm"] == pytest.approx(r["grad_norm"], rel=1e-10)
    torch.testing.assert_close(res0[2], ref.kl_monitor.histogram, rtol=1e-12, atol=1e-15)


def test_averaged_gradient_equals_gradient_of_pooled_samples():
    grid = CVGrid([-1.7], [1.7], [50], [False])
    p = torch.softmax(-grid.points[:, 0] ** 2, dim=0)
    pooled = torch.cat([walker_samples(0, 0), walker_samples(1, 0)])

    def grads(bias, samples):
        bias.zero_grad()
        omega_loss(bias, samples, grid.points, p).backward()
        return [q.grad.clone() for q in bias.parameters()]

    def walker(group):
        bias = MLPBias(seed=3)
        local = grads(bias, walker_samples(group.rank, 0))
        loss = float(omega_loss(bias, walker_samples(group.rank, 0), grid.points, p).detach())
        pooled_loss = group.average_gradients(list(bias.parameters()), loss, N_SAMPLES[group.rank])
        return local, [q.grad.clone() for q in bias.parameters()], pooled_loss

    (r0, r1), errors = run_walkers(walker)
    assert errors == [None, None], errors
    bias = MLPBias(seed=3)
    expected = grads(bias, pooled)
    expected_loss = float(omega_loss(bias, pooled, grid.points, p))
    for g0, g1, e, l0, l1 in zip(r0[1], r1[1], expected, r0[0], r1[0]):
        assert torch.equal(g0, g1)
        torch.testing.assert_close(g0, e, rtol=1e-12, atol=1e-14)
        naive = 0.5 * (l0 + l1)  # unweighted mean of the walkers' gradients: not the pooled one
        assert float((naive - e).abs().max()) > 1e-6 * float(e.abs().max()) or float(e.abs().max()) == 0
    assert r0[2] == pytest.approx(expected_loss, rel=1e-12) and r0[2] == r1[2]


def test_pooled_histogram_equals_histogram_of_pooled_samples():
    grid = CVGrid([-1.7, -3.0], [1.7, 3.0], [20, 30], [False, True])

    def samples(rank):
        gen = torch.Generator().manual_seed(rank)
        return torch.stack([torch.rand(N_SAMPLES[rank], generator=gen, dtype=F64) * 3.4 - 1.7,
                            torch.randn(N_SAMPLES[rank], generator=gen, dtype=F64) * 2.0], dim=1)

    (c0, c1), errors = run_walkers(lambda g: g.pool_counts(grid.histogram(samples(g.rank))))
    assert errors == [None, None], errors
    expected = grid.histogram(torch.cat([samples(0), samples(1)]))
    assert torch.equal(c0, expected) and torch.equal(c1, expected)
    assert float(expected.sum()) == sum(N_SAMPLES)


def test_broadcast_and_divergence_detection():
    def walker(group):
        bias = MLPBias(seed=20 + group.rank)
        own = params_of(bias)
        changed = group.broadcast_parameters(bias.parameters())
        after = params_of(bias)
        group.check_identical(bias.parameters())  # passes: identical after the broadcast
        if group.rank == 1:  # one ulp in one weight
            with torch.no_grad():
                w = next(bias.parameters())
                w[0, 0] = torch.nextafter(w[0, 0], torch.tensor(np.inf, dtype=F64))
        with pytest.raises(RuntimeError, match=r"diverged at iteration 7: walkers \[1\] differ"):
            group.check_identical(bias.parameters(), iteration=7)
        return own, changed, after

    (r0, r1), errors = run_walkers(walker)
    assert errors == [None, None], errors
    assert r0[1] is False and r1[1] is True
    for a, b, c in zip(r0[0], r0[2], r1[2]):
        assert torch.equal(a, b) and torch.equal(a, c)


def params_of(module):
    return [p.detach().clone() for p in module.parameters()]


def test_all_walkers_skip_together_then_continue():
    def walker(group):
        opt = make_opt(seed=1, reducer=group)
        bad = walker_samples(group.rank, 0)
        if group.rank == 1:
            bad[3, 0] = float("nan")
        first = opt.step(bad)
        second = opt.step(walker_samples(group.rank, 1))
        empty = opt.step(torch.empty(0, 1, dtype=F64) if group.rank == 0 else walker_samples(1, 2))
        return first, second, empty

    (r0, r1), errors = run_walkers(walker)
    assert errors == [None, None], errors
    for first, second, empty in (r0, r1):
        assert first["skipped"] and first["reason"] == "walker 1: non-finite CV values in 1 of 700 samples"
        assert not second["skipped"] and second["iteration"] == 1
        assert empty["skipped"] and empty["reason"] == "walker 0: no samples"
    assert r0[1]["kl"] == r1[1]["kl"] and r0[1]["grad_norm"] == r1[1]["grad_norm"]


def test_walkers_out_of_step_raise_instead_of_hanging():
    def walker(group):
        opt = make_opt(seed=1, reducer=group)
        opt.step(walker_samples(group.rank, 0))
        if group.rank == 1:
            opt.iteration += 1  # e.g. a restart from a checkpoint of another iteration
        with pytest.raises(RuntimeError, match=r"walkers out of step: \(iteration, frozen\) per walker "
                                               r"\[\[1.0, 0.0\], \[2.0, 0.0\]\]"):
            opt.step(walker_samples(group.rank, 1))

    _, errors = run_walkers(walker)
    assert errors == [None, None], errors


def test_single_walker_group_changes_nothing():
    ref, one = make_opt(seed=5), make_opt(seed=5, reducer=WalkerGroup(rank=0, worldSize=1))
    for it in range(4):
        a, b = ref.step(walker_samples(0, it)), one.step(walker_samples(0, it))
        assert a == b
    for x, y in zip(params(ref), params(one)):
        assert torch.equal(x, y)


def test_walker_group_argument_errors(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(ValueError, match="no walker environment"):
        WalkerGroup()
    with pytest.raises(ValueError, match="both rank and worldSize"):
        WalkerGroup(rank=0)
    with pytest.raises(ValueError, match="0 <= rank < worldSize"):
        WalkerGroup(rank=2, worldSize=2)
    with pytest.raises(ValueError, match="backend must be"):
        WalkerGroup(rank=0, worldSize=1, backend="mpi")


@pytest.mark.slow  # two fresh processes importing torch + OpenMM: ~10 s idle, ~40 s on a loaded machine
def test_cli_two_walker_processes(tmp_path):
    """Two real processes (spawn, gloo, file store) on Wolfe-Quapp: file layout and identical weights."""
    from openmm_nnbias.cli import main

    out = str(tmp_path / "run")
    assert main(["deepves", "--system", "wolfe-quapp", "--steps", "1500", "--stride", "250", "--out", out,
                 "--walkers", "2", "--no-progress"]) == 0
    files = set(os.listdir(out))
    assert {"colvar", "colvar.1", "ves.log", "fes_bias.dat", "bias.pt", "checkpoint.pt",
            "checkpoint.1.pt"} <= files
    assert not any(f.startswith("ves.log.") or f.startswith("fes_bias.dat.") for f in files)
    log = [ln.split() for ln in open(os.path.join(out, "ves.log")) if not ln.startswith("#")]
    assert [int(r[0]) for r in log] == list(range(6))  # one ves.log line per iteration, walker 0 only
    c0, c1 = (np.loadtxt(os.path.join(out, f)) for f in ("colvar", "colvar.1"))
    assert c0.shape == c1.shape and not np.allclose(c0[:, 1], c1[:, 1])  # different MD seeds
    s0, s1 = (torch.load(os.path.join(out, f), weights_only=False) for f in ("checkpoint.pt", "checkpoint.1.pt"))
    for k, v in s0["optimizer"]["bias"].items():
        assert torch.equal(v, s1["optimizer"]["bias"][k])
    assert s0["optimizer"]["iteration"] == s1["optimizer"]["iteration"] == 6


def test_walkers_with_monte_carlo_target_keep_identical_weights():
    """Gridless (MC) target: each walker draws its own target samples (own seed); the averaged
    gradient is still applied identically, so the weights stay bit-identical."""
    from openmm_nnbias.ves.montecarlo import MonteCarloTarget

    def fn(group):
        sampler = MonteCarloTarget([-1.7], [1.7], [False], 1.0, 10.0, chains=50, steps=4, seed=7 + group.rank)
        opt = DeepVESOptimizer(MLPBias(0), None, kT=1.0, biasFactor=10.0, learningRate=0.03, tauKL=5, klThreshold=0.05,
                               tauDecay=50, reducer=group, targetSampler=sampler)
        for it in range(6):
            opt.step(walker_samples(group.rank, it))
        return params(opt), opt.n_updates

    results, errors = run_walkers(fn)
    assert errors == [None, None], errors
    (p0, n0), (p1, n1) = results
    assert n0 == n1 == 5
    assert all(torch.equal(a, b) for a, b in zip(p0, p1))
