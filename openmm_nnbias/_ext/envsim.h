// The environment-similarity CV of openmm_nnbias/cvs/envsim.py (PLUMED's ENVIRONMENTSIMILARITY with
// MORE_THAN) in one pass over a Verlet list: pair screen, Gaussians, soft maximum over the reference
// environments, rational switch, and the Jacobian of the count. Units: nm; the CV is a number of atoms.
#pragma once

#include <vector>

#include "common.h"

namespace openmm_nnbias {

// x^n for an integer n >= 0 by repeated squaring (a few roundings; std::pow costs ~10x more).
inline double int_power(double x, int64_t n) {
  double out = 1.0;
  while (n > 0) {
    if (n & 1) out *= x;
    x *= x;
    n >>= 1;
  }
  return out;
}

// 1 - s(k / r0) and its derivative in k, s(x) = (1 - x^nn) / (1 - x^mm), with PLUMED's limit for
// |x - 1| < 1e-6 (as the TorchScript CV). For |x - 1| < 0.1, s = A / B with the geometric sums
// A = sum_{i<nn} x^i, B = sum_{i<mm} x^i: no cancellation there, where the quotient form loses
// digits as eps / |x - 1| in s and eps / (x - 1)^2 in ds/dx. Farther from 1 the quotient form is
// the accurate one (the sums' derivative cancels as x -> 0).
inline void envsim_switch(double k, double r0, int64_t nn, int64_t mm, double* value, double* dvalue) {
  const double x = k / r0;
  double s, ds;
  if (std::fabs(x - 1.0) < 1e-6) {
    s = static_cast<double>(nn) / mm;
    ds = static_cast<double>(nn) * (nn - mm) / (2.0 * mm);
  } else if (std::fabs(x - 1.0) < 0.1) {
    // A, dA/dx, B, dB/dx by Horner's scheme
    double A = 0.0, dA = 0.0, B = 0.0, dB = 0.0;
    for (int64_t i = nn - 1; i >= 0; --i) {
      dA = dA * x + A;
      A = A * x + 1.0;
    }
    for (int64_t i = mm - 1; i >= 0; --i) {
      dB = dB * x + B;
      B = B * x + 1.0;
    }
    s = A / B;
    ds = (dA * B - A * dB) / (B * B);
  } else {
    const double xn1 = int_power(x, nn - 1), xm1 = int_power(x, mm - 1);
    const double num = 1.0 - xn1 * x, den = 1.0 - xm1 * x;
    s = num / den;
    ds = (-static_cast<double>(nn) * xn1 * den + static_cast<double>(mm) * xm1 * num) / (den * den);
  }
  *value = 1.0 - s;
  *dvalue = -ds / r0;
}

// (1 - s(k / r0), its derivative in k) of every entry of k (any shape), float64.
inline std::tuple<at::Tensor, at::Tensor> envsim_switch_op(const at::Tensor& k, double r0, int64_t nn, int64_t mm) {
  at::Tensor kk = as_f64(k);
  at::Tensor value = at::empty_like(kk), dvalue = at::empty_like(kk);
  const double* K = kk.data_ptr<double>();
  double* V = value.data_ptr<double>();
  double* D = dvalue.data_ptr<double>();
  for (int64_t a = 0; a < kk.numel(); ++a) envsim_switch(K[a], r0, nn, mm, V + a, D + a);
  return {value, dvalue};
}

// The Gaussians exp(-|r - v_q|^2 / (4 sigma^2)) of one neighbour vector r (and of -r) for all
// reference vectors v_q, as products over the axes of exp(-(r_k - w)^2 / 4 sigma^2) for the few
// distinct values w among the +-v_qk (cubic diamond: w = +-a/4 on every axis), so 6 exp calls serve
// both directions and all 8 diamond vectors instead of 16. Every factor lies in (0, 1].
struct GaussianTable {
  int64_t n_refs = 0;
  double inv4s2 = 0;
  std::vector<double> values[3];          // distinct w of axis k, among v_qk and -v_qk
  std::vector<int> index_plus, index_minus;  // (n_refs, 3): slot of v_qk (for +r) and of -v_qk (for -r)
  std::vector<int> offset;                // slot of (axis k, value u) in factors: offset[k] + u
  std::vector<double> factors;            // exp(-(r_k - w)^2 / 4 sigma^2)

