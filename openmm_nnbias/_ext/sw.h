// Stillinger-Weber energy and forces of one species from a Verlet list, in one pass over the pairs
// (and a second over the pairs inside the cut-off). The three-body sum uses the exact per-atom
// identity of openmm_nnbias/systems/_sw_torch.py: with S_i = sum_j g_ij, V_i = sum_j g_ij u_ij and
// T_i = sum_j g_ij u_ij u_ij^T,
//   sum_{j<k} g_ij g_ik (u_ij.u_ik - c0)^2 = 1/2 [|T_i|^2 - 2 c0 |V_i|^2 + c0^2 S_i^2 - (1-c0)^2 sum_j g_ij^2].
// Units: nm, kJ/mol; float64 throughout.
#pragma once

#include <vector>

#include "common.h"

namespace openmm_nnbias {

// x^e for an exponent e that is a small non-negative integer (exact repeated products), else pow.
inline double sw_power(double x, double e, int ie) {
  if (ie < 0) return std::pow(x, e);
  double out = 1.0;
  for (int k = 0; k < ie; ++k) out *= x;
  return out;
}

inline int sw_int_exponent(double e) {
  return (e >= 0 && e <= 32 && e == std::floor(e)) ? static_cast<int>(e) : -1;
}

struct SWPair {
  int32_t i, j;
  double u[3];
  double r, g, dg, dpair;  // cut-off factor g(r), dg/dr, d(pair energy)/dr
};

// (energy (), forces (N, 3)) in kJ/mol and kJ/mol/nm of positions (N, 3) in box (3, 3), nm, from the
// (P, 5) table of verlet_build. Parameters: cut-off a sigma (nm), A eps (kJ/mol), B, sigma (nm), p, q,
// gamma sigma (nm), lambda eps (kJ/mol), cos0.
inline std::tuple<at::Tensor, at::Tensor> sw_energy_forces(
    const at::Tensor& positions, const at::Tensor& box, const at::Tensor& pairs, double cutoff, double A_eps,
    double B, double sigma, double p, double q, double gamma_sigma, double lam_eps, double cos0) {
  at::Tensor x = check_positions(positions);
  const Box bx = read_box(box);
  at::Tensor table = check_pairs(pairs);
  const int64_t n = x.size(0);
  const int64_t n_pairs = table.size(0);
  const double* X = x.data_ptr<double>();
  const int32_t* P = table.data_ptr<int32_t>();
  const double rc2 = cutoff * cutoff;
  const int ip = sw_int_exponent(p), iq = sw_int_exponent(q);
  const double B_sigma_p = B * std::pow(sigma, p), sigma_q = std::pow(sigma, q);

  // per atom: S, V (3), T (6: xx yy zz xy xz yz)
  // scratch kept between calls (one allocation per thread); raw pointers in the loops (a thread_local
  // of a shared library is looked up through __tls_get_addr at every access)
  thread_local std::vector<double> acc_buffer;
  thread_local std::vector<SWPair> pair_buffer;
  acc_buffer.assign(static_cast<size_t>(10 * n), 0.0);
  if (pair_buffer.size() < static_cast<size_t>(n_pairs)) pair_buffer.resize(static_cast<size_t>(n_pairs));
  double* acc = acc_buffer.data();
  SWPair* inside = pair_buffer.data();
  int64_t n_inside = 0;
  // 1. screen: the pairs inside the cut-off, compacted without a branch (sp.u holds d for now)
  for (int64_t k = 0; k < n_pairs; ++k) {
    const int32_t* row = P + 5 * k;
    const int32_t i = row[0], j = row[1];
    TORCH_CHECK(i >= 0 && i < n && j >= 0 && j < n, "openmm_nnbias: pair index out of range");
    const double* xi = X + 3 * i;
    const double* xj = X + 3 * j;
    SWPair& sp = inside[n_inside];
    double* d = sp.u;
    d[0] = xj[0] - xi[0];
    d[1] = xj[1] - xi[1];
    d[2] = xj[2] - xi[2];
    bx.shift(d, row[2], row[3], row[4]);
    sp.r = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];  // r^2 for now
    sp.i = i;
    sp.j = j;
    n_inside += sp.r < rc2;
  }
  // 2. pair terms and the per-atom sums
  double e_pair = 0.0, sum_g2 = 0.0;
  for (int64_t k = 0; k < n_inside; ++k) {
    SWPair& sp = inside[k];
    const int32_t i = sp.i, j = sp.j;
    sp.r = std::sqrt(sp.r);
    const double inv_r = 1.0 / sp.r;
    for (int c = 0; c < 3; ++c) sp.u[c] *= inv_r;
    // exp(k / min(r - rc, -tiny)): exactly 0 at the cut-off, as the TorchScript module
    const double inv_gap = 1.0 / std::fmin(sp.r - cutoff, -1e-12);
    const double dgap = inv_gap * inv_gap;
    const double e_cut = std::exp(sigma * inv_gap);
    sp.g = std::exp(gamma_sigma * inv_gap);
    sp.dg = -gamma_sigma * dgap * sp.g;
    const double rep = B_sigma_p * sw_power(inv_r, p, ip);
    const double att = sigma_q * sw_power(inv_r, q, iq);
    const double radial = rep - att;
    e_pair += A_eps * radial * e_cut;
    sp.dpair = A_eps * e_cut * ((q * att - p * rep) * inv_r - radial * sigma * dgap);
    sum_g2 += sp.g * sp.g;
    const double g = sp.g, ux = sp.u[0], uy = sp.u[1], uz = sp.u[2];
    const double t[6] = {g * ux * ux, g * uy * uy, g * uz * uz, g * ux * uy, g * ux * uz, g * uy * uz};
    double* ai = acc + 10 * i;
    double* aj = acc + 10 * j;
    ai[0] += g;
    aj[0] += g;
    ai[1] += g * ux;
    ai[2] += g * uy;
    ai[3] += g * uz;
    aj[1] -= g * ux;
    aj[2] -= g * uy;
    aj[3] -= g * uz;
    for (int c = 0; c < 6; ++c) {
      ai[4 + c] += t[c];
      aj[4 + c] += t[c];
    }
  }
  // E3 = lam eps [1/2 sum_i (|T_i|^2 - 2 c0 |V_i|^2 + c0^2 S_i^2) - (1 - c0)^2 sum_pairs g^2]
  const double c0 = cos0;
  double e3 = 0.0;
  for (int64_t a = 0; a < n; ++a) {
    const double* s = acc + 10 * a;
    const double tt = s[4] * s[4] + s[5] * s[5] + s[6] * s[6] + 2.0 * (s[7] * s[7] + s[8] * s[8] + s[9] * s[9]);
    const double vv = s[1] * s[1] + s[2] * s[2] + s[3] * s[3];
    e3 += tt - 2.0 * c0 * vv + c0 * c0 * s[0] * s[0];
  }
  const double diag = lam_eps * (1.0 - c0) * (1.0 - c0);
  const double energy = e_pair + 0.5 * lam_eps * e3 - diag * sum_g2;

