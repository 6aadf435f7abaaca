"""Stage boundaries and crossing evaluations of a staged ``openmm-nnbias diffsim`` run.

With ``stages`` and ``evalReplicas=R`` (``--stages``, ``--eval-replicas R``) the run writes into ``OUT``:

* ``bias_stage{k}.pt`` (TorchScript bias after stage k, k = 1, 2, ...) and
  ``bias_stage{k}.state.pt`` (its network weights, for evaluations after a restart);
* ``eval_{label}.pt`` for ``label`` in ``unbiased``, ``stage1``, ``stage2``, ...: R replicas from
  the same start states (positions from the setup's pool, Maxwell–Boltzmann velocities,
  both drawn with ``seed + 1000``, stored in the file) run forward for the trajectory
  length at the *setup's* temperature (300 K for azobenzene) with the bias of that point;
  holds the first step in the product well per replica and the CVs of every frame;
* ``evaluation.json``: label → crossed, n, fraction ± binomial SE, mean first-crossing time.

Everything is keyed on files, so a restart redoes only what is missing.

Units: K, ps, nm, kJ/mol.
"""

from __future__ import annotations

import copy
import json
import os

__all__ = ["eval_start_states", "evaluate_point", "stage_boundary", "pending_evaluations"]


def eval_start_states(setup, n: int, seed: int):
    """``(R0, V0)`` for ``n`` evaluation replicas: pool positions and Maxwell–Boltzmann velocities at the setup's T."""
    import torch

    from ..diffsim.training import maxwell_boltzmann_velocities

    tr = setup.trainer
    gen = torch.Generator().manual_seed(int(seed) + 1000)
    pool = setup.start_positions
    idx = torch.randint(pool.shape[0], (int(n),), generator=gen)
    R0 = pool[idx].to(tr.device)
    V0 = maxwell_boltzmann_velocities(tr.masses.cpu(), setup.temperature, int(n), generator=gen).to(tr.device)
    return R0, V0


def _bias_fn(setup, state):
    if state is None:
        return None
    net = copy.deepcopy(setup.bias)
    net.load_state_dict(state)
    cvs = setup.trainer.cvs
    return lambda x: net(cvs(x))


def evaluate_point(setup, out: str, label: str, n: int, seed: int, bias_state=None, epoch: int = 0) -> dict:
    """Run (or read) the evaluation ``label`` of the bias after ``epoch`` epochs; returns its summary.

    An existing evaluation of the same label made at another epoch (a stage extended on restart)
    is redone."""
    import torch

    from ..diffsim.stages import crossing_run

    path = os.path.join(out, f"eval_{label}.pt")
    summary_path = os.path.join(out, "evaluation.json")
    summary = json.load(open(summary_path)) if os.path.exists(summary_path) else {}
    if os.path.exists(path) and label in summary and summary[label].get("epoch", epoch) == epoch:
        return summary[label]
    tr = setup.trainer
    R0, V0 = eval_start_states(setup, n, seed)
    dt = tr.simulator.timestep
    res = crossing_run(setup.potential, tr.masses, tr.cvs, setup.product_well, R0, V0, tr.n_steps,
                       temperature=setup.temperature, timestep=dt, friction=tr.simulator.friction,
                       bias=_bias_fn(setup, bias_state), seed=int(seed) + 2000 + len(summary))
    first = res["first_step"]
    times = [float(s) * dt for s in first.tolist() if s >= 0]
    mean_t = sum(times) / len(times) if times else None
    res.update(R0=R0.cpu(), V0=V0.cpu(), label=label, temperature=setup.temperature, timestep=dt,
               n_steps=tr.n_steps)
    from .._io import atomic_write

    atomic_write(path, lambda tmp: torch.save(res, tmp), suffix=".pt")
    summary[label] = {"crossed": res["crossed"], "n": res["n"], "fraction": res["fraction"], "se": res["se"],
                      "mean_first_crossing_ps": mean_t, "temperature_K": setup.temperature,
                      "trajectory_ps": tr.n_steps * dt, "epoch": int(epoch)}

    def write(tmp):
        with open(tmp, "w") as fh:
            json.dump(summary, fh, indent=1)

    atomic_write(summary_path, write, suffix=".json")
    return summary[label]


def stage_boundary(setup, out: str, k: int) -> None:
    """Write ``bias_stage{k}.pt`` and ``bias_stage{k}.state.pt`` from the trainer's current bias."""
    import torch

    from .._io import atomic_write

    state = {"bias": copy.deepcopy(setup.trainer.bias.state_dict()), "epoch": int(setup.trainer.epoch)}
    atomic_write(os.path.join(out, f"bias_stage{k}.state.pt"), lambda tmp: torch.save(state, tmp), suffix=".pt")
    setup.trainer.export(os.path.join(out, f"bias_stage{k}.pt"))


def pending_evaluations(setup, out: str, schedule, n: int, seed: int, report=print) -> None:
    """Stage files and evaluations due at the trainer's current epoch that are not yet on disk."""
    import torch

    epoch = setup.trainer.epoch
    for k, end in enumerate(schedule.boundaries[1:], start=1):
        state_path = os.path.join(out, f"bias_stage{k}.state.pt")
        if end == epoch and _stage_epoch(out, k) != end:
            stage_boundary(setup, out, k)
        if n > 0 and end <= epoch and _stage_epoch(out, k) == end and not _done(out, f"stage{k}", end):
            state = torch.load(state_path, map_location="cpu", weights_only=True)["bias"]
            r = evaluate_point(setup, out, f"stage{k}", n, seed, bias_state=state, epoch=end)
            report(f"after stage {k}: {r['crossed']}/{r['n']} crossed ({r['fraction']:.3f} ± {r['se']:.3f})")


def _stage_epoch(out: str, k: int):
    """Epoch at which ``bias_stage{k}.state.pt`` was written (None: no file)."""
    import torch

    path = os.path.join(out, f"bias_stage{k}.state.pt")
    if not os.path.exists(path):
        return None
    return int(torch.load(path, map_location="cpu", weights_only=True).get("epoch", -1))


def _done(out: str, label: str, epoch: int) -> bool:
    path = os.path.join(out, "evaluation.json")
    return os.path.exists(os.path.join(out, f"eval_{label}.pt")) and os.path.exists(path) \
        and json.load(open(path)).get(label, {}).get("epoch", epoch) == epoch
