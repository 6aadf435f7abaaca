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
// reference vectors v_q. Factorized: exp(-|r|^2/4s^2) exp(-|v_q|^2/4s^2) prod_k exp(r_k v_qk / 2s^2),
// and the last factors take only the few distinct |v_qk| of each axis (cubic diamond: one per axis),
// so 4 exp calls serve both directions and all 8 diamond vectors instead of 16. Used only where no
// factor can overflow (else every Gaussian is evaluated directly).
struct GaussianTable {
  int64_t n_refs = 0;
  double inv4s2 = 0;
  const double* refs = nullptr;           // (n_refs, 3)
  std::vector<double> scale;              // exp(-|v_q|^2 / 4 sigma^2)
  std::vector<int> entry_axis;            // the distinct (axis k, |v_k| != 0) of the references ...
  std::vector<double> entry_rate;         // ... with |v_k| / 2 sigma^2
  std::vector<int> index_plus, index_minus;  // (n_refs, 3) into factors: the factor of +r and of -r
  std::vector<double> factors;            // 1, then exp(r_k rate), exp(-r_k rate) per entry
  bool factorized = false;

  GaussianTable(const double* r, int64_t n, double sigma, double rc) : n_refs(n), refs(r) {
    inv4s2 = 0.25 / (sigma * sigma);
    scale.resize(n);
    index_plus.resize(3 * n);
    index_minus.resize(3 * n);
    double max_v2 = 0.0, largest = 0.0;
    for (int64_t q = 0; q < n; ++q) {
      const double* v = refs + 3 * q;
      const double v2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
      max_v2 = std::fmax(max_v2, v2);
      scale[q] = std::exp(-v2 * inv4s2);
      for (int k = 0; k < 3; ++k) {
        const double a = std::fabs(v[k]);
        largest = std::fmax(largest, a);
        index_plus[3 * q + k] = index_minus[3 * q + k] = 0;  // factor 1 for v_k = 0
        if (a == 0.0) continue;
        const double rate = a * 2.0 * inv4s2;
        size_t e = 0;
        while (e < entry_axis.size() && !(entry_axis[e] == k && entry_rate[e] == rate)) ++e;
        if (e == entry_axis.size()) {
          entry_axis.push_back(k);
          entry_rate.push_back(rate);
        }
        const int up = static_cast<int>(1 + 2 * e), down = up + 1;
        index_plus[3 * q + k] = v[k] > 0 ? up : down;   // exp(r_k v_k / 2s^2)
        index_minus[3 * q + k] = v[k] > 0 ? down : up;  // exp(-r_k v_k / 2s^2)
      }
    }
    factors.assign(1 + 2 * entry_axis.size(), 1.0);
    // |r| < rc: every partial product lies within exp(+-(this)), far inside the float64 range
    const double exponent = (rc * rc + max_v2) * inv4s2 + 3.0 * rc * largest * 2.0 * inv4s2;
    factorized = exponent < 600.0;
  }

  // g_plus[q] = exp(-|r - v_q|^2 / 4s^2), g_minus[q] = exp(-|-r - v_q|^2 / 4s^2)
  inline void evaluate(const double* r, double* g_plus, double* g_minus) {
    if (!factorized) {
      for (int64_t q = 0; q < n_refs; ++q) {
        const double* v = refs + 3 * q;
        const double a0 = r[0] - v[0], a1 = r[1] - v[1], a2 = r[2] - v[2];
        const double b0 = r[0] + v[0], b1 = r[1] + v[1], b2 = r[2] + v[2];
        g_plus[q] = std::exp(-(a0 * a0 + a1 * a1 + a2 * a2) * inv4s2);
        g_minus[q] = std::exp(-(b0 * b0 + b1 * b1 + b2 * b2) * inv4s2);
      }
      return;
    }
    const double common = std::exp(-(r[0] * r[0] + r[1] * r[1] + r[2] * r[2]) * inv4s2);
    double* F = factors.data();
    for (size_t e = 0; e < entry_axis.size(); ++e) {
      const double f = std::exp(r[entry_axis[e]] * entry_rate[e]);
      F[1 + 2 * e] = f;
      F[2 + 2 * e] = 1.0 / f;
    }
    const int* ip = index_plus.data();
    const int* im = index_minus.data();
    for (int64_t q = 0; q < n_refs; ++q) {
      const double c = common * scale[q];
      g_plus[q] = c * F[ip[3 * q]] * F[ip[3 * q + 1]] * F[ip[3 * q + 2]];
      g_minus[q] = c * F[im[3 * q]] * F[im[3 * q + 1]] * F[im[3 * q + 2]];
    }
  }
};

// (count (1,), per-atom similarity k (m,), Jacobian d count / d x (m, 3) or (0, 3)) of positions x (m, 3)
// (nm) in an optional box, from the (P, 5) table of verlet_build (its image columns are not used: the
// minimum image is taken here at every call) and references (E, L, 3) (nm, box frame).
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
  int64_t n_in = 0;
  std::vector<double> gh(8 * E), gauss(2 * E * L);
  GaussianTable gaussians(R, E * L, sigma, rc);
  // 1. screen: the pairs inside (lcut, rc) under the minimum image, compacted without a branch
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
    double s[3];
    bx.minimum_image(d, s);
    const double r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
    sep[3 * n_close] = d[0];
    sep[3 * n_close + 1] = d[1];
    sep[3 * n_close + 2] = d[2];
    ends[2 * n_close] = i;
    ends[2 * n_close + 1] = j;
    n_close += (r2 < rc2) & (r2 > lcut2);
  }
  // 2. Gaussians of both directions of every close pair, per-atom sums
  for (int64_t q = 0; q < n_close; ++q) {
    const int32_t i = ends[2 * q], j = ends[2 * q + 1];
    const double* d = sep + 3 * q;
    gaussians.evaluate(d, gauss.data(), gauss.data() + E * L);
    for (int dir = 0; dir < 2; ++dir) {
      for (int64_t e = 0; e < E; ++e) {
        const double* g = gauss.data() + (dir * E + e) * L;
        const double* re = R + 3 * L * e;
        double G = 0.0, Hx = 0.0, Hy = 0.0, Hz = 0.0;
        for (int64_t l = 0; l < L; ++l) {
          G += g[l];
          Hx += g[l] * re[3 * l];
          Hy += g[l] * re[3 * l + 1];
          Hz += g[l] * re[3 * l + 2];
        }
        k_env[e * m + (dir == 0 ? i : j)] += G * inv_l;
        double* o = gh.data() + 4 * (dir * E + e);
        o[0] = G;
        o[1] = Hx;
        o[2] = Hy;
        o[3] = Hz;
      }
    }
    if (jacobian) {
      double* row_out = store + n_in * stride;
      row_out[0] = i;
      row_out[1] = j;
      row_out[2] = d[0];
      row_out[3] = d[1];
      row_out[4] = d[2];
      std::copy(gh.begin(), gh.end(), row_out + 5);
    }
    ++n_in;
  }
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