  at::Tensor forces = at::zeros({n, 3}, at::TensorOptions().dtype(at::kDouble));
  double* F = forces.data_ptr<double>();
  const double wS = lam_eps * c0 * c0, wV = -2.0 * lam_eps * c0, wT = lam_eps;
  for (int64_t q = 0; q < n_inside; ++q) {
    const SWPair& sp = inside[q];
    const double* si = acc + 10 * sp.i;
    const double* sj = acc + 10 * sp.j;
    // dE/d(the pair's g, g u, g u u^T): atom i's sums plus atom j's (which sees -u)
    const double aS = wS * (si[0] + sj[0]);
    const double aV[3] = {wV * (si[1] - sj[1]), wV * (si[2] - sj[2]), wV * (si[3] - sj[3])};
    double aT[6];
    for (int c = 0; c < 6; ++c) aT[c] = wT * (si[4 + c] + sj[4 + c]);
    const double ux = sp.u[0], uy = sp.u[1], uz = sp.u[2];
    const double Tu[3] = {aT[0] * ux + aT[3] * uy + aT[4] * uz, aT[3] * ux + aT[1] * uy + aT[5] * uz,
                          aT[4] * ux + aT[5] * uy + aT[2] * uz};
    const double uTu = ux * Tu[0] + uy * Tu[1] + uz * Tu[2];
    const double f_u = aS + aV[0] * ux + aV[1] * uy + aV[2] * uz + uTu;  // dE/dg
    const double grad_u[3] = {aV[0] + 2.0 * Tu[0], aV[1] + 2.0 * Tu[1], aV[2] + 2.0 * Tu[2]};
    const double gu = grad_u[0] * ux + grad_u[1] * uy + grad_u[2] * uz;
    const double radial = sp.dpair + sp.dg * (f_u - 2.0 * diag * sp.g);
    const double tang = sp.g / sp.r;
    double* fi = F + 3 * sp.i;
    double* fj = F + 3 * sp.j;
    for (int c = 0; c < 3; ++c) {
      // dE/d(x_j - x_i): the force on i is +, on j is -
      const double de = radial * sp.u[c] + tang * (grad_u[c] - gu * sp.u[c]);
      fi[c] += de;
      fj[c] -= de;
    }
  }
  return {at::scalar_tensor(energy, at::TensorOptions().dtype(at::kDouble)), forces};
}

}  // namespace openmm_nnbias
