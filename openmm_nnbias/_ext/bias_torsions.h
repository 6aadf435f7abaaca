// A neural bias over torsion CVs in one pass: the energy and atom forces of
// openmm_nnbias/bias/modules.py LiveBiasEnergy.energy_and_forces when every CV is a Torsion.
//   torsions theta_k and d theta_k / dx (Blondel & Karplus, as cvs/base.py torsion_value_and_jacobian),
//   features (cos z_1..cos z_K, sin z_1..sin z_K) with z_k = scale_k theta_k (CVFeatures, all periodic),
//   MLP forward (activation on the hidden layers, linear output), hand-written backward pass,
//   dV/dtheta_k = scale_k (cos z_k dV/dsin_k - sin z_k dV/dcos_k), F = -sum_k dV/dtheta_k d theta_k / dx.
// With a box the three bond vectors take the minimum image of cvs/base.py minimum_image (c, then b,
// then a, each d - v round(d_i / v_i), round half to even). Units: nm, rad, kJ/mol; float64 throughout.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "common.h"

namespace openmm_nnbias {

enum class BiasActivation { relu, elu, tanh, softplus, silu };

inline BiasActivation bias_activation(const std::string& name) {
  if (name == "relu") return BiasActivation::relu;
  if (name == "elu") return BiasActivation::elu;
  if (name == "tanh") return BiasActivation::tanh;
  if (name == "softplus") return BiasActivation::softplus;
  if (name == "silu") return BiasActivation::silu;
  TORCH_CHECK_VALUE(false, "openmm_nnbias: bias_torsions: activation must be one of relu, elu, tanh, softplus, "
                    "silu, got '", name, "'");
}

// a = act(z) and d act / dz, as network.py _activate and _activate_derivative compute them
inline void bias_activate(BiasActivation act, double z, double* a, double* da) {
  switch (act) {
    case BiasActivation::relu:
      *a = z > 0.0 ? z : 0.0;
      *da = *a > 0.0 ? 1.0 : 0.0;  // torch.sign(a)
      return;
    case BiasActivation::elu:
      *a = z > 0.0 ? z : std::expm1(z);
      *da = z > 0.0 ? 1.0 : *a + 1.0;
      return;
    case BiasActivation::tanh:
      *a = std::tanh(z);
      *da = 1.0 - *a * *a;
      return;
    case BiasActivation::softplus:  // torch's beta = 1, threshold = 20
      *a = z > 20.0 ? z : std::log1p(std::exp(z));
      *da = 1.0 / (1.0 + std::exp(-z));
      return;
    case BiasActivation::silu: {
      const double sig = 1.0 / (1.0 + std::exp(-z));
      *a = z * sig;
      *da = sig * (1.0 + z * (1.0 - sig));
      return;
    }
  }
}

// d - v round(d_axis / v_axis) for v = c, b, a (cvs/base.py minimum_image)
inline void bias_minimum_image(double* d, const double* box) {
  for (int row = 2; row >= 0; --row) {
    const double* v = box + 3 * row;
    const double r = std::nearbyint(d[row] / v[row]);
    d[0] -= v[0] * r;
    d[1] -= v[1] * r;
    d[2] -= v[2] * r;
  }
}

inline double dot3(const double* u, const double* v) { return u[0] * v[0] + u[1] * v[1] + u[2] * v[2]; }

inline void cross3(const double* u, const double* v, double* out) {
  out[0] = u[1] * v[2] - u[2] * v[1];
  out[1] = u[2] * v[0] - u[0] * v[2];
  out[2] = u[0] * v[1] - u[1] * v[0];
}

// z = b + W h for W (n_out, n_in) row-major; four rows at a time (independent sums, each in input order)
inline void bias_affine(const double* W, const double* b, const double* h, int64_t n_in, int64_t n_out, double* z) {
  int64_t o = 0;
  for (; o + 4 <= n_out; o += 4) {
    const double* w0 = W + o * n_in;
    const double* w1 = w0 + n_in;
    const double* w2 = w1 + n_in;
    const double* w3 = w2 + n_in;
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    for (int64_t i = 0; i < n_in; ++i) {
      s0 += w0[i] * h[i];
      s1 += w1[i] * h[i];
      s2 += w2[i] * h[i];
      s3 += w3[i] * h[i];
    }
    z[o] = b[o] + s0;
    z[o + 1] = b[o + 1] + s1;
    z[o + 2] = b[o + 2] + s2;
    z[o + 3] = b[o + 3] + s3;
  }
  for (; o < n_out; ++o) {
    const double* w = W + o * n_in;
    double s = 0.0;
    for (int64_t i = 0; i < n_in; ++i) s += w[i] * h[i];
    z[o] = b[o] + s;
  }
}

// (energy (), forces (N, 3)) in kJ/mol and kJ/mol/nm of positions (N, 3) (nm): torsions over the
// (K, 4) atom table `atoms`, features scaled by `scale` (K,), the MLP of layer widths `widths`
// (2K, h_1, ..., 1) whose weights and biases lie in `flat` in the order of NeuralBias.parameters()
// (W_0 (h_1, 2K), b_0, W_1, b_1, ...), read at this call. Optional periodic `box` (3, 3), rows a, b, c.
inline std::tuple<at::Tensor, at::Tensor> bias_torsions(const at::Tensor& positions,
                                                        const c10::optional<at::Tensor>& box, const at::Tensor& atoms,
                                                        const at::Tensor& scale, const at::Tensor& flat,
                                                        c10::IntArrayRef widths, const std::string& activation) {
  TORCH_CHECK_VALUE(positions.device().is_cpu() && flat.device().is_cpu(),
                    "openmm_nnbias: bias_torsions runs on the CPU only, got positions on ", positions.device());
  TORCH_CHECK_VALUE(positions.dim() == 2 && positions.size(1) == 3,
                    "openmm_nnbias: bias_torsions: positions must be (N, 3) (nm), got ", positions.sizes());
  TORCH_CHECK_VALUE(flat.scalar_type() == at::kDouble && flat.dim() == 1,
                    "openmm_nnbias: bias_torsions: flat must be the 1-D float64 weight buffer, got ",
                    flat.scalar_type(), " ", flat.sizes());
  TORCH_CHECK_VALUE(atoms.dim() == 2 && atoms.size(1) == 4 && atoms.scalar_type() == at::kLong,
                    "openmm_nnbias: bias_torsions: atoms must be a (K, 4) int64 table, got ", atoms.sizes(), " ",
                    atoms.scalar_type());
  const BiasActivation act = bias_activation(activation);
  const int64_t n = positions.size(0);
  const int64_t K = atoms.size(0);
  TORCH_CHECK_VALUE(scale.dim() == 1 && scale.size(0) == K,
                    "openmm_nnbias: bias_torsions: scale must be (K,) = (", K, ",), got ", scale.sizes());
  const int64_t L = static_cast<int64_t>(widths.size()) - 1;  // layers
  TORCH_CHECK_VALUE(L >= 1 && widths[0] == 2 * K && widths[L] == 1,
                    "openmm_nnbias: bias_torsions: widths must be (2K, hidden..., 1) with K = ", K, ", got ", widths);
  int64_t numel = 0, max_width = 0;
  for (int64_t l = 0; l < L; ++l) {
    TORCH_CHECK_VALUE(widths[l] > 0, "openmm_nnbias: bias_torsions: widths must be positive, got ", widths);
    numel += widths[l + 1] * widths[l] + widths[l + 1];
    max_width = std::max(max_width, widths[l]);
  }
  TORCH_CHECK_VALUE(flat.numel() == numel, "openmm_nnbias: bias_torsions: flat holds ", flat.numel(),
                    " numbers, widths ", widths, " need ", numel);
  at::Tensor x = as_f64(positions);
  at::Tensor tab = atoms.contiguous();
  at::Tensor sc = as_f64(scale);
  at::Tensor w = flat.contiguous();
  double bx[9];
  bool periodic = false;
  if (box.has_value() && box->defined()) {
    TORCH_CHECK_VALUE(box->dim() == 2 && box->size(0) == 3 && box->size(1) == 3,
                      "openmm_nnbias: bias_torsions: box must be (3, 3) box vectors as rows (nm), got ", box->sizes());
    at::Tensor b = as_f64(*box);
    std::copy(b.data_ptr<double>(), b.data_ptr<double>() + 9, bx);
    periodic = true;
  }
  const double* X = x.data_ptr<double>();
  const int64_t* A = tab.data_ptr<int64_t>();
  const double* S = sc.data_ptr<double>();
  const double* Wf = w.data_ptr<double>();
  for (int64_t e = 0; e < 4 * K; ++e)
    TORCH_CHECK_VALUE(A[e] >= 0 && A[e] < n, "openmm_nnbias: bias_torsions: atoms holds index ", A[e],
                      " but positions has ", n, " atoms");

  // scratch, one allocation: per torsion n1 (3), n2 (3) and six Jacobian coefficients; the features;
  // activations and their derivatives of the hidden layers; two gradient vectors
  int64_t hidden_total = 0;
  for (int64_t l = 1; l < L; ++l) hidden_total += widths[l];
  std::vector<double> scratch(static_cast<size_t>(14 * K + 2 * hidden_total + 2 * max_width));
  double* tors = scratch.data();
  double* feat = tors + 12 * K;
  double* act_buf = feat + 2 * K;
  double* der_buf = act_buf + hidden_total;
  double* g = der_buf + hidden_total;
  double* g_next = g + max_width;

  // 1. torsions, their Jacobians (kept as normals and coefficients), features
  for (int64_t k = 0; k < K; ++k) {
    const double* p0 = X + 3 * A[4 * k];
    const double* p1 = X + 3 * A[4 * k + 1];
    const double* p2 = X + 3 * A[4 * k + 2];
    const double* p3 = X + 3 * A[4 * k + 3];
    double b1[3], b2[3], b3[3];
    for (int c = 0; c < 3; ++c) {
      b1[c] = p1[c] - p0[c];
      b2[c] = p2[c] - p1[c];
      b3[c] = p3[c] - p2[c];
    }
    if (periodic) {
      bias_minimum_image(b1, bx);
      bias_minimum_image(b2, bx);
      bias_minimum_image(b3, bx);
    }
    double* t = tors + 12 * k;
    double* n1 = t;
    double* n2 = t + 3;
    cross3(b1, b2, n1);
    cross3(b2, b3, n2);
    const double b1b2 = dot3(b1, b2), b2b2 = dot3(b2, b2), b3b2 = dot3(b3, b2);
    const double n1n1 = dot3(n1, n1), n2n2 = dot3(n2, n2), n1n2 = dot3(n1, n2), b1n2 = dot3(b1, n2);
    const double b2_norm = std::sqrt(b2b2);
    const double theta = std::atan2(b2_norm * b1n2, n1n2);
    const double c0 = -b2_norm / n1n1, c3 = b2_norm / n2n2;
    const double f1 = b1b2 / b2b2, f3 = b3b2 / b2b2;
    // d theta / d p0 = c0 n1; d p1 = -(f1 + 1) c0 n1 + f3 c3 n2; d p2 = f1 c0 n1 - (f3 + 1) c3 n2; d p3 = c3 n2
    t[6] = c0;
    t[7] = -(f1 + 1.0) * c0;
    t[8] = f3 * c3;
    t[9] = f1 * c0;
    t[10] = -(f3 + 1.0) * c3;
    t[11] = c3;
    const double z = theta * S[k];
    feat[k] = std::cos(z);
    feat[K + k] = std::sin(z);
  }

  // 2. MLP forward (hidden layers activated, output linear)
  const double* h = feat;
  const double* Wl = Wf;
  int64_t a_off = 0;
  for (int64_t l = 0; l < L - 1; ++l) {
    const int64_t n_in = widths[l], n_out = widths[l + 1];
    const double* bl = Wl + n_out * n_in;
    double* z = act_buf + a_off;
    bias_affine(Wl, bl, h, n_in, n_out, z);
    double* d = der_buf + a_off;
    for (int64_t o = 0; o < n_out; ++o) bias_activate(act, z[o], z + o, d + o);
    h = z;
    a_off += n_out;
    Wl = bl + n_out;
  }
  const int64_t n_last = widths[L - 1];
  double energy = 0.0;
  bias_affine(Wl, Wl + n_last, h, n_last, 1, &energy);

  // 3. backward: g = W_last[0]; g <- W_l^T (g * d_l) down to the features
  std::copy(Wl, Wl + n_last, g);
  const double* W = Wl;  // walks back through the layers' weights
  for (int64_t l = L - 2; l >= 0; --l) {
    const int64_t n_in = widths[l], n_out = widths[l + 1];
    a_off -= n_out;
    const double* d = der_buf + a_off;
    W -= n_out * n_in + n_out;  // W_l (n_out, n_in) and b_l (n_out) precede W_{l+1} in flat
    for (int64_t i = 0; i < n_in; ++i) g_next[i] = 0.0;
    for (int64_t o = 0; o < n_out; ++o) {
      const double go = g[o] * d[o];
      if (go == 0.0) continue;
      const double* wo = W + o * n_in;
      for (int64_t i = 0; i < n_in; ++i) g_next[i] += wo[i] * go;
    }
    std::swap(g, g_next);
  }

  // 4. chain rule to the atoms
  at::Tensor forces = at::zeros({n, 3}, x.options());
  double* F = forces.data_ptr<double>();
  for (int64_t k = 0; k < K; ++k) {
    const double dvds = (feat[k] * g[K + k] - feat[K + k] * g[k]) * S[k];
    const double* t = tors + 12 * k;
    const double* n1 = t;
    const double* n2 = t + 3;
    const double coef1[4] = {t[6], t[7], t[9], 0.0};   // of n1 for atoms 0..3
    const double coef2[4] = {0.0, t[8], t[10], t[11]};  // of n2
    for (int j = 0; j < 4; ++j) {
      double* f = F + 3 * A[4 * k + j];
      for (int c = 0; c < 3; ++c) f[c] -= dvds * (coef1[j] * n1[c] + coef2[j] * n2[c]);
    }
  }
  if (positions.scalar_type() != at::kDouble) forces = forces.to(positions.scalar_type());
  return {at::scalar_tensor(energy, x.options()), forces};
}

}  // namespace openmm_nnbias
