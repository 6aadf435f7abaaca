"""Multiple walkers for Deep-VES: N simulations share one bias through ``torch.distributed``.

Each walker (one process, its own OpenMM simulation and MD seed) runs the same
:class:`~openmm_nnbias.ves.DeepVESOptimizer`; every iteration a :class:`WalkerGroup` (the
optimizer's ``reducer``) pools what the walkers sampled, so all of them take the same Adam
step and hold bit-identical weights:

* Eq. 10 gradient: ``g = Σ_k n_k g_k / Σ_k n_k``. The biased term of Eq. 10 is a mean over
  the n_k samples of walker k and the target term is the same on every walker, so this
  weighted mean is exactly the gradient of the pooled samples (the loss likewise);
* KL histogram: the per-iteration counts are summed, so every KL monitor sees the pooled
  histogram;
* skips: an iteration is skipped on every walker if any walker has no or non-finite samples
  (otherwise the collectives would not match);
* weights: broadcast from walker 0 at the start; a checksum of the weights is compared every
  ``checkInterval`` iterations (``RuntimeError`` naming the walkers that diverged).

Launch: ``openmm-nnbias deepves ... --walkers N`` (spawns N local processes, gloo), or one
process per walker under ``torchrun --nproc-per-node N --no-python openmm-nnbias deepves ...``
(gloo on CPU, nccl when torch sees GPUs, one GPU per local rank).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import math
import os
import pickle
import shutil
import tempfile
import time
from typing import Any, Callable, Iterable, Sequence

import torch
import torch.distributed as dist

from .options import ExecutionOptions
from .updater import DeepVESUpdater

__all__ = ["WalkerGroup", "WalkerDeepVESUpdater", "spawn_walkers", "torchrun_world_size"]


def torchrun_world_size() -> int:
    """World size set by ``torchrun`` (env ``RANK`` and ``WORLD_SIZE``), 0 when not under it."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["WORLD_SIZE"])
    return 0