  GaussianTable(const double* refs, int64_t n, double sigma) : n_refs(n) {
    inv4s2 = 0.25 / (sigma * sigma);
    auto slot = [this](int k, double w) {
      size_t u = 0;
      while (u < values[k].size() && values[k][u] != w) ++u;
      if (u == values[k].size()) values[k].push_back(w);
      return static_cast<int>(u);
    };
    index_plus.resize(3 * n);
    index_minus.resize(3 * n);
    for (int64_t q = 0; q < n; ++q)
      for (int k = 0; k < 3; ++k) {
        index_plus[3 * q + k] = slot(k, refs[3 * q + k]);
        index_minus[3 * q + k] = slot(k, -refs[3 * q + k]);  // |-r - v|^2 = |r + v|^2
      }
    offset = {0, static_cast<int>(values[0].size()), static_cast<int>(values[0].size() + values[1].size())};
    for (int64_t q = 0; q < n; ++q)
      for (int k = 0; k < 3; ++k) {
        index_plus[3 * q + k] += offset[k];
        index_minus[3 * q + k] += offset[k];
      }
    factors.resize(values[0].size() + values[1].size() + values[2].size());
  }

  // g_plus[q] = exp(-|r - v_q|^2 / 4s^2), g_minus[q] = exp(-|-r - v_q|^2 / 4s^2)
  inline void evaluate(const double* r, double* g_plus, double* g_minus) {
    double* F = factors.data();
    for (int k = 0; k < 3; ++k)
      for (size_t u = 0; u < values[k].size(); ++u) {
        const double t = r[k] - values[k][u];
        F[offset[k] + u] = std::exp(-t * t * inv4s2);
      }
    const int* ip = index_plus.data();
    const int* im = index_minus.data();
    for (int64_t q = 0; q < n_refs; ++q) {
      g_plus[q] = F[ip[3 * q]] * F[ip[3 * q + 1]] * F[ip[3 * q + 2]];
      g_minus[q] = F[im[3 * q]] * F[im[3 * q + 1]] * F[im[3 * q + 2]];
    }
  }
};

// Pass 2 of envsim_value_jacobian: for every close pair (ends, separation sep) the Gaussian sums
// G_e = sum_l g_el and H_e = sum_l g_el v_l of both directions; adds G_e / L to k_env (E, m) of the
// centre and, with the Jacobian, stores (i, j, d, G, H of both directions) per pair in `store`.
inline void envsim_gaussians(int64_t n_close, const int32_t* ends, const double* sep, GaussianTable& gaussians,
                             const double* R, int64_t E, int64_t L, int64_t m, double* k_env, double* store,
                             bool jacobian) {
  const int64_t stride = 5 + 8 * E;
  const double inv_l = 1.0 / static_cast<double>(L);
  std::vector<double> gh(8 * E), gauss(2 * E * L);
  double* o_all = gh.data();
  double* g_all = gauss.data();
  for (int64_t q = 0; q < n_close; ++q) {
    const int32_t i = ends[2 * q], j = ends[2 * q + 1];
    const double* d = sep + 3 * q;
    gaussians.evaluate(d, g_all, g_all + E * L);
    for (int dir = 0; dir < 2; ++dir) {
      for (int64_t e = 0; e < E; ++e) {
        const double* g = g_all + (dir * E + e) * L;
        const double* re = R + 3 * L * e;
        double G = 0.0, Hx = 0.0, Hy = 0.0, Hz = 0.0;
        for (int64_t l = 0; l < L; ++l) {
          G += g[l];
          Hx += g[l] * re[3 * l];
          Hy += g[l] * re[3 * l + 1];
          Hz += g[l] * re[3 * l + 2];
        }
        k_env[e * m + (dir == 0 ? i : j)] += G * inv_l;
        double* o = o_all + 4 * (dir * E + e);
        o[0] = G;
        o[1] = Hx;
        o[2] = Hy;
        o[3] = Hz;
      }
    }
    if (jacobian) {
      double* row_out = store + q * stride;
      row_out[0] = i;
      row_out[1] = j;
      row_out[2] = d[0];
      row_out[3] = d[1];
      row_out[4] = d[2];
      std::copy(o_all, o_all + 8 * E, row_out + 5);
    }
  }
}

// (count (1,), per-atom similarity k (m,), Jacobian d count / d x (m, 3) or (0, 3)) of positions x (m, 3)
// (nm) in an optional box, from the (P, 5) table of verlet_build (built with the same box or none) and
// references (E, L, 3) (nm, box frame). Pairs are counted under OpenMM's minimum image, as in the
// TorchScript CV, whatever the skin of the list.
inline std::tuple<at::Tensor, at::Tensor, at::Tensor> envsim_value_jacobian(
    const at::Tensor& positions, const c10::optional<at::Tensor>& box, const at::Tensor& pairs,
    const at::Tensor& references, double sigma, double lam, double rc, double lcut, double r0, int64_t nn,
    int64_t mm, bool jacobian) {
  at::Tensor x = check_positions(positions);
  const Box bx = read_box(box);
  TORCH_CHECK_VALUE(!bx.periodic || bx.min_width() > 2.0 * rc,
                    "EnvironmentSimilarity: the neighbour cut-off must be below half the shortest box width; "
                    "enlarge the box");
  at::Tensor table = check_pairs(pairs);
  TORCH_CHECK(references.dim() == 3 && references.size(2) == 3 && references.size(1) > 0,
              "openmm_nnbias: references must be (n_env, n_vectors, 3), got ", references.sizes());
  at::Tensor refs = as_f64(references);
  const int64_t m = x.size(0), n_pairs = table.size(0);
  const int64_t E = refs.size(0), L = refs.size(1);
  const double* X = x.data_ptr<double>();
  const int32_t* P = table.data_ptr<int32_t>();
  const double* R = refs.data_ptr<double>();
  const double inv4s2 = 0.25 / (sigma * sigma), inv_l = 1.0 / static_cast<double>(L);
  const double rc2 = rc * rc, lcut2 = lcut * lcut;

  // per in-range pair: i, j, d (3), then per direction (i sees d, j sees -d) and environment the
  // Gaussian sum G and sum_l g_l r_l (3): 4 E values
  const int64_t stride = 5 + (jacobian ? 8 * E : 0);
  // scratch kept between calls (one allocation per thread); raw pointers in the loops (a thread_local
  // of a shared library is looked up through __tls_get_addr at every access)
  thread_local std::vector<double> store_buffer, k_buffer;
  if (jacobian && store_buffer.size() < static_cast<size_t>(n_pairs * stride))
    store_buffer.resize(static_cast<size_t>(n_pairs * stride));
  k_buffer.assign(static_cast<size_t>(E * m), 0.0);
  double* store = store_buffer.data();
  double* k_env = k_buffer.data();
  GaussianTable gaussians(R, E * L, sigma);
  // 1. screen: the pairs inside (lcut, rc) under the minimum image, compacted without a branch. The
  // separation with the image stored at the list's build is the minimum image whenever it is shorter than
  // half the shortest box width (then no rounding moves it); only longer ones are imaged again here (a
  // pair's minimum image within rc < half width is never farther than half width under another image).
  const double half_width = bx.periodic ? 0.5 * bx.min_width() : INFINITY;
  const double half_width2 = half_width * half_width;
  thread_local std::vector<double> screen_buffer;
  thread_local std::vector<int32_t> index_buffer;
  if (screen_buffer.size() < static_cast<size_t>(3 * n_pairs)) {
    screen_buffer.resize(static_cast<size_t>(3 * n_pairs));
    index_buffer.resize(static_cast<size_t>(2 * n_pairs));
  }
  double* sep = screen_buffer.data();
  int32_t* ends = index_buffer.data();
  int64_t n_close = 0;
  for (int64_t q = 0; q < n_pairs; ++q) {
    const int32_t* row = P + 5 * q;
    const int32_t i = row[0], j = row[1];
    TORCH_CHECK(i >= 0 && i < m && j >= 0 && j < m, "openmm_nnbias: pair index out of range");
    double d[3] = {X[3 * j] - X[3 * i], X[3 * j + 1] - X[3 * i + 1], X[3 * j + 2] - X[3 * i + 2]};
    if (bx.periodic) bx.shift(d, row[2], row[3], row[4]);
    double r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
    if (r2 >= half_width2) {
      d[0] = X[3 * j] - X[3 * i];
      d[1] = X[3 * j + 1] - X[3 * i + 1];
      d[2] = X[3 * j + 2] - X[3 * i + 2];
      double s[3];
      bx.minimum_image(d, s);
      r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
    }
    sep[3 * n_close] = d[0];
    sep[3 * n_close + 1] = d[1];
    sep[3 * n_close + 2] = d[2];
    ends[2 * n_close] = i;
    ends[2 * n_close + 1] = j;
    n_close += (r2 < rc2) & (r2 > lcut2);
  }
  // 2. Gaussians of both directions of every close pair, per-atom sums
  envsim_gaussians(n_close, ends, sep, gaussians, R, E, L, m, k_env, store, jacobian);
  const int64_t n_in = n_close;
  // soft maximum over environments (logsumexp / lam, softmax weights), then the switch
  at::Tensor k_out = at::empty({m}, at::TensorOptions().dtype(at::kDouble));
  double* K = k_out.data_ptr<double>();
  std::vector<double> weight(static_cast<size_t>(E * m), 1.0), dvalue(static_cast<size_t>(m));
  double total = 0.0;
  for (int64_t a = 0; a < m; ++a) {
    double k;
    if (E == 1) {
      k = k_env[a];
    } else {
      double top = -INFINITY;
      for (int64_t e = 0; e < E; ++e) top = std::fmax(top, lam * k_env[e * m + a]);
      double sum = 0.0;
      for (int64_t e = 0; e < E; ++e) {
        weight[e * m + a] = std::exp(lam * k_env[e * m + a] - top);
        sum += weight[e * m + a];
      }
      for (int64_t e = 0; e < E; ++e) weight[e * m + a] /= sum;
      k = (top + std::log(sum)) / lam;
    }
    K[a] = k;
    double v;
    envsim_switch(k, r0, nn, mm, &v, &dvalue[a]);
    total += v;
  }
  at::Tensor value = at::full({1}, total, at::TensorOptions().dtype(at::kDouble));
  if (!jacobian) return {value, k_out, at::zeros({0, 3}, at::TensorOptions().dtype(at::kDouble))};

  // d count / d r for centre c and neighbour vector r: dvalue_c sum_e w_ec (1/L) (H_e - r G_e) / (2 sigma^2)
  at::Tensor jac = at::zeros({m, 3}, at::TensorOptions().dtype(at::kDouble));
  double* J = jac.data_ptr<double>();
  const double scale = 2.0 * inv4s2 * inv_l;  // 1 / (2 sigma^2) / L
  for (int64_t q = 0; q < n_in; ++q) {
    const double* row = store + q * stride;
    const int64_t i = static_cast<int64_t>(row[0]), j = static_cast<int64_t>(row[1]);
    for (int dir = 0; dir < 2; ++dir) {
      const int64_t c = dir == 0 ? i : j, nb = dir == 0 ? j : i;
      const double sign = dir == 0 ? 1.0 : -1.0;
      const double r[3] = {sign * row[2], sign * row[3], sign * row[4]};
      double grad[3] = {0, 0, 0};
      for (int64_t e = 0; e < E; ++e) {
        const double* o = row + 5 + 4 * (dir * E + e);
        const double w = weight[e * m + c];
        for (int t = 0; t < 3; ++t) grad[t] += w * (o[1 + t] - r[t] * o[0]);
      }
      const double f = dvalue[c] * scale;
      for (int t = 0; t < 3; ++t) {
        J[3 * nb + t] += f * grad[t];
        J[3 * c + t] -= f * grad[t];
      }
    }
  }
  return {value, k_out, jac};
}

}  // namespace openmm_nnbias
