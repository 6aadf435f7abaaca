"""The six 1-D marginals of a tetrapeptide Deep-VES bias by Eq. 4, scored against the race's reference.

Usage: ``python benchmarks/ala4_eq4_marginals.py RUN/ves/checkpoint.pt [CHUNKS]``. With the well-tempered target
(γ = 10) the converged bias is V = −(1 − 1/γ) F + const, so F = −V γ/(γ − 1); each marginal is −kT ln ∫ e^(−βF)
over the other five torsions, integrated with CHUNKS × 200 000 uniform points of the 6-torus (importance weights
e^(−βF); the printed ESS says how many count). Scored with ``race4_score.score`` (mean RMSE over the six
marginals after the best shift, F_ref < 20 kJ/mol), against ``benchmarks/out/race4/reference``.
"""
import sys, math, torch, numpy as np
sys.path.insert(0, 'benchmarks')
from race4_score import read_reference, marginals, score, KT
from openmm_nnbias.runners import build_deepves
torch.set_num_threads(1)
ref = read_reference('benchmarks/out/race4/reference/fes_reference.npz')
_, up, _ = build_deepves('alanine-tetrapeptide', platform='CPU', seed=1)
bias = up.optimizer.bias
st = torch.load(sys.argv[1], weights_only=True, map_location='cpu')
bias.load_state_dict(st['optimizer']['bias'])
gamma = 10.0
gen = torch.Generator().manual_seed(0)
S, LW = [], []
with torch.no_grad():
    for _ in range(int(sys.argv[2]) if len(sys.argv) > 2 else 20):
        s = (torch.rand(200000, 6, generator=gen, dtype=torch.float64) * 2 - 1) * math.pi
        v = bias(s).reshape(-1).double()
        S.append(s.numpy()); LW.append((v * gamma / (gamma - 1) / KT).numpy())  # -beta F = beta V gamma/(gamma-1)
S, LW = np.concatenate(S), np.concatenate(LW)
w = np.exp(LW - LW.max()); print('samples', len(LW), 'ESS', round(w.sum() ** 2 / (w ** 2).sum()))
sc = score(marginals(S, LW), ref)
print('Eq. 4 marginals from the bias:', round(sc['rmse_mean'], 2), [round(sc['rmse_' + k], 2) for k in ('phi1', 'psi1', 'phi2', 'psi2', 'phi3', 'psi3')])
