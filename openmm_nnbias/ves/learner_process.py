"""Deep-VES learning in a separate process: the learner step without the GIL of the MD loop.

A worker *thread* overlaps the optimizer step with MD, but it competes with the ``Simulation``
loop for the GIL (each small torch op of the step is Python code), so the MD thread waits for it at
every reporter call. :class:`ProcessLearner` runs a :class:`~openmm_nnbias.ves.learner.LearnerCore`
— the evaluation of the samples with the bias in force, the optimizer step and the tabulation of
the new bias — in a child Python process started with ``subprocess`` (not ``multiprocessing``, so a
user's script without a ``__main__`` guard is never re-imported). The MD process sends the raw
positions of the CV atoms recorded during an iteration and receives, one iteration later, the
:class:`~openmm_nnbias.ves.learner.IterationResult`. Messages are length-prefixed pickles over
the child's stdin/stdout; the child writes nothing else to that stdout.

The child holds the authoritative optimizer; the updater's copy is kept in step cheaply
(schedule and counters after every step, weights with every push) and completely (Adam moments,
target, KL histogram, FES average) by :meth:`ProcessLearner.sync`, before files and getters.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import subprocess
import sys
from typing import Any

from .learner import Learner, LearnerCore, validate_cpus

__all__ = ["ProcessLearner"]

_HEADER = struct.Struct("<Q")


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


def _numpy(t):
    """CPU tensors travel as numpy arrays (pickling numpy is ~10x cheaper than torch tensors)."""
    return t.detach().cpu().numpy() if hasattr(t, "detach") else t


def _torch(a):
    import numpy as np
    import torch

    return torch.from_numpy(a) if isinstance(a, np.ndarray) else a


def _to_wire(result, optimizer) -> tuple:
    rec = result.record
    rec.s, rec.v = _numpy(rec.s), _numpy(rec.v)
    result.payload = _numpy(result.payload)
    light = {"schedule": optimizer.schedule.state_dict(), "iteration": optimizer.iteration,
             "n_updates": optimizer.n_updates}
    if result.payload is not None:  # weights travel with a push; between pushes sync() refreshes them
        light["bias"] = {k: _numpy(v) for k, v in optimizer.bias.state_dict().items()}
    return result, light


def _from_wire(result, light, optimizer):
    rec = result.record
    rec.s, rec.v = _torch(rec.s), _torch(rec.v)
    result.payload = _torch(result.payload)
    if "bias" in light:
        optimizer.bias.load_state_dict({k: _torch(v) for k, v in light["bias"].items()})
    optimizer.schedule.load_state_dict(light["schedule"])
    optimizer.iteration = int(light["iteration"])
    optimizer.n_updates = int(light["n_updates"])
    return result


class ProcessLearner(Learner):
    """Run a :class:`LearnerCore` in a child process.

    Parameters
    ----------
    core : LearnerCore
        Copied (pickled) into the child at start, with ``backend.preparer()`` (no OpenMM or
        TorchScript objects); the parent's ``core.optimizer`` becomes a mirror.
    threads : int
        torch threads of the child (default: the parent's ``torch.get_num_threads()``).
    cpus : sequence of int, optional
        Pin the child to these CPUs (Linux ``sched_setaffinity``); default: inherit the parent's
        affinity. Pin the MD process elsewhere (``taskset -c 0``) so that the two never share a CPU.

    Examples
    --------
    >>> learner = ProcessLearner(LearnerCore(optimizer, force.backend, evaluator, 1))  # doctest: +SKIP
    >>> learner.submit(positions, times, steps, applied=-1, force_push=False)         # doctest: +SKIP
    >>> result = learner.result()                                                      # doctest: +SKIP
    """

    mode = "process"

    def __init__(self, core: LearnerCore, threads: int | None = None, cpus=None) -> None:
        import torch

        super().__init__(core)
        cpus = validate_cpus(cpus)
        if cpus is None and hasattr(os, "sched_getaffinity"):
            mine = os.sched_getaffinity(0)
            if len(mine) == 1 and (os.cpu_count() or 1) > 1:
                import warnings

                warnings.warn(f"this process is pinned to CPU {min(mine)} and the learner process inherits the pin, "
                              "so MD and learning share one CPU; give the learner another one with learnerCPUs",
                              RuntimeWarning, stacklevel=3)
        if core.optimizer.reducer is not None:
            raise ValueError("a process learner cannot share gradients between walkers; "
                             "use the 'thread' or 'sync' execution mode with multiple walkers")
        self.optimizer = core.optimizer
        child = LearnerCore(core.optimizer, core.backend.preparer(), core.evaluator, core.push_interval)
        child.dirty, child.c_in_force = core.dirty, core.c_in_force
        buf = io.BytesIO()
        try:
            pickle.dump(child, buf, protocol=pickle.HIGHEST_PROTOCOL)
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
        self._synced = True

    def _expect_ok(self):
        reply = _recv(self._proc.stdout)
        if reply[0] == "error":  # the child's exception, same type as in-process, the child's traceback as cause
            cause = RuntimeError(f"Deep-VES learner process traceback:\n{reply[1]}")
            try:
                exc = pickle.loads(reply[2]) if reply[2] is not None else None
            except Exception:  # pragma: no cover - exception type not importable here
                exc = None
            if isinstance(exc, Exception):
                raise exc from cause
            raise cause
        return reply[1:]

    def submit(self, positions, times, steps, applied: int, force_push: bool, boxes=None) -> None:
        """Start a step on raw positions ``(n, n_atoms_sub, 3)`` (nm, numpy) recorded at ``times`` (ps)."""
        self._check_idle()
        if self._proc is None:
            raise RuntimeError("the learner process was closed")
        _send(self._proc.stdin, ("run", positions, times, steps, int(applied), bool(force_push), boxes))
        self._pending = True

    def result(self):
        """Wait for the submitted step; updates the parent's optimizer mirror (schedule, counters, pushed weights)."""
        self._pending, self._synced = None, False
        result, light = self._expect_ok()
        return _from_wire(result, light, self.optimizer)

    def sync(self) -> None:
        """Copy the child's complete optimizer state into the parent's optimizer (learner idle)."""
        self._check_idle()
        if self._proc is None or self._synced:
            return
        _send(self._proc.stdin, ("state",))
        (state,) = self._expect_ok()
        self.optimizer.load_state_dict(state)
        self._synced = True

    def close(self) -> None:
        """End the child process (idempotent)."""
        proc, self._proc = getattr(self, "_proc", None), None
        if proc is None:
            return
        try:
            if self._pending is not None:
                _recv(proc.stdout)
                self._pending = None
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


def _reply_error(out, exc: Exception) -> None:  # pragma: no cover - runs in the child
    import traceback

    try:
        blob = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(blob)
    except Exception:
        blob = None
    _send(out, ("error", traceback.format_exc(), blob))


def _serve() -> None:  # pragma: no cover - runs in the child (exercised by the tests through a pipe)
    inp = sys.stdin.buffer
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed, by Python or C, goes to stderr, never into the message stream
    sys.stdout = sys.stderr
    core: Any = None
    while True:
        try:
            msg = _recv(inp)
        except EOFError:
            return
        try:
            if msg[0] == "init":
                import torch

                torch.set_num_threads(msg[2])
                if msg[3] is not None and hasattr(os, "sched_setaffinity"):
                    os.sched_setaffinity(0, msg[3])
                core = pickle.loads(msg[1])
                _send(out, ("ok",))
            elif msg[0] == "run":
                _send(out, ("ok",) + _to_wire(core.run(*msg[1:]), core.optimizer))
            elif msg[0] == "state":
                _send(out, ("ok", core.optimizer.state_dict()))
            elif msg[0] == "stop":
                return
        except Exception as exc:
            _reply_error(out, exc)
