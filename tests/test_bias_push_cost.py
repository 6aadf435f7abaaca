"""The cost of an MD step must not grow with the number of weight pushes, for every backend.

A long run pushes new weights thousands of times (the CLI default every 500 steps: 2 000 per ns).
"""

import copy
import math
import time

import cvpack
import openmm as mm
import pytest
import torch
from openmm import unit

from openmm_nnbias.bias import NeuralBias, NeuralBiasForce
from openmm_nnbias.cvs import CVSet, ForceCV, Torsion


def _step_cpu_seconds(integrator, steps=1500, repeats=3):
    """Smallest CPU time (process) of ``repeats`` runs of ``steps`` MD steps."""
    best = math.inf
    for _ in range(repeats):
        t0 = time.process_time()
        integrator.step(steps)
        best = min(best, time.process_time() - t0)
    return best


def _context(system, pep):
    integrator = mm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 2 * unit.femtosecond)
    ctx = mm.Context(system, integrator, mm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    ctx.setPositions(pep.positions)
    integrator.step(200)
    return ctx, integrator


def _cost_ratio(nnforce, pep, pushes, rounds=3):
    """CPU time of MD steps after ``pushes`` pushes of a changed network over that of a twin Context never pushed.

    The two Contexts are timed in alternation after the pushes (best of ``rounds`` each), so that a change of
    the machine's load during the test moves both alike.
    """
    system = copy.deepcopy(pep.system)
    nnforce.addToSystem(system)
    twin = copy.deepcopy(system)  # the same forces, never pushed
    ctx, integrator = _context(system, pep)
    twin_ctx, twin_integrator = _context(twin, pep)  # noqa: F841 (keeps the Context alive)
    with torch.no_grad():
        for i in range(pushes):
            nnforce.bias.layers[-1].bias.fill_(1e-3 * i)  # a changed table every push
            nnforce.updateWeights(ctx)
    pushed, fresh = math.inf, math.inf
    for _ in range(rounds):
        pushed = min(pushed, _step_cpu_seconds(integrator, repeats=1))
        fresh = min(fresh, _step_cpu_seconds(twin_integrator, repeats=1))
    return pushed / fresh


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["table", "cmap", "torch"])
def test_step_cost_does_not_grow_with_weight_pushes(dipeptide, backend):
    """With a global parameter on the table backend's CustomCompoundBondForce, OpenMM's reference kernel
    (used by the CPU platform) re-appended the parameter to its per-step look-up list on every push of a
    changed table: ~2x slower steps after 3000 pushes, 3-4x after a 10 ns run; 1.7x after the 2000
    pushes here."""
    cvs = CVSet([Torsion(dipeptide.torsions["phi"], "phi"), Torsion(dipeptide.torsions["psi"], "psi")])
    bias = NeuralBias.from_cvs(cvs, seed=3, zero_output=False)
    nnforce = NeuralBiasForce(cvs, bias, backend=backend, gridBins=None if backend == "torch" else 8)
    ratio = _cost_ratio(nnforce, dipeptide, 2000)
    assert ratio < 1.3, f"{backend}: {ratio:.2f}x the step cost after 2000 pushes"


@pytest.mark.slow
def test_cvforce_step_cost_does_not_grow_with_weight_pushes(dipeptide):
    """The cvforce backend (OpenMM's reference CustomCVForce kernel updates its tabulated functions on each
    push: ~1.0x measured, with or without a global parameter)."""
    cvs = CVSet([ForceCV(cvpack.Torsion(*dipeptide.torsions[n]), -math.pi, math.pi, name=n) for n in ("phi", "psi")])
    nnforce = NeuralBiasForce(cvs, NeuralBias.from_cvs(cvs, seed=1, zero_output=False), gridBins=8)
    ratio = _cost_ratio(nnforce, dipeptide, 3000)
    assert nnforce.getForce().getNumGlobalParameters() == 0
    assert ratio < 1.3, f"cvforce: {ratio:.2f}x the step cost after 3000 pushes"