class WalkerGroup:
    """The walkers' process group and the reductions Deep-VES needs (pass it as ``reducer``).

    Parameters
    ----------
    rank, worldSize : int, optional
        This walker's index and the number of walkers (the attributes ``rank``, ``world_size``).
        Both ``None``: read ``RANK`` and ``WORLD_SIZE`` from the environment (torchrun), or take
        them from an already initialised default process group. ``worldSize=1`` needs no process group.
    initMethod : str, optional
        torch.distributed rendezvous, e.g. ``"file:///tmp/x/store"`` or
        ``"tcp://127.0.0.1:29500"``; default ``"env://"`` (torchrun's MASTER_ADDR/PORT).
    backend : {"gloo", "nccl"}, optional
        Default: ``"nccl"`` when torch sees a GPU, else ``"gloo"``.
    checkInterval : int
        Compare the weight checksums every that many gradient reductions (0: never).
    timeout : float
        Collective timeout in seconds.
    processGroup : optional
        An existing group to use instead of creating one (with ``rank`` and ``worldSize``).

    Examples
    --------
    >>> import torch
    >>> from openmm_nnbias.ves.walkers import WalkerGroup
    >>> group = WalkerGroup(rank=0, worldSize=1)   # one walker: every reduction is the identity
    >>> group.pool_counts(torch.tensor([3.0, 1.0]))
    tensor([3., 1.])
    """

    def __init__(self, rank: int | None = None, worldSize: int | None = None, initMethod: str | None = None,
                 backend: str | None = None, checkInterval: int = 10, timeout: float = 1800.0,
                 processGroup: Any = None) -> None:
        world_size, process_group = worldSize, processGroup
        if (rank is None) != (world_size is None):
            raise ValueError("give both rank and worldSize, or neither (torchrun environment)")
        if backend is not None and backend not in ("gloo", "nccl"):
            raise ValueError(f"backend must be 'gloo' or 'nccl', got {backend!r}")
        if int(checkInterval) < 0 or not float(timeout) > 0:
            raise ValueError(f"checkInterval must be >= 0 and timeout > 0 (s), got {checkInterval}, {timeout}")
        self.owns_group = False
        if rank is None:
            if dist.is_available() and dist.is_initialized():
                rank, world_size = dist.get_rank(), dist.get_world_size()
                backend = backend or dist.get_backend()
            elif torchrun_world_size():
                rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
            else:
                raise ValueError("no walker environment: RANK and WORLD_SIZE are set by torchrun; "
                                 "otherwise pass rank and worldSize")
        rank, world_size = int(rank), int(world_size)
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need worldSize >= 1 and 0 <= rank < worldSize, got rank {rank}, "
                             f"worldSize {world_size}")
        if backend is None:
            backend = "nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"
        self.rank, self.world_size, self.backend = rank, world_size, backend
        self.check_interval = int(checkInterval)
        self.device = torch.device("cpu")
        if backend == "nccl":
            local = int(os.environ.get("LOCAL_RANK", rank)) % max(torch.cuda.device_count(), 1)
            self.device = torch.device("cuda", local)
            torch.cuda.set_device(self.device)
        self._pg = process_group
        if world_size > 1 and process_group is None and not dist.is_initialized():
            dist.init_process_group(backend, init_method=initMethod or "env://", rank=rank,
                                    world_size=world_size, timeout=datetime.timedelta(seconds=float(timeout)))
            self.owns_group = True
        self.n_reductions = 0

    # ----------------------------------------------------------------- collectives
    def _all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum over walkers of a tensor (returned on the input's device)."""
        if self.world_size == 1:
            return tensor
        buf = tensor.detach().to(self.device).contiguous().clone()
        dist.all_reduce(buf, group=self._pg)
        return buf.to(tensor.device)

    def _all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Stack ``(world_size, *shape)`` of every walker's tensor (exact bits)."""
        if self.world_size == 1:
            return tensor.detach().unsqueeze(0)
        buf = tensor.detach().to(self.device).contiguous()
        out = [torch.empty_like(buf) for _ in range(self.world_size)]
        dist.all_gather(out, buf, group=self._pg)
        return torch.stack(out).to(tensor.device)

    def broadcast_parameters(self, params: Iterable[torch.Tensor]) -> bool:
        """Copy walker 0's values into ``params`` in place; True if this walker's changed."""
        params = list(params)
        flat = torch.cat([p.detach().reshape(-1).to(torch.float64) for p in params])
        ref = self._all_gather(flat)[0]
        changed = not torch.equal(ref, flat)
        if changed:
            with torch.no_grad():
                offset = 0
                for p in params:
                    p.copy_(ref[offset:offset + p.numel()].reshape(p.shape))
                    offset += p.numel()
        return changed

    def agree_on_samples(self, samples: torch.Tensor, iteration: int = -1, frozen: bool = False) -> str:
        """Skip reason if *any* walker has no or non-finite samples ("" if all can go on).

        Also checks that all walkers are at the same ``iteration`` and ``frozen`` state
        (``RuntimeError`` otherwise: their schedules diverged, e.g. different KL inputs).
        """
        local = torch.zeros(4 * self.world_size, dtype=torch.float64)
        local[4 * self.rank: 4 * self.rank + 4] = torch.tensor(
            [samples.shape[0], 0.0, float(iteration), float(bool(frozen))], dtype=torch.float64)
        if samples.shape[0]:
            local[4 * self.rank + 1] = float((~torch.isfinite(samples).all(dim=1)).sum())
        allv = self._all_reduce(local).reshape(self.world_size, 4)
        states = allv[:, 2:].tolist()
        if any(st != states[0] for st in states):
            raise RuntimeError(f"walkers out of step: (iteration, frozen) per walker {states}; every walker "
                               "must see the same pooled KL and run the same schedule")
        allv = allv[:, :2].reshape(-1).tolist()
        reasons = []
        for k in range(self.world_size):
            n, bad = int(allv[2 * k]), int(allv[2 * k + 1])
            if n == 0:
                reasons.append(f"walker {k}: no samples")
            elif bad:
                reasons.append(f"walker {k}: non-finite CV values in {bad} of {n} samples")
        return "; ".join(reasons)

    def pool_counts(self, counts: torch.Tensor) -> torch.Tensor:
        """Histogram counts summed over walkers (the histogram of the pooled samples)."""
        return self._all_reduce(counts)

    def average_gradients(self, params: Sequence[torch.Tensor], loss: float, n_samples: int,
                          iteration: int | None = None) -> float:
        """Replace each ``p.grad`` by ``Σ_k n_k g_k / Σ_k n_k`` and return the pooled loss.

        Every ``checkInterval``-th call first runs :meth:`check_identical` on ``params``.
        """
        if self.check_interval and self.n_reductions % self.check_interval == 0:
            self.check_identical(params, iteration)
        self.n_reductions += 1
        if self.world_size == 1:
            return float(loss)
        n = float(n_samples)
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
        flat = torch.cat([g.detach().reshape(-1).to(torch.float64) * n for g in grads]
                         + [torch.tensor([float(loss) * n, n], dtype=torch.float64, device=params[0].device)])
        flat = self._all_reduce(flat)
        total = flat[-1]
        flat = flat / total
        offset = 0
        for p in params:
            p.grad = flat[offset:offset + p.numel()].reshape(p.shape).to(p.dtype).clone()
            offset += p.numel()
        return float(flat[-2])

    def check_identical(self, params: Iterable[torch.Tensor], iteration: int | None = None) -> None:
        """Raise ``RuntimeError`` on every walker if the walkers' ``params`` differ in any bit."""
        flat = torch.cat([p.detach().reshape(-1) for p in params]).cpu().contiguous()
        digest = hashlib.blake2b(flat.view(torch.uint8).numpy().tobytes(), digest_size=8).digest()
        local = torch.zeros(self.world_size, dtype=torch.int64)
        local[self.rank] = int.from_bytes(digest, "little", signed=True)
        sums = self._all_reduce(local).tolist()
        bad = [k for k in range(self.world_size) if sums[k] != sums[0]]
        if bad:
            when = "" if iteration is None else f" at iteration {iteration}"
            raise RuntimeError(f"walker weights diverged{when}: walkers {bad} differ from walker 0 "
                               f"(checksums {sums}); all walkers must run the same code, settings and "
                               "dtype, and a restart must load checkpoints of the same iteration")

    def pool_log_sums(self, log_sums: torch.Tensor) -> torch.Tensor:
        """``log Σ_k exp(log_sums_k)`` elementwise over walkers (pooled reweighting sums)."""
        return torch.logsumexp(self._all_gather(log_sums), dim=0)

    def close(self) -> None:
        """Destroy the process group if this object created it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
        self.owns_group = False


def _rank_path(path: str, rank: int) -> str:
    """``checkpoint.pt`` → ``checkpoint.<rank>.pt`` for walkers > 0 (walker 0 keeps the name)."""
    if rank == 0:
        return path
    root, ext = os.path.splitext(path)
    return f"{root}.{rank}{ext}"


class WalkerDeepVESUpdater(DeepVESUpdater):
    """:class:`DeepVESUpdater` for one of several walkers sharing the bias through ``group``.

    Walker 0 writes what a single walker writes (``colvar``, ``ves.log``, ``fes_bias.dat``,
    ``fes_reweighted.dat`` from the frames of *all* walkers, ``bias.pt``, ``checkpoint.pt``);
    walker k > 0 writes only ``colvar.k`` and ``checkpoint.k.pt``. :meth:`writeFes`,
    :meth:`saveCheckpoint` and :meth:`loadCheckpoint` are collective: call them on every walker.
    Other parameters as :class:`DeepVESUpdater`; the MD seed is the caller's business (give
    each walker its own).

    Examples
    --------
    Under ``torchrun`` (one process per walker, each with its own MD seed):

    >>> group = WalkerGroup()                                   # doctest: +SKIP
    >>> sim.reporters.append(WalkerDeepVESUpdater(nnforce, 300, group, outputs="run"))  # doctest: +SKIP
    """

    def __init__(self, biasForce, temperature, group: WalkerGroup, *, execution: ExecutionOptions | None = None,
                 **kwargs) -> None:
        if not isinstance(group, WalkerGroup):
            raise ValueError(f"group must be a WalkerGroup, got {type(group).__name__}")
        self.group = group
        if group.backend == "nccl":  # the optimizer on this walker's GPU unless told otherwise
            ex = execution or ExecutionOptions()
            execution = dataclasses.replace(ex, device=ex.device or group.device)
        before = [p.detach().clone() for p in biasForce.bias.parameters()]
        super().__init__(biasForce, temperature, reducer=group, execution=execution, **kwargs)
        if group.rank > 0:
            self.snapshotInterval = 0  # walker 0 writes the snapshots
        after = list(biasForce.bias.parameters())
        self._push_pending = not all(torch.equal(a, b.detach()) for a, b in zip(before, after))

    def report(self, simulation, state):
        if self._push_pending:  # the broadcast changed this walker's weights: the Context needs them
            self.force.updateWeights(simulation)
            self._push_pending = False
        super().report(simulation, state)

    # ----------------------------------------------------------------- files of walkers > 0
    def _table_headers(self):
        if self.group.rank == 0:
            return super()._table_headers()
        return {f"colvar.{self.group.rank}": self._colvar_header()}

    def _run_files(self):
        if self.group.rank == 0:
            return super()._run_files()
        return list(self._table_headers()) + [f"checkpoint.{self.group.rank}.pt"]

    def _colvar_name(self) -> str:  # same format as DeepVESUpdater's colvar
        return "colvar" if self.group.rank == 0 else f"colvar.{self.group.rank}"

    def _write_log(self, st):
        if self.group.rank == 0:
            super()._write_log(st)

    def _output_tables(self):
        return super()._output_tables() if self.group.rank == 0 else [(f"colvar.{self.group.rank}", True)]

    def writeFes(self):
        """Collective: walker 0 writes the FES files and ``bias.pt``; reweighting pools all walkers."""
        self.flush()  # no pending (asynchronous) step may run collectives at the same time
        if self.grid is None:  # Monte Carlo target: only the bias is written, nothing to pool
            if self.group.rank == 0:
                super().writeFes()
            return
        local = self._rw_logsum
        if local is None:
            local = torch.full((self.grid.n_points,), -math.inf, dtype=torch.float64)
        pooled = self.group.pool_log_sums(local)
        if self.group.rank == 0:
            saved, self._rw_logsum = self._rw_logsum, (pooled if torch.isfinite(pooled).any() else None)
            try:
                super().writeFes()
            finally:
                self._rw_logsum = saved

    def saveCheckpoint(self, path, simulation):
        """Save this walker's checkpoint (walker k > 0: ``<root>.k<ext>``); collective."""
        self._simulation = self._simulation or simulation
        self.flush()
        self.group.check_identical(self.optimizer.bias.parameters(), self.optimizer.iteration)
        super().saveCheckpoint(_rank_path(path, self.group.rank), simulation)

    def loadCheckpoint(self, path, simulation):
        """Load this walker's checkpoint, then check that all walkers hold the same weights."""
        super().loadCheckpoint(_rank_path(path, self.group.rank), simulation)
        self.group.check_identical(self.optimizer.bias.parameters(), self.optimizer.iteration)


