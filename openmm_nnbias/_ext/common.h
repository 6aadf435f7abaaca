// Shared helpers of the fused CPU kernels (openmm_nnbias/_ext): periodic boxes in OpenMM's reduced
// form and the checks of the tensors handed in. Units: nm.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Optional.h>

#include <cmath>
#include <cstdint>

namespace openmm_nnbias {

// Round half to even (as torch.round and std::nearbyint) for |x| < 2^51, without a libm call on
// plain x86-64: adding and subtracting 1.5 * 2^52 rounds in the default rounding mode.
inline double round_even(double x) {
  const double magic = 6755399441055744.0;
  return (x + magic) - magic;
}

// Box vectors as rows a, b, c (OpenMM's reduced form: a along x, b in the xy plane).
struct Box {
  double a[3] = {0, 0, 0}, b[3] = {0, 0, 0}, c[3] = {0, 0, 0};
  double inv_width[3] = {0, 0, 0};  // 1 / a_x, 1 / b_y, 1 / c_z
  bool periodic = false;

  // d <- d + s0 a + s1 b + s2 c
  inline void shift(double* d, double s0, double s1, double s2) const {
    d[0] += s0 * a[0] + s1 * b[0] + s2 * c[0];
    d[1] += s0 * a[1] + s1 * b[1] + s2 * c[1];
    d[2] += s0 * a[2] + s1 * b[2] + s2 * c[2];
  }

  // OpenMM's minimum image (c, then b, then a; round half to even as torch.round, by
  // multiplying with 1/width: it may differ from d / width only for a pair at half the box); returns the
  // image shift s (d became d + s·box) in s[3].
  inline void minimum_image(double* d, double* s) const {
    s[0] = s[1] = s[2] = 0.0;
    if (!periodic) return;
    s[2] = -round_even(d[2] * inv_width[2]);
    d[0] += s[2] * c[0];
    d[1] += s[2] * c[1];
    d[2] += s[2] * c[2];
    s[1] = -round_even(d[1] * inv_width[1]);
    d[0] += s[1] * b[0];
    d[1] += s[1] * b[1];
    s[0] = -round_even(d[0] * inv_width[0]);
    d[0] += s[0] * a[0];
  }

  inline double min_width() const { return std::fmin(a[0], std::fmin(b[1], c[2])); }
};

// Float64, contiguous, detached copy (or the tensor itself when it already is one).
inline at::Tensor as_f64(const at::Tensor& t) {
  return t.detach().to(at::kDouble).contiguous();
}

inline Box read_box(const c10::optional<at::Tensor>& box) {
  Box out;
  if (!box.has_value() || !box->defined()) return out;
  TORCH_CHECK(box->dim() == 2 && box->size(0) == 3 && box->size(1) == 3,
              "openmm_nnbias: box must be (3, 3) box vectors as rows (nm), got ", box->sizes());
  at::Tensor b = as_f64(*box);
  const double* p = b.data_ptr<double>();
  for (int k = 0; k < 3; ++k) {
    out.a[k] = p[k];
    out.b[k] = p[3 + k];
    out.c[k] = p[6 + k];
  }
  TORCH_CHECK_VALUE(out.a[0] > 0 && out.b[1] > 0 && out.c[2] > 0 && out.a[1] == 0 && out.a[2] == 0 &&
                        out.b[2] == 0,
                    "openmm_nnbias: box must be in OpenMM's reduced form (a along x, b in the xy plane)");
  out.inv_width[0] = 1.0 / out.a[0];
  out.inv_width[1] = 1.0 / out.b[1];
  out.inv_width[2] = 1.0 / out.c[2];
  out.periodic = true;
  return out;
}

inline at::Tensor check_positions(const at::Tensor& positions) {
  TORCH_CHECK(positions.dim() == 2 && positions.size(1) == 3,
              "openmm_nnbias: positions must be (N, 3) (nm), got ", positions.sizes());
  return as_f64(positions);
}

// Pair table (P, 5) int32 rows (i, j, s0, s1, s2), as written by verlet_build.
inline at::Tensor check_pairs(const at::Tensor& pairs) {
  TORCH_CHECK(pairs.dim() == 2 && pairs.size(1) == 5 && pairs.scalar_type() == at::kInt,
              "openmm_nnbias: pairs must be the (P, 5) int32 table of verlet_build, got ", pairs.sizes(),
              " ", pairs.scalar_type());
  return pairs.contiguous();
}

}  // namespace openmm_nnbias
