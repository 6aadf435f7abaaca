"""GPU check of openmm_nnbias, one part per call: what is there, then CUDA-vs-CPU figures.

Run by ``benchmarks/gpu_check.sh`` (each part in its own process under ``timeout``, so a crash or
a hang costs one part, not the run); usable alone::

    python benchmarks/gpu_bench.py env        --results DIR [--quick]
    python benchmarks/gpu_bench.py optimizer  --results DIR [--quick]
    python benchmarks/gpu_bench.py diffsim    --results DIR [--quick]
    python benchmarks/gpu_bench.py deepves    --results DIR [--quick]
    python benchmarks/gpu_bench.py push       --results DIR [--quick]
    python benchmarks/gpu_bench.py summary    --results DIR

Each part writes ``DIR/<part>.json`` (``{"figures": {...}, "notes": [...]}``, a figure being a number
or the string ``"not run: <reason>"``) and prints its table; ``summary`` prints every figure of every
part (a part without its JSON: ``not run`` with the reason ``gpu_check.sh`` recorded in
``DIR/<part>.status``). Uses the library only (not ``openmm_nnbias.cli``).

* ``optimizer``: one ``DeepVESOptimizer.step`` (Eq. 10 gradient, Adam, target, KL), median ms, on
  each torch device: the Ala2 grid target (2 torsions, 50×50 grid, 500 samples) and the 6-D Monte
  Carlo target (2000 chains × 10 steps), network [48, 24, 12] (``bench_optimizer_scaling``'s).
* ``diffsim``: replica-steps/s of the biased torch Langevin simulator, alanine dipeptide
  (Amber99SB in torch, float64), 64–1 024 replicas, on each device.
* ``deepves``: on each OpenMM GPU platform that runs (``--quick``: the CPU platform), µs/step of
  unbiased MD and of Deep-VES with learning on (table backend, and torch where openmm-torch runs
  there; stride 500, optimizer on the CUDA device when torch sees one): the speed ratio.
* ``push``: live weight push into a running Context on each GPU platform (``--quick``: CPU) and
  backend: ms per push and |E_context − E_network| after it.

``--quick``: tiny sizes, seconds on a CPU (what ``tests/test_gpu_bench.py`` runs).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform as _platform
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
PARTS = ("env", "tests", "optimizer", "diffsim", "deepves", "push")
ROOT = os.path.dirname(HERE)
#: test files whose cases are parametrized over PLATFORMS / DEVICES (tests/_devices.py)
DEVICE_TEST_FILES = ["test_bias_force.py", "test_bias_mts.py", "test_diffsim_alanine.py", "test_ves_optimizer.py",
                     "test_ves_montecarlo.py", "test_ves_grid.py"]
TORCH_ONLY_TEST_FILES = ["test_ves_optimizer.py", "test_ves_montecarlo.py", "test_ves_grid.py"]
GPU_CASES = "cuda or CUDA or OpenCL or HIP"


from gpu_common import (  # noqa: E402  (benchmarks/ is on sys.path above)
    devices,
    not_run,
    openmm_platforms,
    md_platforms,
    platform_properties,
    LiveFigures,
    torch_force_runs,
    median_ms,
    RESULTS,
)


# ------------------------------------------------------------------------------------------ parts


def part_env(args) -> dict:
    fig = LiveFigures({"python": _platform.python_version(), "torch": torch.__version__,
                       "torch CUDA": torch.version.cuda or "none", "torch threads": torch.get_num_threads(),
                       "GPU": torch.cuda.get_device_name(0) if torch.cuda.is_available() else not_run("no CUDA")})
    notes = []
    try:
        import openmm as mm

        fig["openmm"] = mm.version.version
        names, failures, plugin_failures = openmm_platforms()
        fig["OpenMM platforms loaded"] = " ".join(mm.Platform.getPlatform(i).getName()
                                                  for i in range(mm.Platform.getNumPlatforms()))
        fig["OpenMM platforms that run"] = " ".join(names)
        fig["OpenMM plugin load failures"] = len(plugin_failures)
        notes += [f"platform {k} loads but fails: {v}" for k, v in failures.items()]
        notes += [f"plugin load failure: {f}" for f in plugin_failures]
        for name in names:
            why = torch_force_runs(name)
            fig[f"openmm-torch on {name}"] = "runs" if why is None else not_run(why)
    except ImportError as exc:
        fig["openmm"] = not_run(f"openmm not importable ({exc})")
    return {"figures": fig, "notes": notes}


def _pytest(name: str, files: list, select: str, limit_s: float, results: str) -> tuple:
    """Run pytest on ``files`` (``-k select``) in a subprocess; (its last line, skip reasons)."""
    import subprocess

    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=-ra"]
    cmd += (["-k", select] if select else []) + [os.path.join(ROOT, "tests", f) for f in files]
    log = os.path.join(results, f"pytest_{name}.log")
    try:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=limit_s)
        text, rc = proc.stdout, proc.returncode
    except subprocess.TimeoutExpired as exc:
        text = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        text, rc = text + f"\n(timed out after {limit_s:.0f} s)", "timeout"
    with open(log, "w") as fh:
        fh.write(" ".join(cmd) + "\n" + text)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    last = lines[-1].strip("= ") if lines else "(no output)"
    skips = [ln for ln in lines if ln.startswith(("SKIPPED", "FAILED", "ERROR"))]
    return f"{last} (rc {rc}; log {os.path.basename(log)})", skips[:20]


def part_tests(args) -> dict:
    """The GPU cases of the device-parametrized tests, then (CUDA only) the updater tests, whose
    DeepVESUpdater runs its optimizer on the GPU by default."""
    try:
        import openmm  # noqa: F401

        files = DEVICE_TEST_FILES
    except ImportError:
        files = TORCH_ONLY_TEST_FILES
    fig, notes = LiveFigures(), []
    select = "device" if args.quick else GPU_CASES
    limit = float(os.environ.get("GPU_CHECK_TEST_LIMIT", "75"))
    fig[f"pytest -k '{select}'"], skips = _pytest("gpu_cases", files, select, limit, args.results)
    notes += skips
    if torch.cuda.is_available() and files is DEVICE_TEST_FILES:
        fig["pytest test_ves_updater.py (optimizer on cuda)"], skips = _pytest(
            "updater", ["test_ves_updater.py"], None, float(os.environ.get("GPU_CHECK_UPDATER_LIMIT", "50")),
            args.results)
        notes += skips
    else:
        fig["pytest test_ves_updater.py (optimizer on cuda)"] = not_run(
            "no CUDA" if not torch.cuda.is_available() else "openmm not importable")
    return {"figures": fig, "notes": notes}


def part_optimizer(args) -> dict:
    from bench_optimizer_scaling import KT, make_bias

    from openmm_nnbias.ves import CVGrid, DeepVESOptimizer
    from openmm_nnbias.ves.montecarlo import MonteCarloTarget

    bins, chains, n_samples, repeats = (10, 100, 50, 2) if args.quick else (50, 2000, 500, 15)
    fig = LiveFigures()
    for device in ["cuda", "cpu"]:  # the GPU figures first: they are what this check is for
        for name, n_cv in ((f"Ala2 grid {bins}x{bins}", 2), (f"6-D MC {chains}x10", 6)):
            key = f"optimizer ms/iteration {name} [{device}]"
            if device not in devices():
                fig[key] = not_run("no CUDA")
                continue
            if n_cv == 2:
                grid = CVGrid([-math.pi] * 2, [math.pi] * 2, [bins] * 2, [True] * 2)
                opt = DeepVESOptimizer(make_bias(2), grid, KT, target="well-tempered", tauKL=100, device=device)
            else:
                target = MonteCarloTarget.from_bias(make_bias(6), KT, 10.0, chains=chains, steps=10, burnIn=20)
                opt = DeepVESOptimizer(make_bias(6), None, KT, targetSampler=target, tauKL=100, device=device)
            gen = torch.Generator().manual_seed(0)

            def step(opt=opt, gen=gen, n_cv=n_cv):
                s = (torch.rand(n_samples, n_cv, generator=gen, dtype=torch.float64) - 0.5) * 2 * math.pi
                stats = opt.step(s)
                assert not stats["skipped"], stats

            fig[key] = round(median_ms(step, device, repeats), 3)
    return {"figures": fig, "notes": [f"{n_samples} samples per iteration, median of {repeats}, "
                                      f"CPU with {torch.get_num_threads()} torch threads"]}


def part_diffsim(args) -> dict:
    from diffsim_alanine import start_states

    from openmm_nnbias.diffsim import LangevinSimulator
    from openmm_nnbias.recipes.diffsim import alanine_dipeptide_setup

    replicas, steps, repeats = ((4, 16), 3, 1) if args.quick else ((64, 256, 1024), 30, 3)
    fig = LiveFigures()
    for device in ["cuda", "cpu"]:  # the GPU figures first: they are what this check is for
        if device not in devices():
            fig.update({f"diffsim replica-steps/s Ala2 {b} replicas [{device}]": not_run("no CUDA") for b in replicas})
            continue
        setup = alanine_dipeptide_setup(n_replicas=2, n_steps=10, adjoint_steps=5, well_replicas=2,
                                        well_steps=90, device=device)
        R0, V0 = start_states(setup, max(replicas), seed=99)
        tr = setup.trainer
        for b in replicas:
            sim = LangevinSimulator(setup.potential, setup.masses, setup.temperature, tr.simulator.timestep,
                                    tr.simulator.friction, seed=0)

            def run(b=b, sim=sim):
                sim.run(R0[:b], V0[:b], steps, record_every=steps, bias=tr.bias_energy)

            ms = median_ms(run, device, repeats, warmup=1)
            fig[f"diffsim replica-steps/s Ala2 {b} replicas [{device}]"] = round(b * steps / (ms * 1e-3), 1)
    return {"figures": fig, "notes": [f"{steps} steps per timing, median of {repeats}, float64, "
                                      f"CPU with {torch.get_num_threads()} torch threads"]}


def _ala2_simulation(pep, platform: str, backend=None, stride=500, iterations_warm=2, bins=50):
    import openmm as mm
    from openmm import app, unit

    from openmm_nnbias.bias import NeuralBias, NeuralBiasForce
    from openmm_nnbias.cvs import CVSet, Torsion
    from openmm_nnbias.ves import DeepVESUpdater, WellTempered

    system = copy.deepcopy(pep.system)
    force = updater = None
    if backend is not None:
        cvs = CVSet([Torsion(pep.torsions["phi"], "phi"), Torsion(pep.torsions["psi"], "psi")])
        force = NeuralBiasForce(cvs, NeuralBias.from_cvs(cvs, seed=1), backend=backend)
        force.addToSystem(system)
    integ = mm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.002 * unit.picosecond)
    sim = app.Simulation(pep.topology, system, integ, mm.Platform.getPlatformByName(platform),
                         platform_properties(platform))
    sim.context.setPositions(pep.positions)
    sim.context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    if force is not None:
        updater = DeepVESUpdater(force, 300 * unit.kelvin, target=WellTempered(biasFactor=10, bins=bins),
                                 stride=stride, sampleStride=10)
        sim.reporters.append(updater)
    sim.step(stride * iterations_warm)
    return sim, updater, force


def part_deepves(args) -> dict:
    from openmm_nnbias.systems import alanine_dipeptide

    plats, why = md_platforms(args.quick)
    if not plats:
        return {"figures": {"Deep-VES speed ratio": not_run(why)}, "notes": []}
    stride, iterations, rounds = (50, 2, 1) if args.quick else (500, 20, 3)
    pep = alanine_dipeptide()
    fig, notes = LiveFigures(), []
    for plat in plats:
        backends = ["table"] + (["torch"] if torch_force_runs(plat) is None else [])
        if "torch" not in backends:
            fig[f"Deep-VES speed ratio torch backend [{plat}]"] = not_run(f"openmm-torch: {torch_force_runs(plat)}")
        bins = 10 if args.quick else 50
        runs = {"unbiased": _ala2_simulation(pep, plat, None, stride)}
        runs.update({b: _ala2_simulation(pep, plat, b, stride, bins=bins) for b in backends})
        us = {k: [] for k in runs}
        for _ in range(rounds):
            for name, (sim, _, _) in runs.items():
                t0 = time.perf_counter()
                sim.step(stride * iterations)
                us[name].append((time.perf_counter() - t0) / (stride * iterations) * 1e6)
        med = {k: statistics.median(v) for k, v in us.items()}
        fig[f"unbiased MD us/step [{plat}]"] = round(med["unbiased"], 2)
        for b in backends:
            up = runs[b][1]
            fig[f"Deep-VES us/step {b} backend [{plat}]"] = round(med[b], 2)
            fig[f"Deep-VES speed ratio {b} backend [{plat}]"] = round(med["unbiased"] / med[b], 3)
            h = up.history[2:] or up.history
            notes.append(f"{plat} {b}: optimizer on {up.optimizer.device}, per iteration optimizer "
                         f"{statistics.median(x['t_optimizer_ms'] for x in h):.2f} ms, push "
                         f"{statistics.mean(x['t_push_ms'] for x in h):.2f} ms")
    return {"figures": fig, "notes": [f"Ala2, 2 fs, stride {stride}, {iterations} iterations x {rounds} rounds, "
                                      "mixed precision"] + notes}


def part_push(args) -> dict:
    from openmm import unit

    from openmm_nnbias.systems import alanine_dipeptide

    plats, why = md_platforms(args.quick)
    if not plats:
        return {"figures": {"live weight push": not_run(why)}, "notes": []}
    pep = alanine_dipeptide()
    fig = LiveFigures()
    for plat in plats:
        for backend in ("table", "cmap", "torch"):
            key = f"live push {backend} [{plat}]"
            if backend == "torch" and torch_force_runs(plat) is not None:
                fig[key + " ms"] = not_run(f"openmm-torch: {torch_force_runs(plat)}")
                continue
            sim, _, force = _ala2_simulation(pep, plat, backend, stride=10, iterations_warm=1, bins=10)
            times, errors = [], []
            for k in range(3 if args.quick else 10):
                with torch.no_grad():
                    force.bias.layers[-1].bias.add_(1.0)
                    force.bias.layers[-1].weight.mul_(1.1)
                t0 = time.perf_counter()
                force.updateWeights(sim)
                e = force.getBiasEnergy(sim).value_in_unit(unit.kilojoule_per_mole)
                times.append(1e3 * (time.perf_counter() - t0))
                pos = torch.tensor(sim.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
                with torch.no_grad():
                    expected = float(force.bias(force.cvs(pos.to(torch.float64))))
                errors.append(abs(e - expected))
                sim.step(10)
            fig[key + " ms"] = round(statistics.median(times), 3)
            fig[key + " max |E - E_network| kJ/mol"] = float(f"{max(errors):.3g}")
    return {"figures": fig, "notes": ["push = updateWeights + reading the bias energy back (one force "
                                      "evaluation); table/cmap are tabulated (error = interpolation)"]}


OLD_C10_CHECK = b"_ZN3c104cuda29c10_cuda_check_implementationEiPKcS2_ib"  # line as int (torch 2.9)
NEW_C10_CHECK = b"_ZN3c104cuda29c10_cuda_check_implementationEiPKcS2_jb"  # unsigned int (torch >= 2.10)


def patch_torch_abi(plugin: str, c10: str = None) -> str:
    """Point openmmtorch 1.5's CUDA plugin at the c10 CUDA-check symbol of the installed torch
    (the line argument became unsigned; same register, same length of name): the one symbol that
    plugin misses with torch 2.11. Edits ``plugin`` in place; returns what was done."""
    c10 = c10 or os.path.join(os.path.dirname(torch.__file__), "lib", "libc10_cuda.so")
    if not os.path.exists(c10):
        return f"abi: {c10} missing, plugin left alone"
    with open(c10, "rb") as fh:
        lib = fh.read()
    with open(plugin, "rb") as fh:
        data = fh.read()
    if OLD_C10_CHECK not in data:
        return "abi: plugin does not use the int-line c10 check, left alone"
    if OLD_C10_CHECK in lib or NEW_C10_CHECK not in lib:
        return f"abi: torch {torch.__version__} has the plugin's c10 check symbol, plugin left alone"
    with open(plugin, "wb") as fh:
        fh.write(data.replace(OLD_C10_CHECK, NEW_C10_CHECK))
    return f"abi: patched {os.path.basename(plugin)} for torch {torch.__version__} (c10_cuda_check_implementation)"


def summary(results: str) -> int:
    print("=" * 30 + " gpu_check summary " + "=" * 30)
    setup = os.path.join(results, "setup.txt")
    if os.path.exists(setup):
        for line in open(setup).read().splitlines():
            print(f"{'setup':9s} {line}")
    for part in PARTS:
        path = os.path.join(results, f"{part}.json")
        status = os.path.join(results, f"{part}.status")
        if os.path.exists(path):
            with open(path) as fh:
                data = json.load(fh)
            for key, value in data["figures"].items():
                print(f"{part:9s} {key}: {value}")
            for note in data.get("notes", []):
                print(f"{part:9s}   ({note})")
        if os.path.exists(status):
            print(f"{part:9s} {'stopped' if os.path.exists(path) else 'not run'}: {open(status).read().strip()}")
        elif not os.path.exists(path):
            print(f"{part:9s} not run: part not started")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=PARTS + ("summary", "abi"))
    parser.add_argument("--results", required=True, help="folder of the parts' JSON files")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds on a CPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default torch's)")
    parser.add_argument("--plugin", help="abi: path of libOpenMMTorchCUDA.so to patch")
    args = parser.parse_args(argv)
    if args.part == "summary":
        return summary(args.results)
    if args.part == "abi":
        print(patch_torch_abi(args.plugin))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(args.results, exist_ok=True)
    RESULTS["dir"], RESULTS["part"] = args.results, args.part
    out = globals()[f"part_{args.part}"](args)
    for key, value in out["figures"].items():
        print(f"{key}: {value}")
    for note in out["notes"]:
        print(f"  ({note})")
    with open(os.path.join(args.results, f"{args.part}.json"), "w") as fh:
        json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
