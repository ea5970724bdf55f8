// The shared finite-difference gradient checker used by every op test, and random-input helpers.
//
// For inputs x_1..x_n and outputs y_1..y_m, the checker draws fixed random weights r_j and probes
// the scalar L = sum_j <r_j, y_j>, accumulated in double precision. The analytic gradient comes
// from the op's backward given dy_j = r_j; the numeric one from central differences (L(x + h e_i) -
// L(x - h e_i)) / 2h. A probe passes when |analytic - numeric| <= atol + rtol * max(|analytic|,
// |numeric|); the first failing index is reported with both values.
#ifndef ATTNPS_TESTS_OPS_GRADCHECK_H_
#define ATTNPS_TESTS_OPS_GRADCHECK_H_

#include <gtest/gtest.h>

#include <functional>
#include <random>
#include <string>
#include <vector>

#include "ops/tensor.h"

namespace attnps::testing {

struct GradCheckOptions {
  double step = 1e-2;  // h, in units of max(1, |x_i|)
  double atol = 5e-4;
  double rtol = 1e-2;
  int max_probes_per_input = 300;  // larger inputs are probed at random positions
  uint64_t seed = 7;
};

struct NamedInput {
  std::string name;
  Tensor* tensor;  // perturbed in place, restored after each probe
};

// forward(): recomputes and returns the outputs from the current input values.
// backward(dys, dxs): accumulates the input gradients into dxs (zeroed, shaped like the inputs),
// given output gradients dys (shaped like the outputs). It may rely on state left by the last
// forward() call on the unperturbed inputs.
using ForwardFn = std::function<std::vector<Tensor>()>;
using BackwardFn = std::function<void(const std::vector<Tensor>& dys, std::vector<Tensor>* dxs)>;

::testing::AssertionResult GradientsMatch(const std::vector<NamedInput>& inputs,
                                          const ForwardFn& forward, const BackwardFn& backward,
                                          const GradCheckOptions& options = {});

// Uniform values in [lo, hi).
Tensor RandomTensor(const Shape& shape, std::mt19937* rng, float lo = -1.0f, float hi = 1.0f);
// Uniform values whose magnitude is at least `gap` (keeps inputs away from kinks at zero).
Tensor RandomAwayFromZero(const Shape& shape, std::mt19937* rng, float gap = 0.1f, float hi = 1.0f);
// A [B, T] 0/1 mask with random lengths in [min_len, T] per row (a prefix of ones).
Tensor RandomPrefixMask(int64_t b, int64_t t, std::mt19937* rng, int64_t min_len = 0);
// Zeroes row `row` of a [B, T] mask: the fully masked case every masked op must handle.
void MaskOutRow(Tensor* mask, int64_t row);

// Elementwise comparison with atol + |ref| * rtol, reporting the first bad index.
::testing::AssertionResult AllClose(const Tensor& got, const Tensor& want, float atol = 1e-5f,
                                    float rtol = 1e-4f);

}  // namespace attnps::testing

#endif  // ATTNPS_TESTS_OPS_GRADCHECK_H_
