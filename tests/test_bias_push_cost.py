"""The cost of an MD step must not grow with the number of weight pushes, for every backend.

A long run pushes new weights thousands of times (the CLI default every 500 steps: 2 000 per ns).
"""

import copy
import math
import statistics
import time

import cvpack
import openmm as mm
import pytest
import torch
from openmm import unit

from openmm_nnbias.bias import NeuralBias, NeuralBiasForce
from openmm_nnbias.cvs import CVSet, ForceCV, Torsion


def _step_cpu_seconds(integrator, steps=500):
    """CPU time (process) of ``steps`` MD steps."""
    t0 = time.process_time()
    integrator.step(steps)
    return time.process_time() - t0


def _context(system, pep):
    integrator = mm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 2 * unit.femtosecond)
    ctx = mm.Context(system, integrator, mm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    ctx.setPositions(pep.positions)
    integrator.step(200)
    return ctx, integrator


def _cost_ratio(nnforce, pep, pushes, rounds=21, tries=3, limit=1.3):
    """CPU time of MD steps after ``pushes`` pushes of a changed network over that of a twin Context never pushed.

    The System holds the bias force alone, so that its cost is the step's. The two Contexts are timed in
    alternation, ``rounds`` times, and the median of the paired ratios is taken, so that a change of the machine's
    load moves both alike and a slow round does not count. A growth of the cost stays; noise does not: a ratio at
    or above ``limit`` is measured again, up to ``tries`` times, and the smallest is returned.
    """
    system = mm.System()
    for i in range(pep.system.getNumParticles()):
        system.addParticle(pep.system.getParticleMass(i))
    nnforce.addToSystem(system)
    twin = copy.deepcopy(system)  # the same force, never pushed
    ctx, integrator = _context(system, pep)
    twin_ctx, twin_integrator = _context(twin, pep)  # noqa: F841 (keeps the Context alive)
    with torch.no_grad():
        for i in range(pushes):
            nnforce.bias.layers[-1].bias.fill_(1e-3 * i)  # a changed table every push
            nnforce.updateWeights(ctx)
    best = math.inf
    for _ in range(tries):
        ratios = [_step_cpu_seconds(integrator) / _step_cpu_seconds(twin_integrator)
                  for _ in range(rounds)]
        best = min(best, statistics.median(ratios))
        if best < limit:
            break
    return best


def test_table_backend_declares_no_global_parameter(dipeptide):
    """The cause of the step-cost growth below: with a global parameter on the table backend's
    CustomCompoundBondForce, OpenMM's reference kernel (the CPU platform's) re-appended the parameter to its
    per-step look-up list on every push of a changed table."""
    cvs = CVSet([Torsion(dipeptide.torsions["phi"], "phi"), Torsion(dipeptide.torsions["psi"], "psi")])
    nnforce = NeuralBiasForce(cvs, NeuralBias.from_cvs(cvs, seed=3), backend="table", gridBins=8)
    assert nnforce.getForce().getNumGlobalParameters() == 0


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["table", "cmap", "torch"])
def test_step_cost_does_not_grow_with_weight_pushes(dipeptide, backend):
    """The table backend with a global parameter (the test above): its force's step cost 1.44-2.74x after
    3000 pushes, and a 10 ns run's steps 3-4x slower; without it 1.02."""
    cvs = CVSet([Torsion(dipeptide.torsions["phi"], "phi"), Torsion(dipeptide.torsions["psi"], "psi")])
    bias = NeuralBias.from_cvs(cvs, seed=3, zero_output=False)
    nnforce = NeuralBiasForce(cvs, bias, backend=backend, gridBins=None if backend == "torch" else 8)
    ratio = _cost_ratio(nnforce, dipeptide, 3000)
    assert ratio < 1.3, f"{backend}: {ratio:.2f}x the step cost after 3000 pushes"


@pytest.mark.slow
def test_cvforce_step_cost_does_not_grow_with_weight_pushes(dipeptide):
    """The cvforce backend (OpenMM's reference CustomCVForce kernel updates its tabulated functions on each
    push: ~1.0x measured, with or without a global parameter)."""
    cvs = CVSet([ForceCV(cvpack.Torsion(*dipeptide.torsions[n]), -math.pi, math.pi, name=n) for n in ("phi", "psi")])
    nnforce = NeuralBiasForce(cvs, NeuralBias.from_cvs(cvs, seed=1, zero_output=False), gridBins=8)
    ratio = _cost_ratio(nnforce, dipeptide, 3000)
    assert nnforce.getForce().getNumGlobalParameters() == 0
    assert ratio < 1.3, f"cvforce: {ratio:.2f}x the step cost after 3000 pushes"