def _walker_entry(rank, fn, world_size, init_method, backend, check_interval, timeout_s, args, tmp):
    group = WalkerGroup(rank, world_size, initMethod=init_method, backend=backend,
                        checkInterval=check_interval, timeout=timeout_s)
    try:
        result = fn(group, *args)
        with open(os.path.join(tmp, f"result.{rank}"), "wb") as fh:  # inter-process hand-over, not a checkpoint
            pickle.dump(result, fh)
    except ValueError as exc:
        with open(os.path.join(tmp, f"error.{rank}"), "w") as fh:
            fh.write(str(exc))
        raise
    finally:
        group.close()


def spawn_walkers(fn: Callable, worldSize: int, args: tuple = (), backend: str = "gloo",
                  checkInterval: int = 10, timeout: float | None = None) -> list:
    """Run ``fn(group, *args)`` in ``worldSize`` new local processes, one walker each.

    ``fn`` must be importable (a module-level function); its return values (picklable) come
    back as a list indexed by rank. Rendezvous through a temporary file store. A ``ValueError``
    in a walker is raised here as ``ValueError("walker k: ...")``; if one walker fails the
    others are stopped. ``timeout`` (s) bounds the whole run (``TimeoutError``) and each
    collective; ``checkInterval`` as :class:`WalkerGroup`.
    """
    import torch.multiprocessing as mp

    world_size, check_interval, timeout_s = worldSize, checkInterval, timeout
    if int(world_size) < 1:
        raise ValueError(f"worldSize must be >= 1, got {world_size}")
    tmp = tempfile.mkdtemp(prefix="nnbias_walkers_")
    coll_timeout = 1800.0 if timeout_s is None else float(timeout_s)
    try:
        ctx = mp.start_processes(
            _walker_entry, nprocs=int(world_size), join=False, start_method="spawn",
            args=(fn, int(world_size), "file://" + os.path.join(tmp, "store"), backend, check_interval,
                  coll_timeout, tuple(args), tmp))
        deadline = None if timeout_s is None else time.monotonic() + float(timeout_s)
        try:
            while not ctx.join(timeout=1.0):
                if deadline is not None and time.monotonic() > deadline:
                    for proc in ctx.processes:
                        proc.terminate()
                    raise TimeoutError(f"walkers did not finish within {timeout_s} s")
        except (mp.ProcessRaisedException, mp.ProcessExitedException) as exc:
            for rank in range(int(world_size)):
                err = os.path.join(tmp, f"error.{rank}")
                if os.path.exists(err):
                    with open(err) as fh:
                        raise ValueError(f"walker {rank}: {fh.read()}") from exc
            raise
        # results of this call's own walker processes, in its private temporary folder (not a checkpoint)
        return [_read_result(os.path.join(tmp, f"result.{r}")) for r in range(int(world_size))]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_result(path: str):
    """The return value a walker process of :func:`spawn_walkers` pickled into its private temporary folder."""
    with open(path, "rb") as fh:
        return pickle.load(fh)
