"""Cost of one 6-D bias evaluation inside OpenMM (openmm-torch TorchForce, CPU platform), with and
without the ``torch.no_grad()`` guard of ``LiveBiasEnergy.forward``.

openmm-torch hands the module positions with ``requires_grad=True`` even when the module returns
its own forces; unguarded, TorchScript plans the graph for autograd. Both variants read the same
shared weights (a random [96, 48, 24] network over the six Ala4 torsions) in two Contexts;
energies and forces are checked equal, then ``getState(energy, forces, bias group)`` is timed in
interleaved rounds (medians, and the median of the per-round ratio).

    python benchmarks/bench_torch_nograd.py [--rounds 10] [--calls 100]
"""

import argparse
import copy
import time

import numpy as np
import torch

from openmm_nnbias.bias.modules import LiveBiasEnergy


class UnguardedLiveBiasEnergy(LiveBiasEnergy):
    """The module as it was before the guard: forward = energy_and_forces, grad mode untouched."""

    def forward(self, positions: torch.Tensor):
        return self.energy_and_forces(positions, None)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--calls", type=int, default=100)
    a = p.parse_args()
    torch.set_num_threads(1)
    import openmm as mm
    from openmm import unit

    from openmm_nnbias.bias import NeuralBias, NeuralBiasForce
    from openmm_nnbias.bias.plugins import import_torch_force
    from openmm_nnbias.cvs import CVSet, Torsion
    from openmm_nnbias.systems import alanine_tetrapeptide

    pep = alanine_tetrapeptide()
    cvs = CVSet([Torsion(pep.torsions[n], n) for n in ("phi1", "psi1", "phi2", "psi2", "phi3", "psi3")])
    bias = NeuralBias.from_cvs(cvs, hidden=(96, 48, 24), seed=1)
    with torch.no_grad():
        for q in bias.parameters():
            q.add_(0.3 * torch.randn_like(q))
    weights = NeuralBiasForce(cvs, bias, backend="torch").backend.weights  # shared weight file
    TorchForce = import_torch_force()
    contexts = {}
    for name, cls in (("unguarded", UnguardedLiveBiasEnergy), ("no_grad", LiveBiasEnergy)):
        system = copy.deepcopy(pep.system)
        force = TorchForce(torch.jit.script(cls(cvs, bias, weights.path)))
        force.setOutputsForces(True)
        force.setForceGroup(31)
        system.addForce(force)
        ctx = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
        ctx.setPositions(pep.positions)
        contexts[name] = ctx
    states = {k: c.getState(getEnergy=True, getForces=True, groups={31}) for k, c in contexts.items()}
    e = [s.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) for s in states.values()]
    f = [s.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer) for s in states.values()]
    assert e[0] == e[1] and np.array_equal(f[0], f[1]), "the two variants must give identical energy and forces"
    times = {k: [] for k in contexts}
    for _ in range(a.rounds):
        for k, c in contexts.items():
            t0 = time.perf_counter()
            for _ in range(a.calls):
                c.getState(getEnergy=True, getForces=True, groups={31})
            times[k].append((time.perf_counter() - t0) / a.calls * 1e6)
    med = {k: float(np.median(v)) for k, v in times.items()}
    ratio = float(np.median(np.array(times["no_grad"]) / np.array(times["unguarded"])))
    print(f"energy {e[0]:.6f} kJ/mol, max |F| {np.abs(f[0]).max():.2f} kJ/mol/nm (identical in both)")
    for k, v in med.items():
        print(f"{k:10s} {v:8.1f} us per bias evaluation (rounds: {', '.join(f'{x:.0f}' for x in times[k])})")
    print(f"RESULT torch_bias_eval_us unguarded={med['unguarded']:.1f} no_grad={med['no_grad']:.1f} "
          f"ratio_no_grad/unguarded={ratio:.3f}")


if __name__ == "__main__":
    main()
