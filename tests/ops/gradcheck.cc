#include "tests/ops/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace attnps::testing {
namespace {

double Probe(const std::vector<Tensor>& outputs, const std::vector<Tensor>& weights) {
  double sum = 0.0;
  for (size_t j = 0; j < outputs.size(); ++j) {
    const float* y = outputs[j].data();
    const float* r = weights[j].data();
    for (int64_t e = 0; e < outputs[j].numel(); ++e) sum += static_cast<double>(r[e]) * y[e];
  }
  return sum;
}

std::vector<int64_t> ProbePositions(int64_t n, int max_probes, std::mt19937* rng) {
  std::vector<int64_t> all(n);
  for (int64_t i = 0; i < n; ++i) all[i] = i;
  if (n > max_probes) {
    std::shuffle(all.begin(), all.end(), *rng);
    all.resize(max_probes);
    std::sort(all.begin(), all.end());
  }
  return all;
}

}  // namespace

::testing::AssertionResult GradientsMatch(const std::vector<NamedInput>& inputs,
                                          const ForwardFn& forward, const BackwardFn& backward,
                                          const GradCheckOptions& options) {
  std::mt19937 rng(options.seed);
  std::vector<Tensor> outputs = forward();
  std::vector<Tensor> weights;
  for (const Tensor& y : outputs) weights.push_back(RandomTensor(y.shape(), &rng));
  std::vector<Tensor> grads;
  for (const NamedInput& in : inputs) grads.push_back(Tensor::Zeros(in.tensor->shape()));
  backward(weights, &grads);

  for (size_t i = 0; i < inputs.size(); ++i) {
    Tensor& x = *inputs[i].tensor;
    for (int64_t e : ProbePositions(x.numel(), options.max_probes_per_input, &rng)) {
      const float saved = x[e];
      const double h = options.step * std::max(1.0, std::fabs(static_cast<double>(saved)));
      x[e] = static_cast<float>(saved + h);
      const double plus = Probe(forward(), weights);
      x[e] = static_cast<float>(saved - h);
      const double minus = Probe(forward(), weights);
      x[e] = saved;
      // Divide by the perturbation actually applied in float.
      const double applied = static_cast<double>(static_cast<float>(saved + h)) -
                             static_cast<double>(static_cast<float>(saved - h));
      const double numeric = (plus - minus) / applied;
      const double analytic = grads[i][e];
      const double tol =
          options.atol + options.rtol * std::max(std::fabs(analytic), std::fabs(numeric));
      if (!(std::fabs(analytic - numeric) <= tol)) {
        forward();  // leave the op state as for the unperturbed inputs
        return ::testing::AssertionFailure()
               << "gradient of input '" << inputs[i].name << "' " << x.ShapeString()
               << " at flat index " << e << ": analytic " << analytic << " vs numeric " << numeric
               << " (tolerance " << tol << ")";
      }
    }
  }
  forward();
  return ::testing::AssertionSuccess();
}

Tensor RandomTensor(const Shape& shape, std::mt19937* rng, float lo, float hi) {
  Tensor t = Tensor::Empty(shape);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = dist(*rng);
  return t;
}

Tensor RandomAwayFromZero(const Shape& shape, std::mt19937* rng, float gap, float hi) {
  Tensor t = Tensor::Empty(shape);
  std::uniform_real_distribution<float> dist(gap, hi);
  std::bernoulli_distribution sign(0.5);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = sign(*rng) ? dist(*rng) : -dist(*rng);
  return t;
}

Tensor RandomPrefixMask(int64_t b, int64_t t, std::mt19937* rng, int64_t min_len) {
  Tensor m = Tensor::Zeros({b, t});
  std::uniform_int_distribution<int64_t> len(std::min(min_len, t), t);
  for (int64_t r = 0; r < b; ++r) {
    const int64_t l = len(*rng);
    for (int64_t c = 0; c < l; ++c) m[r * t + c] = 1.0f;
  }
  return m;
}

void MaskOutRow(Tensor* mask, int64_t row) {
  const int64_t t = mask->dim(1);
  for (int64_t j = 0; j < t; ++j) (*mask)[row * t + j] = 0.0f;
}

::testing::AssertionResult AllClose(const Tensor& got, const Tensor& want, float atol, float rtol) {
  if (got.shape() != want.shape()) {
    return ::testing::AssertionFailure()
           << "shape " << got.ShapeString() << " vs expected " << want.ShapeString();
  }
  for (int64_t i = 0; i < got.numel(); ++i) {
    const float tol = atol + rtol * std::fabs(want[i]);
    if (!(std::fabs(got[i] - want[i]) <= tol)) {
      return ::testing::AssertionFailure() << "first bad index " << i << ": got " << got[i]
                                           << ", expected " << want[i] << " (tol " << tol << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace attnps::testing
