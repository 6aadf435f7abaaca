"""Speed and memory of the DiffSim simulator on the CPU: azobenzene on SevenNet-0 or the GFN1 MLP, Müller–Brown as a reference.

Speed: replica-steps per second of the forward Langevin run (``LangevinSimulator.run`` with the
physical potential plus a (32, 32) silu NeuralBias over the CVs, no graph kept) and of the
partial-adjoint backward (one VJP of the total force per replica-step, ``partial_adjoint``), for
several replica counts and both dtypes.

Memory: peak resident memory of one training epoch (``DiffSimTrainer.train_epoch``: forward with
``storage="window"``, Eq. 5 loss, partial adjoint of K steps, mini-batched Adam) at fixed replicas
for several trajectory lengths, each in a fresh process: ``VmHWM − VmRSS`` after the setup (and one
warm-up force evaluation), read from ``/proc/self/status``. The target well is put far away (trans
for azobenzene started in cis, B for Müller–Brown started in A), so that every replica is active.

Usage (1 thread)::

    python benchmarks/bench_diffsim_speed.py --system azobenzene --replicas 1 4 16 --steps 3 \\
        --memory-steps 50 100 200 --memory-replicas 2 --window 20
    python benchmarks/bench_diffsim_speed.py --system mueller-brown --replicas 1 4 16 --steps 200 \\
        --memory-steps 50 100 200 --memory-replicas 16 --window 20

Units: nm, ps, kJ/mol, amu, K; memory in MiB.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from typing import List

import torch

__all__ = ["build", "speed", "epoch_memory", "main"]

SYSTEMS = ("azobenzene", "azobenzene-mlp", "mueller-brown")


def build(system: str, dtype: torch.dtype):
    """``(potential, masses, cvs, start (N, 3), far_cv (D,), timestep_ps, friction_per_ps)`` of a system."""
    from openmm_nnbias.cvs import CVSet, Position

    if system in ("azobenzene", "azobenzene-mlp"):
        from openmm_nnbias.systems.azobenzene.molecule import AZOBENZENE_MASSES, AZOBENZENE_NUMBERS, azobenzene_positions
        from openmm_nnbias.recipes.diffsim.azobenzene import azobenzene_cvs

        if system == "azobenzene":
            from openmm_nnbias.systems.azobenzene.sevennet import SevenNetEnergy

            potential = SevenNetEnergy(AZOBENZENE_NUMBERS, dtype=dtype)
        else:  # the shipped GFN1-xTB MLP (--potential gfn1-mlp)
            from openmm_nnbias.systems.azobenzene.mlp import AzobenzeneMLP

            potential = AzobenzeneMLP.pretrained(dtype=dtype)
        cvs = azobenzene_cvs()
        far = cvs(azobenzene_positions("trans", torch.float64)[None])[0].to(dtype)
        return (potential, torch.tensor(AZOBENZENE_MASSES, dtype=dtype), cvs,
                azobenzene_positions("cis", dtype), far, 0.0005, 1.0)
    if system == "mueller-brown":
        from openmm_nnbias.systems import MuellerBrownEnergy
        from openmm_nnbias.recipes.diffsim import MB_ENERGY_SCALE, MB_MASS, MB_MINIMA

        cvs = CVSet([Position(0, "x", -1.5, 1.2), Position(0, "y", -0.2, 2.0)])
        start = torch.tensor([[MB_MINIMA["A"][0], MB_MINIMA["A"][1], 0.0]], dtype=dtype)
        return (MuellerBrownEnergy(MB_ENERGY_SCALE), torch.tensor([MB_MASS], dtype=dtype), cvs, start,
                torch.tensor(MB_MINIMA["B"], dtype=dtype), 0.001, 0.1)
    raise ValueError(f"system must be one of {SYSTEMS}, got {system!r}")


def _bias(cvs, dtype):
    from openmm_nnbias.bias import NeuralBias

    return NeuralBias.from_cvs(cvs, hidden=(32, 32), activation="silu", dtype=dtype, seed=0, zero_output=False)


def speed(system: str, dtype: torch.dtype, replicas: int, steps: int, adjoint_steps: int) -> dict:
    """Forward and adjoint replica-steps per second (one warm-up step excluded)."""
    from openmm_nnbias.diffsim import LangevinSimulator, make_force_fn, partial_adjoint
    from openmm_nnbias.diffsim.training import maxwell_boltzmann_velocities

    potential, masses, cvs, start, _, dt, gamma = build(system, dtype)
    bias = _bias(cvs, dtype)
    sim = LangevinSimulator(potential, masses, 300.0, dt, gamma, seed=0)
    R0 = start[None].repeat(replicas, 1, 1)
    V0 = maxwell_boltzmann_velocities(masses, 300.0, replicas, generator=torch.Generator().manual_seed(0))
    b = lambda x: bias(cvs(x))  # noqa: E731
    sim.run(R0, V0, 1, bias=b)
    t0 = time.perf_counter()
    traj = sim.run(R0, V0, steps, bias=b)
    t_fwd = time.perf_counter() - t0
    K = min(int(adjoint_steps), steps - 1)
    force = make_force_fn(lambda x: potential(x) + b(x))
    frames = torch.full((replicas,), steps, dtype=torch.long)
    grad = torch.randn(traj.positions.shape[1:], dtype=dtype)
    partial_adjoint(traj.positions, frames, grad, masses, dt, gamma, force, 1)  # warm-up (torch.func)
    t0 = time.perf_counter()
    pairs = partial_adjoint(traj.positions, frames, grad, masses, dt, gamma, force, K)
    t_adj = time.perf_counter() - t0
    return {"system": system, "dtype": str(dtype).replace("torch.", ""), "replicas": replicas,
            "steps": steps, "forward_s": t_fwd, "forward_replica_steps_per_s": replicas * steps / t_fwd,
            "forward_s_per_step": t_fwd / steps, "adjoint_steps": pairs.n_vjp_calls, "adjoint_s": t_adj,
            "adjoint_replica_steps_per_s": replicas * max(pairs.n_vjp_calls, 1) / t_adj}


def _status(key: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def epoch_memory(system: str, dtype: torch.dtype, replicas: int, steps: int, adjoint_steps: int) -> dict:
    """Peak RSS increase (MiB) of one ``train_epoch`` over the RSS after setup; call in a fresh process."""
    from openmm_nnbias.diffsim import DiffSimTrainer, Well

    potential, masses, cvs, start, far, dt, gamma = build(system, dtype)
    D = far.shape[0]
    well = Well(far.to(torch.float64), 1e-4 * torch.eye(D, dtype=torch.float64), [math.inf] * D, 0.1, 4.605)
    tr = DiffSimTrainer(potential, cvs, _bias(cvs, dtype), masses, well, start, temperature=300.0, timestep=dt,
                        friction=gamma, n_steps=steps, n_replicas=replicas, adjoint_steps=adjoint_steps,
                        batch_size=120, random_targets=False)
    tr.simulator.forces(start[None].repeat(replicas, 1, 1), tr.bias_energy)  # warm-up
    base = _status("VmRSS")
    t0 = time.perf_counter()
    r = tr.train_epoch()
    wall = time.perf_counter() - t0
    peak = _status("VmHWM")
    return {"system": system, "dtype": str(dtype).replace("torch.", ""), "replicas": replicas, "steps": steps,
            "adjoint_steps": adjoint_steps, "rss_after_setup_mib": base, "peak_rss_mib": peak,
            "epoch_peak_increase_mib": peak - base, "epoch_s": wall, "n_active": r.n_active, "n_pairs": r.n_pairs}


def _child(args) -> None:
    torch.set_num_threads(1)
    dtype = getattr(torch, args.child_dtype)
    print(json.dumps(epoch_memory(args.system, dtype, args.child_replicas, args.child_steps, args.window)))


def main(argv: List[str] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--system", choices=SYSTEMS, default="azobenzene")
    p.add_argument("--replicas", type=int, nargs="*", default=[1, 4, 16])
    p.add_argument("--dtypes", nargs="*", default=["float32", "float64"], choices=["float32", "float64"])
    p.add_argument("--steps", type=int, default=3, help="timed forward steps per speed point")
    p.add_argument("--memory-steps", type=int, nargs="*", default=[50, 100, 200])
    p.add_argument("--memory-replicas", type=int, default=2)
    p.add_argument("--memory-dtype", default="float64", choices=["float32", "float64"])
    p.add_argument("--window", type=int, default=20, help="adjoint window K")
    p.add_argument("--json", default=None, help="also write the rows here")
    p.add_argument("--child-steps", type=int, help=argparse.SUPPRESS)
    p.add_argument("--child-replicas", type=int, help=argparse.SUPPRESS)
    p.add_argument("--child-dtype", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child_steps is not None:
        _child(args)
        return 0
    torch.set_num_threads(1)
    rows = {"speed": [], "memory": []}
    print(f"# {args.system}, 1 thread, load {os.getloadavg()[0]:.1f}")
    print("| dtype | replicas | forward s/step | forward replica-steps/s | adjoint replica-steps/s |")
    print("|---|---|---|---|---|")
    for name in args.dtypes:
        for B in args.replicas:
            r = speed(args.system, getattr(torch, name), B, args.steps, args.window)
            rows["speed"].append(r)
            print(f"| {r['dtype']} | {B} | {r['forward_s_per_step']:.4g} | {r['forward_replica_steps_per_s']:.4g} | "
                  f"{r['adjoint_replica_steps_per_s']:.4g} |", flush=True)
    print("\n| steps | replicas | K | RSS after setup (MiB) | epoch peak − setup (MiB) | epoch s |")
    print("|---|---|---|---|---|---|")
    for n in args.memory_steps:
        cmd = [sys.executable, os.path.abspath(__file__), "--system", args.system, "--window", str(args.window),
               "--child-steps", str(n), "--child-replicas", str(args.memory_replicas),
               "--child-dtype", args.memory_dtype]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        rows["memory"].append(r)
        print(f"| {n} | {r['replicas']} | {r['adjoint_steps']} | {r['rss_after_setup_mib']:.1f} | "
              f"{r['epoch_peak_increase_mib']:.1f} | {r['epoch_s']:.1f} |", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
