"""Azobenzene DiffSim run: log-density plot, mechanism and the OpenMM cross-check (issue 17, items 3–4).

Reads a folder written by ``openmm-nnbias diffsim --system azobenzene --eval-replicas R``:

1. the log-density of the sampled (CNNC, N=N–C) points of every evaluation (unbiased, after each
   stage) → ``OUT/log_density.png`` (and over |CNNC| → ``OUT/log_density_folded.png``), and the
   mechanism of each crossing
   (:func:`openmm_nnbias.systems.azobenzene.analysis.classify_crossings`);
2. unless ``--no-openmm``: the run's potential (``checkpoint["cli"]["potential"]``: SevenNet-0 for runs
   made before ``--potential``, else 7net-0, 7net-l3i5, gfn1-mlp or an AzobenzeneMLP file, whose sha256
   must still match) as an openmm-torch ``TorchForce``
   (:func:`openmm_nnbias.systems.azobenzene.openmm_system.azobenzene_openmm_system`) plus the trained
   ``bias.pt`` (:func:`openmm_nnbias.bias.load_bias`), run with OpenMM's
   ``LangevinMiddleIntegrator`` (CPU platform, 1 thread) from the *same* start positions and
   velocities as the last torch evaluation (independent noise), same T, γ, dt and length;
   crossing = first step inside the product well, checked every step as in the torch run.

Writes ``OUT/check.json``. Usage::

    python benchmarks/azobenzene_diffsim_check.py benchmarks/out/azo_diffsim
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import torch


def binomial(k: int, n: int):
    p = k / n
    return p, math.sqrt(p * (1 - p) / n)


def crossing_time_comparison(first_torch, first_openmm, timestep: float) -> dict:
    """Fractions crossed by the pooled 25/50/75 % first-crossing times (binomial SE, z) and a two-sample
    Kolmogorov–Smirnov test of the first-crossing times (replicas that never cross left out); when both
    engines cross every replica the fraction alone cannot tell them apart, the times can."""
    a = [h for h in first_torch if h >= 0]
    b = [h for h in first_openmm if h >= 0]
    out = {"mean_first_crossing_ps": {}, "by_time": []}
    for name, x in (("torch", a), ("openmm", b)):
        if x:
            m = sum(x) / len(x)
            sd = math.sqrt(sum((v - m) ** 2 for v in x) / max(1, len(x) - 1))
            out["mean_first_crossing_ps"][name] = [m * timestep, sd * timestep / math.sqrt(len(x))]
    pooled = sorted(a + b)
    if pooled:
        for q in (0.25, 0.5, 0.75):
            t = pooled[int(q * (len(pooled) - 1))]
            pt, st = binomial(sum(0 <= h <= t for h in first_torch), len(first_torch))
            pm, sm = binomial(sum(0 <= h <= t for h in first_openmm), len(first_openmm))
            se = math.sqrt(st ** 2 + sm ** 2)
            out["by_time"].append(dict(t_ps=t * timestep, torch=pt, openmm=pm,
                                       z=(pm - pt) / se if se > 0 else 0.0))
    try:
        from scipy.stats import ks_2samp

        if a and b:
            r = ks_2samp(a, b)
            out["ks_statistic"], out["ks_pvalue"] = float(r.statistic), float(r.pvalue)
    except ImportError:
        pass
    return out


def run_potential(ckpt: dict) -> dict:
    """The ``--potential`` record of a run (checkpoints before the option: SevenNet-0)."""
    from openmm_nnbias.recipes.diffsim.azobenzene import AZOBENZENE_LEGACY_POTENTIAL

    return dict(ckpt.get("cli", {}).get("potential") or {"name": AZOBENZENE_LEGACY_POTENTIAL})


def openmm_crossings(out: str, ev: dict, well, n_threads: int = 1) -> dict:
    import openmm
    import openmmtorch  # noqa: F401  (after torch)
    from openmm import unit

    from openmm_nnbias.bias import load_bias
    from openmm_nnbias.systems.azobenzene.openmm_system import azobenzene_openmm_system
    from openmm_nnbias.systems.azobenzene.potential import load_potential
    from openmm_nnbias.recipes.diffsim.azobenzene import azobenzene_cvs

    ckpt = torch.load(os.path.join(out, "checkpoint.pt"), map_location="cpu", weights_only=False)
    friction = float(ckpt["config"]["friction"])
    potential = run_potential(ckpt)
    system = azobenzene_openmm_system(potential)
    system.addForce(load_bias(os.path.join(out, "bias.pt"), forceGroup=1))
    cvs = azobenzene_cvs()
    R0, V0, n_steps = ev["R0"].double(), ev["V0"].double(), int(ev["n_steps"])
    integ = openmm.LangevinMiddleIntegrator(ev["temperature"] * unit.kelvin, friction / unit.picosecond,
                                            ev["timestep"] * unit.picosecond)
    integ.setRandomNumberSeed(12345)
    platform = openmm.Platform.getPlatformByName("CPU")
    ctx = openmm.Context(system, integ, platform, {"Threads": str(n_threads)})
    # energy and forces of OpenMM (SevenNet TorchForce + bias.pt) vs the torch side at the first start state
    ctx.setPositions(R0[0].numpy())
    st = ctx.getState(getEnergy=True, getForces=True)
    e_mm = st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    f_mm = torch.tensor(st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))
    bias = torch.jit.load(os.path.join(out, "bias.pt"))
    U = load_potential(potential, dtype=torch.float64)
    x = R0[0].clone().requires_grad_(True)
    e_t = U(x[None])[0].double() + bias(x).double().reshape(())  # the bias casts to its own dtype
    (g,) = torch.autograd.grad(e_t, x)
    check = {"energy_openmm_kj_per_mol": e_mm, "energy_torch_kj_per_mol": float(e_t.detach()),
             "force_rel_diff": float((f_mm + g).norm() / g.norm())}
    first, t0 = [], time.perf_counter()
    for b in range(R0.shape[0]):
        ctx.setPositions(R0[b].numpy())
        ctx.setVelocities(V0[b].numpy())
        hit = -1
        for step in range(1, n_steps + 1):
            integ.step(1)
            pos = ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
            s = cvs(torch.tensor(pos)[None])[0]
            if bool(well.contains(s)):
                hit = step
                break
        first.append(hit)
    steps_done = sum(n_steps if h < 0 else h for h in first)
    k = sum(h >= 0 for h in first)
    p, se = binomial(k, len(first))
    return dict(check, first_step=first, crossed=k, n=len(first), fraction=p, se=se, potential=potential,
                steps_per_s=steps_done / (time.perf_counter() - t0), friction=friction)


def main(argv=None) -> None:
    from openmm_nnbias.systems.azobenzene.analysis import classify_crossings, plot_log_density
    from openmm_nnbias.diffsim.wells import Well

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--no-openmm", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    labels = [lab for lab in ("unbiased", "stage1", "stage2", "stage3")
              if os.path.exists(os.path.join(args.out, f"eval_{lab}.pt"))]
    evals = {lab: torch.load(os.path.join(args.out, f"eval_{lab}.pt"), weights_only=False) for lab in labels}
    ckpt = torch.load(os.path.join(args.out, "checkpoint.pt"), map_location="cpu", weights_only=False)
    well = Well.from_dict(ckpt["target_well"])
    report = {"evaluations": {}, "mechanism": {}}
    panels = []
    for lab, ev in evals.items():
        report["evaluations"][lab] = {"crossed": ev["crossed"], "n": ev["n"], "fraction": ev["fraction"],
                                      "se": ev["se"], "first_step": ev["first_step"].tolist()}
        report["mechanism"][lab] = classify_crossings(ev["cv"], ev["first_step"])
        panels.append((f"{lab}: {ev['crossed']}/{ev['n']} crossed, {ev['temperature']:g} K", ev["cv"]))
    cis = evals[labels[0]]["cv"][0].mean(0).tolist()
    wells = {"cis (start)": cis, "trans": well.mean.tolist()}
    report["plot"] = plot_log_density(panels, os.path.join(args.out, "log_density.png"), wells=wells)
    report["plot_folded"] = plot_log_density(panels, os.path.join(args.out, "log_density_folded.png"), wells=wells,
                                             folded=True)
    if not args.no_openmm:
        last = labels[-1]
        mm = openmm_crossings(args.out, evals[last], well)
        ev = evals[last]
        p_t, p_m = ev["fraction"], mm["fraction"]
        se = math.sqrt(ev["se"] ** 2 + mm["se"] ** 2)
        mm.update(torch_label=last, torch_fraction=p_t, torch_se=ev["se"],
                  z=(p_m - p_t) / se if se > 0 else (0.0 if p_m == p_t else math.inf),
                  times=crossing_time_comparison(ev["first_step"].tolist(), mm["first_step"], float(ev["timestep"])))
        report["openmm"] = mm
    with open(os.path.join(args.out, "check.json"), "w") as fh:
        json.dump(report, fh, indent=1, default=float)
    print(json.dumps({k: v for k, v in report.items()}, indent=1, default=float))


if __name__ == "__main__":
    main()
