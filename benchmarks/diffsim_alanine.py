"""DiffSim bias for alanine dipeptide C5 → C7ax (300 K, vacuum): training, OpenMM cross-check, speed, memory.

(a) Fraction of replicas reaching the C7ax well within 10 ps, unbiased vs with the trained
    bias, in the torch simulator.
(b) The trained bias exported as TorchScript (``bias.pt``), attached with
    :func:`openmm_nnbias.bias.load_bias` to the same OpenMM System (no constraints, no
    CMMotionRemover) and run with OpenMM's ``LangevinMiddleIntegrator`` (CPU platform, same
    T, γ, dt, the same start positions and velocities): crossing fractions and mean first
    crossing times of both engines with binomial / standard errors. As the trained bias
    crosses every replica, the same comparison is repeated with λ × bias (λ scanned,
    fraction nearest 0.5), where a difference in the dynamics would show in the fraction.
(c) Replica-steps per second of the (biased) torch simulator with 1 and 2 torch threads,
    measured alternately; peak memory (VmHWM − VmRSS before, one fresh process per point)
    of one training epoch vs trajectory length for ``storage="window"`` and ``"full"``.

Crossing is checked every ``--stride`` steps (10 fs) in both engines: first frame with
(φ, ψ) inside the C7ax well (90 % ellipsoid).

Usage (≈ 40 min wall on the shared 2-core machine at load 2–4, 1 torch thread; the report goes to
benchmarks/out/diffsim_alanine.txt)::

    nohup python benchmarks/diffsim_alanine.py > benchmarks/out/diffsim_alanine.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


class Report:
    def __init__(self, path: str):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.fh = open(path, "w")

    def __call__(self, msg: str = "") -> None:
        print(msg, flush=True)
        self.fh.write(msg + "\n")
        self.fh.flush()


def binomial(k: int, n: int):
    p = k / n
    return p, math.sqrt(max(p * (1 - p), 0.0) / n)


def mean_se(values):
    if not values:
        return float("nan"), float("nan")
    if len(values) == 1:
        return float(values[0]), float("nan")
    return statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values))


def start_states(setup, n: int, seed: int):
    """``n`` start positions from the C5 pool and Maxwell–Boltzmann velocities (nm, nm/ps)."""
    from openmm_nnbias.diffsim import maxwell_boltzmann_velocities

    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(setup.start_positions.shape[0], (n,), generator=g)
    V0 = maxwell_boltzmann_velocities(setup.masses, setup.temperature, n, generator=g)
    return setup.start_positions[idx].clone(), V0


def torch_crossings(setup, R0, V0, bias_fn, n_steps: int, stride: int, seed: int, chunk: int = 1000):
    """First crossing step (−1: none) per replica; replicas are dropped from the batch once inside."""
    from openmm_nnbias.diffsim import LangevinSimulator

    tr = setup.trainer
    sim = LangevinSimulator(setup.potential, setup.masses, setup.temperature, tr.simulator.timestep,
                            tr.simulator.friction, generator=torch.Generator().manual_seed(seed))
    B = R0.shape[0]
    first = torch.full((B,), -1, dtype=torch.long)
    alive = torch.arange(B)
    R, V, t = R0, V0, 0
    while t < n_steps and alive.numel():
        n = min(chunk, n_steps - t)
        traj = sim.run(R, V, n, record_every=stride, bias=bias_fn)
        with torch.no_grad():
            inside = setup.product_well.contains(setup.cvs(traj.positions[1:]))  # (F, b)
        hit = inside.any(0)
        first[alive[hit]] = t + stride * (1 + torch.argmax(inside[:, hit].to(torch.int8), dim=0))
        R, V, alive = traj.final_positions[~hit], traj.final_velocities[~hit], alive[~hit]
        t += n
    return first


def openmm_crossings(setup, R0, V0, bias_path, n_steps: int, stride: int, seed: int):
    """Same criterion with OpenMM's LangevinMiddleIntegrator (CPU platform, 1 thread); returns (first, steps/s)."""
    import openmm
    from openmm import unit

    from openmm_nnbias.bias import load_bias
    from openmm_nnbias.recipes.diffsim import alanine_dipeptide_vacuum

    system = alanine_dipeptide_vacuum().system
    if bias_path is not None:
        system.addForce(load_bias(bias_path, forceGroup=1))
    tr = setup.trainer
    integ = openmm.LangevinMiddleIntegrator(setup.temperature * unit.kelvin, tr.simulator.friction / unit.picosecond,
                                           tr.simulator.timestep * unit.picosecond)
    integ.setRandomNumberSeed(seed)
    ctx = openmm.Context(system, integ, openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    first = torch.full((R0.shape[0],), -1, dtype=torch.long)
    total, t0 = 0, time.perf_counter()
    for i in range(R0.shape[0]):
        ctx.setPositions(R0[i].numpy() * unit.nanometer)
        ctx.setVelocities(V0[i].numpy() * unit.nanometer / unit.picosecond)
        for k in range(1, n_steps // stride + 1):
            integ.step(stride)
            total += stride
            pos = ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
            with torch.no_grad():
                if bool(setup.product_well.contains(setup.cvs(torch.from_numpy(pos)))):
                    first[i] = k * stride
                    break
    return first, total / (time.perf_counter() - t0)


def summarize(name: str, first: torch.Tensor, dt_ps: float, report: Report) -> dict:
    k, n = int((first >= 0).sum()), first.numel()
    p, se = binomial(k, n)
    tm, tse = mean_se([float(s) * dt_ps for s in first[first >= 0]])
    report(f"  {name:<34s} crossed {k:3d}/{n:<3d} fraction {p:.3f} ± {se:.3f}   "
           f"mean first-crossing time {tm:.2f} ± {tse:.2f} ps")
    return {"crossed": k, "n": n, "fraction": p, "se": se, "mean_time_ps": tm, "time_se_ps": tse}


def compare(a: dict, b: dict, mm_speed: float, t0: float, report: Report):
    z = (a["fraction"] - b["fraction"]) / math.hypot(a["se"], b["se"]) if a["se"] + b["se"] > 0 else 0.0
    den = math.hypot(a["time_se_ps"], b["time_se_ps"])
    zt = (a["mean_time_ps"] - b["mean_time_ps"]) / den if den > 0 else float("nan")
    ok = abs(z) < 2 and not abs(zt) >= 2
    report(f"  difference torch - OpenMM: fraction {a['fraction'] - b['fraction']:+.3f} (z = {z:+.2f}), "
           f"mean crossing time {a['mean_time_ps'] - b['mean_time_ps']:+.2f} ps (z = {zt:+.2f}) -> "
           f"{'agree' if ok else 'DISAGREE'} within 2 standard errors; OpenMM {mm_speed:.0f} steps/s with "
           f"the TorchForce bias ({time.perf_counter() - t0:.0f} s)")
    return z, zt


def scaled_bias_check(setup, R0, V0, outdir: str, args, report: Report) -> dict:
    """Cross-check at an intermediate crossing fraction: the trained bias times λ (last layer scaled).

    λ is picked from ``args.scales`` as the one whose torch crossing fraction on
    ``args.scan_replicas`` replicas is nearest 0.5; then both engines run ``R0, V0``.
    """
    import copy

    from openmm_nnbias.bias import export_bias

    tr = setup.trainer
    dt, n_steps = tr.simulator.timestep, tr.n_steps
    paths, scan = {}, {}
    Rs, Vs = start_states(setup, args.scan_replicas, seed=args.seed + 2000)
    for lam in args.scales:
        net = copy.deepcopy(tr.bias)
        with torch.no_grad():
            net.layers[-1].weight.mul_(lam)
            net.layers[-1].bias.mul_(lam)
        paths[lam] = os.path.join(outdir, f"bias_scaled_{lam:g}.pt")
        export_bias(copy.deepcopy(tr.cvs).cpu(), net, paths[lam])
        first = torch_crossings(setup, Rs, Vs, torch.jit.load(paths[lam]), n_steps, args.stride, seed=6)
        scan[lam] = float((first >= 0).double().mean())
        report(f"  scan: lambda = {lam:g}: torch crossing fraction {scan[lam]:.3f} ({args.scan_replicas} replicas)")
    lam = min(scan, key=lambda v: abs(scan[v] - 0.5))
    report(f"  lambda = {lam:g}: {R0.shape[0]} replicas in both engines, the file {os.path.basename(paths[lam])} as bias")
    t0 = time.perf_counter()
    c = summarize(f"torch + {lam:g} x trained bias", torch_crossings(setup, R0, V0, torch.jit.load(paths[lam]),
                                                                     n_steps, args.stride, seed=7), dt, report)
    first_mm, mm_speed = openmm_crossings(setup, R0, V0, paths[lam], n_steps, args.stride, seed=8)
    d = summarize(f"OpenMM + {lam:g} x trained bias", first_mm, dt, report)
    z, zt = compare(c, d, mm_speed, t0, report)
    return {"scan": scan, "lambda": lam, "torch": c, "openmm": d, "z_fraction": z, "z_mean_time": zt}


def bias_grid(setup, n: int = 25):
    g = torch.linspace(-math.pi, math.pi, n, dtype=torch.float64)
    P, S = torch.meshgrid(g, g, indexing="ij")
    with torch.no_grad():
        V = setup.bias(torch.stack([P.flatten(), S.flatten()], 1)).reshape(n, n)
        centers = setup.bias(torch.stack([setup.reactant_well.mean, setup.product_well.mean]))
    return V, centers


def speed(setup, bias_fn, replicas, steps: int, repeats: int, report: Report) -> dict:
    from openmm_nnbias.diffsim import LangevinSimulator

    R0, V0 = start_states(setup, max(replicas), seed=99)
    tr = setup.trainer
    res = {(th, B): [] for th in (1, 2) for B in replicas}
    for _ in range(repeats):
        for B in replicas:
            for th in (1, 2):  # side by side, alternating, against machine noise
                torch.set_num_threads(th)
                sim = LangevinSimulator(setup.potential, setup.masses, setup.temperature, tr.simulator.timestep,
                                        tr.simulator.friction, seed=0)
                sim.run(R0[:B], V0[:B], 5, record_every=5, bias=bias_fn)
                t0 = time.perf_counter()
                sim.run(R0[:B], V0[:B], steps, record_every=steps, bias=bias_fn)
                res[(th, B)].append(B * steps / (time.perf_counter() - t0))
    torch.set_num_threads(1)
    out = {}
    report(f"  replicas   1 thread (replica-steps/s, median of {repeats})   2 threads    ratio")
    for B in replicas:
        a, b = statistics.median(res[(1, B)]), statistics.median(res[(2, B)])
        report(f"  {B:8d}   {a:12.0f}  [{min(res[(1, B)]):.0f}-{max(res[(1, B)]):.0f}]"
               f"   {b:12.0f}  [{min(res[(2, B)]):.0f}-{max(res[(2, B)]):.0f}]   {b / a:5.2f}")
        out[B] = {"threads1": res[(1, B)], "threads2": res[(2, B)]}
    return out


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def memory_probe(args) -> None:
    """One fresh process: a training epoch of ``args.probe_ps`` ps; prints one JSON line."""
    import gc

    from openmm_nnbias.recipes.diffsim import alanine_dipeptide_setup

    dt = 0.001
    n_steps = int(round(args.probe_ps / dt))
    setup = alanine_dipeptide_setup(n_replicas=args.probe_replicas, n_steps=200, well_replicas=4,
                                    well_steps=300, storage=args.probe_storage, seed=args.seed)
    tr = setup.trainer
    tr.train_epoch()  # warm-up: every code path once, allocator primed
    tr.n_steps = n_steps
    gc.collect()
    base = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:  # reset the high-water mark VmHWM to the current RSS
        fh.write("5")
    t0 = time.perf_counter()
    r = tr.train_epoch()
    peak = _status_kb("VmHWM")
    n_atoms = setup.masses.shape[0]
    frames = (n_steps + 1) if args.probe_storage == "full" else None
    print("PROBE " + json.dumps({"ps": args.probe_ps, "storage": args.probe_storage, "replicas": args.probe_replicas,
                                 "rss_before_mb": base / 1024, "peak_mb": peak / 1024,
                                 "epoch_peak_minus_before_mb": (peak - base) / 1024,
                                 "full_trajectory_mb": (n_steps + 1) * args.probe_replicas * n_atoms * 3 * 8 / 2**20,
                                 "stored_frames_full": frames, "n_pairs": r.n_pairs,
                                 "epoch_wall_s": time.perf_counter() - t0}), flush=True)


def memory_scan(args, report: Report) -> list:
    rows = []
    for storage in ("window", "full"):
        for ps in args.memory_ps:
            cmd = [sys.executable, os.path.abspath(__file__), "--memory-probe", "--probe-ps", str(ps),
                   "--probe-storage", storage, "--probe-replicas", str(args.probe_replicas), "--seed", str(args.seed)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            row = json.loads([ln for ln in out.splitlines() if ln.startswith("PROBE ")][-1][6:])
            rows.append(row)
            report(f"  {storage:<6s} {ps:5.1f} ps   peak − before {row['epoch_peak_minus_before_mb']:7.1f} MB   "
                   f"(all frames would be {row['full_trajectory_mb']:6.1f} MB; epoch {row['epoch_wall_s']:.0f} s)")
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=6, help="max training epochs")
    ap.add_argument("--stop-success", type=float, default=0.9, help="stop when an epoch's success reaches this")
    ap.add_argument("--train-replicas", type=int, default=32)
    ap.add_argument("--eval-replicas", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--stride", type=int, default=10, help="crossing check every this many steps")
    ap.add_argument("--scales", type=float, nargs="+", default=[0.2, 0.3, 0.4, 0.5],
                    help="bias scale factors scanned for the intermediate-fraction cross-check")
    ap.add_argument("--scan-replicas", type=int, default=16)
    ap.add_argument("--speed-replicas", type=int, nargs="+", default=[1, 8, 32, 128])
    ap.add_argument("--speed-steps", type=int, default=100)
    ap.add_argument("--speed-repeats", type=int, default=3)
    ap.add_argument("--memory-ps", type=float, nargs="+", default=[2.0, 5.0, 10.0, 20.0])
    ap.add_argument("--probe-replicas", type=int, default=8)
    ap.add_argument("--ps", type=float, default=10.0, help="trajectory length (ps)")
    ap.add_argument("--well-replicas", type=int, default=16)
    ap.add_argument("--well-steps", type=int, default=3000)
    ap.add_argument("--quick", action="store_true", help="tiny smoke-test sizes (numbers meaningless)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(HERE, "out", "diffsim_alanine.txt"))
    ap.add_argument("--memory-probe", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--probe-ps", type=float, default=2.0, help=argparse.SUPPRESS)
    ap.add_argument("--probe-storage", default="window", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.__dict__.update(epochs=1, train_replicas=4, eval_replicas=4, ps=0.5, well_replicas=4, well_steps=300,
                             speed_replicas=[1, 4], speed_steps=10, scales=[0.5], scan_replicas=2, speed_repeats=1, memory_ps=[0.2, 0.4],
                             probe_replicas=2)
    torch.set_num_threads(1)
    if args.memory_probe:
        return memory_probe(args)

    from openmm_nnbias.recipes.diffsim import alanine_dipeptide_setup

    report = Report(args.out)
    outdir = os.path.splitext(args.out)[0]
    os.makedirs(outdir, exist_ok=True)
    t_all = time.perf_counter()
    report(f"# DiffSim alanine dipeptide C5 -> C7ax   ({time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__})")
    report(f"# command: python benchmarks/diffsim_alanine.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    t0 = time.perf_counter()
    setup = alanine_dipeptide_setup(n_replicas=args.train_replicas, lr=args.lr, seed=args.seed,
                                    n_steps=int(round(args.ps / 0.001)), well_replicas=args.well_replicas,
                                    well_steps=args.well_steps)
    tr = setup.trainer
    dt, n_steps = tr.simulator.timestep, tr.n_steps
    report(f"setup ({time.perf_counter() - t0:.0f} s): {json.dumps(setup.info)}")
    report(f"C5 well mean {setup.reactant_well.mean.tolist()}, C7ax well mean {setup.product_well.mean.tolist()}, "
           f"C7ax covariance {setup.product_well.covariance.tolist()}")
    R0, V0 = start_states(setup, args.eval_replicas, seed=args.seed + 1000)
    results = {"info": setup.info, "args": vars(args)}

    report(f"\n## (a) success within {args.ps:g} ps, torch simulator")
    t0 = time.perf_counter()
    results["torch_unbiased"] = summarize("unbiased", torch_crossings(setup, R0, V0, None, n_steps, args.stride,
                                                                       seed=1), dt, report)
    report(f"  ({time.perf_counter() - t0:.0f} s)")
    report("training:")
    for _ in range(args.epochs):
        r = tr.train_epoch()
        V, _c = bias_grid(setup)
        report(f"  epoch {r.epoch}: mean loss {r.mean_loss:.4f} rad^2, success {r.success_fraction:.3f} "
               f"(every step, {tr.n_replicas} replicas), active {r.n_active}, pairs {r.n_pairs}, "
               f"updates {r.n_updates}, bias range {float(V.min()):.1f}..{float(V.max()):.1f} kJ/mol, "
               f"{r.wall_time_s:.0f} s")
        torch.save(tr.state_dict(), os.path.join(outdir, "latest.pt"))
        if r.success_fraction >= args.stop_success:
            break
    bias_path = os.path.join(outdir, "bias.pt")
    tr.export(bias_path)
    with open(os.path.join(outdir, "history.json"), "w") as fh:
        json.dump(tr.history, fh, indent=1)
    V, centers = bias_grid(setup)
    kT = setup.kT
    report(f"  trained bias: range {float(V.min()):.1f}..{float(V.max()):.1f} kJ/mol on a 25x25 (phi, psi) grid; "
           f"B(C7ax) - B(C5) = {float(centers[1] - centers[0]):.1f} kJ/mol = {float(centers[1] - centers[0]) / kT:.1f} kT")
    t0 = time.perf_counter()
    results["torch_trained"] = summarize("trained bias", torch_crossings(setup, R0, V0, tr.bias_energy, n_steps,
                                                                          args.stride, seed=2), dt, report)
    report(f"  ({time.perf_counter() - t0:.0f} s)")

    report("\n## (b) trained bias.pt in OpenMM (load_bias, LangevinMiddleIntegrator, CPU platform)")
    t0 = time.perf_counter()
    first_mm, mm_speed = openmm_crossings(setup, R0, V0, bias_path, n_steps, args.stride, seed=3)
    results["openmm_trained"] = summarize("OpenMM LangevinMiddle + bias.pt", first_mm, dt, report)
    results["openmm_trained"]["steps_per_s"] = mm_speed
    a, b = results["torch_trained"], results["openmm_trained"]
    z, zt = compare(a, b, mm_speed, t0, report)
    agree = abs(z) < 2.0 and not abs(zt) >= 2.0
    results["agreement"] = {"z_fraction": z, "z_mean_time": zt, "agree_within_2se": agree}

    report("\n## (b') same check at an intermediate crossing fraction: lambda x trained bias")
    results["scaled"] = sc = scaled_bias_check(setup, R0, V0, outdir, args, report)

    report("\n## (c) speed of the torch simulator (float64, CPU, trained bias on, replica-steps/s)")
    results["speed"] = speed(setup, tr.bias_energy, args.speed_replicas, args.speed_steps, args.speed_repeats, report)
    report("\n## (c) peak memory of one training epoch vs trajectory length "
           f"({args.probe_replicas} replicas, K = {tr.adjoint_steps}, fresh process per point)")
    results["memory"] = memory_scan(args, report)
    with open(os.path.join(outdir, "results.json"), "w") as fh:
        json.dump(results, fh, indent=1, default=str)
    win = [r["epoch_peak_minus_before_mb"] for r in results["memory"] if r["storage"] == "window"]
    full = [r["epoch_peak_minus_before_mb"] for r in results["memory"] if r["storage"] == "full"]
    report(f"\n# total {time.perf_counter() - t_all:.0f} s")
    report(f"RESULT success_unbiased={results['torch_unbiased']['fraction']:.3f} "
           f"success_trained={a['fraction']:.3f}+-{a['se']:.3f} openmm_trained={b['fraction']:.3f}+-{b['se']:.3f} "
           f"agree={agree} z={z:+.2f} z_time={zt:+.2f} "
           f"scaled_lambda={sc['lambda']:g}:torch={sc['torch']['fraction']:.3f}+-{sc['torch']['se']:.3f},"
           f"openmm={sc['openmm']['fraction']:.3f}+-{sc['openmm']['se']:.3f},z={sc['z_fraction']:+.2f} epochs={tr.epoch} "
           f"speed_B32_1thr={statistics.median(results['speed'].get(32, {'threads1': [float('nan')]})['threads1']):.0f} "
           f"mem_window_MB={min(win):.0f}..{max(win):.0f} mem_full_MB={min(full):.0f}..{max(full):.0f}")


if __name__ == "__main__":
    main()
