"""DiffSim cis → trans on the GFN1-trained AzobenzeneMLP: train until every replica succeeds (≤ 12 epochs,
`azobenzene_setup` defaults), then one biased 2 ps run of 16 replicas: where each crosses |CNNC| = 90°,
and GFN1-xTB single points on 48 of its frames (errors of the model off its data). Run from the repo root:
``OMP_NUM_THREADS=1 python benchmarks/azobenzene_mlp_diffsim_check.py`` (needs tblite and the fitted model).
"""
import sys, time, torch, numpy as np
torch.set_num_threads(1)
sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
from azobenzene_gfn1_data import single_point
from azobenzene_mlp_fit import dihedral, angle, errors
from openmm_nnbias.systems.azobenzene.molecule import CNNC_DIHEDRAL, NNC_ANGLE
from openmm_nnbias.systems.azobenzene.mlp import AzobenzeneMLP
from openmm_nnbias.diffsim.langevin import LangevinSimulator
from openmm_nnbias.recipes.diffsim.azobenzene import azobenzene_setup
m = AzobenzeneMLP.load("/work/main/benchmarks/out/azo_gfn1/azobenzene_mlp.pt")
s = azobenzene_setup(potential=m)
t = time.time()
for k in range(12):
    r = s.trainer.train_epoch()
    print("epoch", k, round(r.wall_time_s, 1), "loss", round(r.mean_loss, 3), "success", r.success_fraction, flush=True)
    if r.success_fraction == 1.0:
        break
print("training", round(time.time() - t, 1), "s", flush=True)
torch.save(s.bias.state_dict(), "/work/main/benchmarks/out/azo_gfn1/diffsim_bias_on_mlp.pt")
sim = LangevinSimulator(m, s.masses, temperature=300.0, timestep=0.0005, friction=1.0, seed=123)
R0 = s.start_positions[torch.randperm(s.start_positions.shape[0], generator=torch.Generator().manual_seed(1))[:16]]
V0 = torch.randn(R0.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * torch.sqrt(2.494 / s.masses)[:, None]
traj = sim.run(R0, V0, n_steps=4000, record_every=20, bias=s.trainer.bias_energy)
X = traj.positions
with torch.no_grad():
    cn = torch.rad2deg(dihedral(X, CNNC_DIHEDRAL)).abs(); nn = torch.rad2deg(angle(X, NNC_ANGLE))
    e = m(X) - float(m(s.reactant_well.center if hasattr(s.reactant_well, "center") else X[0, 0]))
    b = s.trainer.bias_energy(X.reshape(-1, 24, 3)).reshape(X.shape[:2])
print("biased run: finite", bool(torch.isfinite(X).all()), "final |CNNC| > 120:", int((cn[-1] > 120).sum()), "/16",
      "bias range", round(float(b.min()), 1), round(float(b.max()), 1), "kJ/mol", flush=True)
# where each replica crosses |CNNC| = 90
for i in range(16):
    j = int((cn[:, i] > 90).float().argmax())
    if cn[j, i] > 90:
        print(f"  replica {i}: crosses at frame {j}, NNC {float(nn[j, i]):.0f}°, E(model) rel. frame 0 {float((m(X[j, i]) - m(X[0, i])).detach()):.0f} kJ/mol")
fr = X.reshape(-1, 24, 3)[torch.randperm(X.shape[0] * 16, generator=torch.Generator().manual_seed(3))[:48]]
ref = [single_point(10.0 * f.numpy()) for f in fr]
ok = [i for i, q in enumerate(ref) if q is not None]
print("GFN1 on 48 biased frames:", errors(m, fr[ok], torch.tensor([ref[i][0] for i in ok], dtype=torch.float64),
      torch.tensor(np.array([ref[i][1] for i in ok]), dtype=torch.float64)), flush=True)
