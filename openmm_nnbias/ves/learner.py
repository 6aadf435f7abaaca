"""Deep-VES learning in a separate process: the optimizer step without the GIL of the MD loop.

A worker *thread* overlaps the optimizer step with MD, but it competes with the ``Simulation``
loop for the GIL (each small torch op of the step is Python code), so the MD thread waits for it at
every reporter call. :class:`ProcessLearner` runs the optimizer and the tabulation of the new bias
(``ForceBackend.prepare``) in a child Python process started with ``subprocess`` (not
``multiprocessing``, so a user's script without a ``__main__`` guard is never re-imported). The
MD process sends the raw positions of the CV atoms recorded during an iteration (the child computes
and checks the CVs and V of the bias in force, :class:`~openmm_nnbias.ves.samples.SampleEvaluator`:
on this VM every millisecond of Python on the MD thread costs the MD ~3 ms) and receives, one
iteration later, the step's statistics, the samples' record (colvar, reweighting), the force
payload and the new weights. Messages are length-prefixed pickles over the
child's stdin/stdout; the child writes nothing else to that stdout.

The child holds the authoritative optimizer; the parent's copy is kept in step cheaply (weights,
schedule, iteration after every step) and completely (Adam moments, target, KL histogram, FES
average) on request, before FES files, checkpoints and getters.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import subprocess
import sys
from typing import Any

__all__ = ["ProcessLearner"]

_HEADER = struct.Struct("<Q")


class _Array:
    """A CPU tensor as a numpy array on the wire (pickling numpy is ~10x cheaper than torch tensors)."""

    __slots__ = ("array",)

    def __init__(self, tensor):
        self.array = tensor.detach().cpu().numpy()

    def __getstate__(self):
        return self.array

    def __setstate__(self, array):
        self.array = array


def _map(obj, leaf):
    """Apply ``leaf`` to every value of nested dicts/lists/tuples (numeric lists are left whole)."""
    if isinstance(obj, dict):
        return {k: _map(v, leaf) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        if obj and isinstance(obj[0], (int, float)):  # e.g. a table of bias values
            return obj
        return type(obj)(_map(v, leaf) for v in obj)
    return leaf(obj)


def _pack(obj):
    return _map(obj, lambda x: _Array(x) if hasattr(x, "detach") and hasattr(x, "numpy") else x)


def _unpack(obj):
    import torch

    return _map(obj, lambda x: torch.from_numpy(x.array) if isinstance(x, _Array) else x)


def _send(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def _recv(stream):
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError("the Deep-VES learner process ended unexpectedly (see its messages on stderr)")
    (n,) = _HEADER.unpack(head)
    data = stream.read(n)
    if len(data) < n:
        raise EOFError("the Deep-VES learner process ended in the middle of a message")
    return pickle.loads(data)


def validate_cpus(cpus) -> list[int] | None:
    """Sorted CPU ids for a learner's affinity, or None; ValueError unless a non-empty subset of this machine's CPUs."""
    if cpus is None:
        return None
    try:
        ids = sorted({int(c) for c in cpus})
    except (TypeError, ValueError):
        raise ValueError(f"learner CPUs must be a sequence of CPU ids, got {cpus!r}") from None
    known = list(range(os.cpu_count() or 1))
    if not ids or any(c not in known for c in ids):
        raise ValueError(f"learner CPUs must be a non-empty subset of this machine's CPUs {known}, got {ids}")
    return ids


def learn_step(optimizer, backend, samples, force_push: bool, push_interval: int):
    """One optimizer step and, when the new weights are to be pushed, the force payload.

    Push rule: the step updated the network and (``force_push``, or every ``push_interval``-th
    iteration, or the bias just froze). Shared by the thread and the process learners.
    """
    import time

    t0 = time.perf_counter()
    stats = optimizer.step(samples)
    t1 = time.perf_counter()
    push = stats["updated"] and (force_push or (stats["iteration"] + 1) % push_interval == 0
                                 or stats["phase"] == "frozen")
    payload = backend.prepare() if push else None
    stats["t_optimizer_ms"] = (t1 - t0) * 1e3
    stats["t_prepare_ms"] = (time.perf_counter() - t1) * 1e3
    return stats, payload


def light_state(optimizer, updated: bool = True) -> dict[str, Any]:
    """What the MD process needs after every step: schedule, counters and, with ``updated``, the weights."""
    state = {"schedule": optimizer.schedule.state_dict(), "iteration": optimizer.iteration,
             "n_updates": optimizer.n_updates}
    if updated:
        state["bias"] = {k: v.detach().cpu().clone() for k, v in optimizer.bias.state_dict().items()}
    return state


def load_light_state(optimizer, state: dict[str, Any]) -> None:
    if "bias" in state:
        optimizer.bias.load_state_dict(state["bias"])
    optimizer.schedule.load_state_dict(state["schedule"])
    optimizer.iteration = int(state["iteration"])
    optimizer.n_updates = int(state["n_updates"])


class ProcessLearner:
    """Run ``optimizer.step`` and ``backend.prepare`` in a child process.

    Parameters
    ----------
    optimizer : DeepVESOptimizer
        Copied (pickled) into the child at start; the parent's object becomes a mirror.
    backend : ForceBackend
        Its ``prepare()`` runs in the child on the child's copy of the network (the OpenMM force
        itself stays in the parent).
    threads : int
        torch threads of the child (default: the parent's ``torch.get_num_threads()``).
    cpus : sequence of int, optional
        Pin the child to these CPUs (Linux ``sched_setaffinity``); default: inherit the parent's
        affinity. Pin the MD process elsewhere (``taskset -c 0``) so that the two never share a CPU.
    evaluator : SampleEvaluator, optional
        Copied into the child for :meth:`submit_positions` (CVs, checks and V of the bias in force
        computed there instead of on the MD thread).

    Examples
    --------
    >>> learner = ProcessLearner(updater.optimizer, force.backend)    # doctest: +SKIP
    >>> learner.submit(samples, force_push=False, push_interval=1)    # doctest: +SKIP
    >>> stats, payload, _ = learner.result()                          # doctest: +SKIP
    """

    def __init__(self, optimizer, backend, threads: int | None = None, cpus=None, evaluator=None) -> None:
        import torch

        cpus = validate_cpus(cpus)
        if cpus is None and hasattr(os, "sched_getaffinity"):
            mine = os.sched_getaffinity(0)
            if len(mine) == 1 and (os.cpu_count() or 1) > 1:
                import warnings

                warnings.warn(f"this process is pinned to CPU {min(mine)} and the learner process inherits the pin, "
                              "so MD and learning share one CPU; give the learner another one with learnerCPUs "
                              "(--learner-cpus)", RuntimeWarning, stacklevel=3)

        if optimizer.reducer is not None:
            raise ValueError("a process learner cannot share gradients between walkers; "
                             "use asynchronous='thread' (or False) with multiple walkers")
        self.optimizer = optimizer
        self._has_evaluator = evaluator is not None
        child_backend = backend.preparer()  # without OpenMM/TorchScript objects; bias -> the child's network
        buf = io.BytesIO()
        try:
            pickle.dump((optimizer, child_backend, evaluator), buf, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # pragma: no cover - depends on user modules
            raise ValueError(f"the optimizer or force backend cannot be sent to a learner process: {exc}") from exc
        env = dict(os.environ)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self._proc = subprocess.Popen([sys.executable, "-m", "openmm_nnbias.ves._learner_main"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        nthreads = torch.get_num_threads() if threads is None else int(threads)
        _send(self._proc.stdin, ("init", buf.getvalue(), nthreads, cpus))
        self._expect_ok()
        self._busy = False

    def _expect_ok(self):
        reply = _recv(self._proc.stdout)
        if reply[0] == "error":  # the child's exception, same type as in-process, the child's traceback as cause
            cause = RuntimeError(f"Deep-VES learner process traceback:\n{reply[1]}")
            try:
                exc = pickle.loads(reply[2]) if len(reply) > 2 and reply[2] is not None else None
            except Exception:  # pragma: no cover - exception type not importable here
                exc = None
            if isinstance(exc, Exception):
                raise exc from cause
            raise cause
        return reply[1:]

    def submit(self, samples, force_push: bool, push_interval: int) -> None:
        """Start :func:`learn_step` on ``samples`` ((n, n_cv) tensor) in the child."""
        if self._busy:
            raise RuntimeError("the learner is still busy with the previous step; call result() first")
        _send(self._proc.stdin, ("step", _Array(samples), bool(force_push), int(push_interval)))
        self._busy = True

    def submit_positions(self, positions, times, finished: int, force_push: bool, push_interval: int) -> None:
        """Start a step on raw positions ``(n, n_atoms_sub, 3)`` (nm, numpy) recorded at ``times`` (ps).

        The child's evaluator first takes the steps up to iteration ``finished`` (those the MD side has
        finished, i.e. pushed) as the bias in force, then computes the CVs and their record.
        """
        if self._busy:
            raise RuntimeError("the learner is still busy with the previous step; call result() first")
        if not self._has_evaluator:
            raise ValueError("submit_positions needs a ProcessLearner created with an evaluator (SampleEvaluator)")
        _send(self._proc.stdin, ("positions", positions, times, int(finished), bool(force_push), int(push_interval)))
        self._busy = True

    def result(self):
        """Wait for the submitted step; returns ``(stats, payload, record)`` and updates the parent's mirror.

        ``record`` is the :class:`~openmm_nnbias.ves.samples.SampleEvaluator` output of a
        :meth:`submit_positions` step (None after :meth:`submit`).
        """
        self._busy = False
        stats, payload, light, record = _unpack(self._expect_ok())
        load_light_state(self.optimizer, light)
        return stats, payload, record

    def sync(self) -> None:
        """Copy the child's complete optimizer state into the parent's optimizer (learner idle)."""
        if self._busy:
            raise RuntimeError("the learner is busy; call result() first")
        _send(self._proc.stdin, ("state",))
        (state,) = self._expect_ok()
        self.optimizer.load_state_dict(state)

    def close(self) -> None:
        """End the child process (idempotent)."""
        proc, self._proc = getattr(self, "_proc", None), None
        if proc is None:
            return
        try:
            if self._busy:
                _recv(proc.stdout)
            _send(proc.stdin, ("stop",))
            proc.stdin.close()
            proc.wait(timeout=30)
        except Exception:  # pragma: no cover - child already gone
            proc.kill()
        finally:
            if proc.stdout:
                proc.stdout.close()

    def __del__(self):  # pragma: no cover - interpreter shutdown order varies
        try:
            self.close()
        except Exception:
            pass


def _serve() -> None:  # pragma: no cover - runs in the child (exercised by the tests through a pipe)
    import traceback

    inp = sys.stdin.buffer
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed, by Python or C, goes to stderr, never into the message stream
    sys.stdout = sys.stderr
    optimizer = backend = evaluator = None
    while True:
        try:
            msg = _recv(inp)
        except EOFError:
            return
        try:
            if msg[0] == "init":
                import torch

                torch.set_num_threads(msg[2])
                if len(msg) > 3 and msg[3] is not None and hasattr(os, "sched_setaffinity"):
                    os.sched_setaffinity(0, msg[3])
                optimizer, backend, evaluator = pickle.loads(msg[1])
                _send(out, ("ok",))
            elif msg[0] in ("step", "positions"):
                record = None
                if msg[0] == "step":
                    stats, payload = learn_step(optimizer, backend, *_unpack(msg[1:]))
                else:
                    positions, times, finished, force_push, push_interval = msg[1:]
                    evaluator.advance(finished)
                    record = evaluator(positions, times)
                    stats, payload = learn_step(optimizer, backend, record["s"], force_push, push_interval)
                    evaluator.stage(stats["iteration"], optimizer.bias.parameters() if payload is not None else None,
                                    optimizer.frozen, stats["c"])
                # weights travel only with a push (the MD side needs them for the force's network);
                # between pushes the parent's copy is refreshed by sync() (flush, FES, checkpoints)
                _send(out, ("ok",) + _pack((stats, payload, light_state(optimizer, payload is not None), record)))
            elif msg[0] == "state":
                _send(out, ("ok", optimizer.state_dict()))
            elif msg[0] == "stop":
                return
        except Exception as exc:
            try:
                blob = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
                pickle.loads(blob)
            except Exception:
                blob = None
            _send(out, ("error", traceback.format_exc(), blob))
