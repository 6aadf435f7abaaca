"""Cost of the number-of-diamond-atoms CV and of a biased silicon MD step (issue 16, items 3-4).

``PYTHONPATH=. python benchmarks/silicon_envsim_cost.py`` prints process-CPU µs (1 torch thread):
the CV's ``value_and_jacobian`` (scripted) on 64 and 216 atoms (crystal and a 0.03 nm-noise frame),
a batch of 50 frames through ``forward`` (what the updater evaluates per iteration), and one MD step
of the recipes' systems (SW only, SW + bias every step, SW + bias every 2 steps).
"""

import argparse
import time

import torch

torch.set_num_threads(1)

import numpy as np  # noqa: E402

from openmm_nnbias.cvs import EnvironmentSimilarity  # noqa: E402
from openmm_nnbias.systems.silicon import silicon_crystal  # noqa: E402


def _cpu_us(fn, repeats: int) -> float:
    fn()
    t = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - t) / repeats * 1e6


def cv_costs(repeats: int = 200) -> None:
    for n_cells in (2, 3):
        xt = silicon_crystal(n_cells)
        x, box = torch.as_tensor(xt.positions), torch.as_tensor(xt.box)
        noisy = x + 0.03 * torch.randn(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        cv = torch.jit.script(EnvironmentSimilarity(range(len(x))))
        for tag, frame in (("crystal", x), ("noise 0.03 nm", noisy)):
            with torch.no_grad():
                us = _cpu_us(lambda: cv.value_and_jacobian(frame, box), repeats)
            print(f"{len(x):4d} atoms {tag:14s} value+jacobian {us:8.0f} µs  value {float(cv(frame, box)[0]):7.2f}")
        frames = noisy + 0.005 * torch.randn((50,) + x.shape, dtype=torch.float64)
        with torch.no_grad():
            us = _cpu_us(lambda: cv(frames, box.expand(50, 3, 3)), max(3, repeats // 50))
        print(f"{len(x):4d} atoms batch of 50 forward {us:8.0f} µs ({us / 50:.0f} µs/frame)")


def md_costs(steps: int = 300) -> None:
    from openmm_nnbias.runners import build_deepves

    for name in ("silicon-64", "silicon"):
        for mts in (1, 2):
            sim, updater, dt = build_deepves(name, mts=mts)
            sim.reporters.clear()  # the MD and the bias force only
            sim.step(20)
            us = _cpu_us(lambda: sim.step(steps // mts), 1) / (steps // mts * mts)
            print(f"{name:10s} SW + bias, --mts {mts}: {us:6.0f} µs per 2 fs step")
        from openmm_nnbias.systems.silicon.md import silicon_npt_context

        ctx = silicon_npt_context(n_cells=3 if name == "silicon" else 2)
        integ = ctx.getIntegrator()
        integ.step(20)
        print(f"{name:10s} SW only (silicon_npt_context): {_cpu_us(lambda: integ.step(steps), 1) / steps:6.0f} µs per step")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--steps", type=int, default=300)
    a = p.parse_args()
    np.random.seed(0)
    cv_costs(a.repeats)
    md_costs(a.steps)
