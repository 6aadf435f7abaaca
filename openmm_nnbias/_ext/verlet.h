// Verlet lists for the fused kernels: pairs within a reach (cut-off + skin) and the test for
// when a list must be rebuilt. Units: nm.
#pragma once

#include <vector>

#include "common.h"

namespace openmm_nnbias {

// Pairs i < j of positions (N, 3) closer than `reach` under OpenMM's minimum image, as a (P, 5)
// int32 table (i, j, s0, s1, s2): x_j - x_i + s0 a + s1 b + s2 c is the pair's separation.
// Also the largest |s_k| over the pairs (3,), float64. Brute force over the N(N-1)/2 pairs: for each
// i a branch-free (vectorizable) pass over j > i, then a branch-free compaction.
inline std::tuple<at::Tensor, at::Tensor> verlet_build(const at::Tensor& positions,
                                                        const c10::optional<at::Tensor>& box,
                                                        double reach) {
  at::Tensor x = check_positions(positions);
  const Box bx = read_box(box);  // all zero without a box: no image is ever taken
  const int64_t n = x.size(0);
  TORCH_CHECK(n < (int64_t(1) << 31), "openmm_nnbias: too many atoms for int32 pair indices");
  const double* X = x.data_ptr<double>();
  const double reach2 = reach * reach;
  std::vector<double> xs(n), ys(n), zs(n), r2(n), n0(n), n1(n), n2(n);
  for (int64_t i = 0; i < n; ++i) {
    xs[i] = X[3 * i];
    ys[i] = X[3 * i + 1];
    zs[i] = X[3 * i + 2];
  }
  const double a0 = bx.a[0], b0 = bx.b[0], b1 = bx.b[1], c0 = bx.c[0], c1 = bx.c[1], c2 = bx.c[2];
  const double w0 = bx.inv_width[0], w1 = bx.inv_width[1], w2 = bx.inv_width[2];
  std::vector<int32_t> rows(static_cast<size_t>(5 * n));
  int64_t count = 0;
  double max_image[3] = {0, 0, 0};
  for (int64_t i = 0; i < n; ++i) {
    const double xi = xs[i], yi = ys[i], zi = zs[i];
    for (int64_t j = i + 1; j < n; ++j) {  // the minimum image of Box::minimum_image, unrolled
      double dx = xs[j] - xi, dy = ys[j] - yi, dz = zs[j] - zi;
      const double k2 = round_even(dz * w2);
      dx -= k2 * c0;
      dy -= k2 * c1;
      dz -= k2 * c2;
      const double k1 = round_even(dy * w1);
      dx -= k1 * b0;
      dy -= k1 * b1;
      const double k0 = round_even(dx * w0);
      dx -= k0 * a0;
      r2[j] = dx * dx + dy * dy + dz * dz;
      n0[j] = k0;
      n1[j] = k1;
      n2[j] = k2;
    }
    if (rows.size() < static_cast<size_t>(5 * (count + n - i))) rows.resize(static_cast<size_t>(10 * (count + n - i)));
    int32_t* out = rows.data();
    for (int64_t j = i + 1; j < n; ++j) {
      int32_t* row = out + 5 * count;
      row[0] = static_cast<int32_t>(i);
      row[1] = static_cast<int32_t>(j);
      row[2] = static_cast<int32_t>(-n0[j]);
      row[3] = static_cast<int32_t>(-n1[j]);
      row[4] = static_cast<int32_t>(-n2[j]);
      count += r2[j] < reach2;
    }
  }
  for (int64_t q = 0; q < count; ++q)
    for (int k = 0; k < 3; ++k) max_image[k] = std::fmax(max_image[k], std::fabs(static_cast<double>(rows[5 * q + 2 + k])));
  at::Tensor pairs = at::empty({count, 5}, at::TensorOptions().dtype(at::kInt));
  std::copy(rows.begin(), rows.begin() + 5 * count, pairs.data_ptr<int32_t>());
  at::Tensor bound = at::empty({3}, at::TensorOptions().dtype(at::kDouble));
  std::copy(max_image, max_image + 3, bound.data_ptr<double>());
  return {pairs, bound};
}

// True when a list built at (ref_positions, ref_box) may miss a pair now: 2 max_i |x_i - ref_i|
// + sum_k image_bound_k |box_k - ref_box_k| >= skin, or ref_positions is not (N, 3).
inline bool verlet_stale(const at::Tensor& positions, const c10::optional<at::Tensor>& box,
                         const at::Tensor& ref_positions, const at::Tensor& ref_box,
                         const at::Tensor& image_bound, double skin) {
  at::Tensor x = check_positions(positions);
  const int64_t n = x.size(0);
  if (ref_positions.dim() != 2 || ref_positions.size(0) != n || ref_positions.size(1) != 3) return true;
  at::Tensor r = as_f64(ref_positions);
  const double* X = x.data_ptr<double>();
  const double* R = r.data_ptr<double>();
  double moved2 = 0.0;
  for (int64_t k = 0; k < 3 * n; k += 3) {
    const double dx = X[k] - R[k], dy = X[k + 1] - R[k + 1], dz = X[k + 2] - R[k + 2];
    moved2 = std::fmax(moved2, dx * dx + dy * dy + dz * dz);
  }
  if (moved2 != moved2) return true;  // NaN positions: rebuild (and fail there, visibly)
  double strain = 0.0;
  const Box bx = read_box(box);
  if (bx.periodic) {
    if (ref_box.numel() != 9 || image_bound.numel() != 3) return true;
    at::Tensor rb = as_f64(ref_box);
    at::Tensor nb = as_f64(image_bound);
    const double* RB = rb.data_ptr<double>();
    const double* NB = nb.data_ptr<double>();
    const double* rows[3] = {bx.a, bx.b, bx.c};
    for (int k = 0; k < 3; ++k) {
      const double e0 = rows[k][0] - RB[3 * k], e1 = rows[k][1] - RB[3 * k + 1], e2 = rows[k][2] - RB[3 * k + 2];
      strain += NB[k] * std::sqrt(e0 * e0 + e1 * e1 + e2 * e2);
    }
  }
  return 2.0 * std::sqrt(moved2) + strain >= skin;
}

}  // namespace openmm_nnbias
