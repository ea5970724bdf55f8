#include "ps/sparse_optimizer.h"

#include <cmath>
#include <cstdint>
#include <cstring>

namespace attnps::ps {
namespace {

void Sgd(const SparseOptimizerConfig& c, int dim, const float* g, float* w) {
  for (int i = 0; i < dim; ++i) w[i] -= c.learning_rate * g[i];
}

void Adagrad(const SparseOptimizerConfig& c, int dim, const float* g, float* w, float* acc) {
  for (int i = 0; i < dim; ++i) {
    acc[i] += g[i] * g[i];
    w[i] -= c.learning_rate * g[i] / (std::sqrt(acc[i]) + c.epsilon);
  }
}

struct AdamCorrection {
  float step_size, inv_sqrt_c2;
};

AdamCorrection AdamCorrectionAt(const SparseOptimizerConfig& c, uint64_t t) {
  const double tt = static_cast<double>(t);
  const double c1 = 1.0 - std::pow(static_cast<double>(c.beta1), tt);
  const double c2 = 1.0 - std::pow(static_cast<double>(c.beta2), tt);
  return {static_cast<float>(c.learning_rate / c1), static_cast<float>(1.0 / std::sqrt(c2))};
}

// State: m[dim], v[dim], then the row's update count as the bits of a uint32 (kept in both
// bias-correction modes, so a checkpoint resumes in either).
void Adam(const SparseOptimizerConfig& c, const SparseStep& at, int dim, const float* g, float* w,
          float* state) {
  float* m = state;
  float* v = state + dim;
  uint32_t t;
  std::memcpy(&t, v + dim, sizeof(t));
  ++t;
  std::memcpy(v + dim, &t, sizeof(t));
  const AdamCorrection k = c.adam_bias_correction == AdamBiasCorrection::kRowStep
                               ? AdamCorrectionAt(c, t)
                               : AdamCorrection{at.adam_step_size, at.adam_inv_sqrt_c2};
  for (int i = 0; i < dim; ++i) {
    m[i] = c.beta1 * m[i] + (1.0f - c.beta1) * g[i];
    v[i] = c.beta2 * v[i] + (1.0f - c.beta2) * g[i] * g[i];
    w[i] -= k.step_size * m[i] / (std::sqrt(v[i]) * k.inv_sqrt_c2 + c.epsilon);
  }
}

// State: z[dim], n[dim].
void Ftrl(const SparseOptimizerConfig& c, int dim, const float* g, float* w, float* state) {
  float* z = state;
  float* n = state + dim;
  for (int i = 0; i < dim; ++i) {
    const float n_new = n[i] + g[i] * g[i];
    const float sigma = (std::sqrt(n_new) - std::sqrt(n[i])) / c.ftrl_alpha;
    z[i] += g[i] - sigma * w[i];
    n[i] = n_new;
    if (std::fabs(z[i]) <= c.ftrl_l1) {
      w[i] = 0.0f;
    } else {
      const float sign = z[i] > 0.0f ? 1.0f : -1.0f;
      w[i] = -(z[i] - sign * c.ftrl_l1) /
             ((c.ftrl_beta + std::sqrt(n_new)) / c.ftrl_alpha + c.ftrl_l2);
    }
  }
}

}  // namespace

int StateWidth(SparseOptimizerKind kind, int dim) {
  switch (kind) {
    case SparseOptimizerKind::kSgd:
      return 0;
    case SparseOptimizerKind::kAdagrad:
      return dim;
    case SparseOptimizerKind::kAdam:
      return 2 * dim + 1;
    case SparseOptimizerKind::kFtrl:
      return 2 * dim;
  }
  return 0;
}

void InitOptimizerState(const SparseOptimizerConfig& config, int dim, float* state) {
  const int width = StateWidth(config.kind, dim);
  const float fill =
      config.kind == SparseOptimizerKind::kAdagrad ? config.initial_accumulator : 0.0f;
  for (int i = 0; i < width; ++i) state[i] = fill;  // Adam's step count: bits of 0.0f == 0u
}

SparseStep PrepareSparseStep(const SparseOptimizerConfig& config, uint64_t step) {
  SparseStep at;
  if (config.kind != SparseOptimizerKind::kAdam ||
      config.adam_bias_correction == AdamBiasCorrection::kRowStep) {
    return at;
  }
  const AdamCorrection k = AdamCorrectionAt(config, step + 1);
  at.adam_step_size = k.step_size;
  at.adam_inv_sqrt_c2 = k.inv_sqrt_c2;
  return at;
}

void ApplySparseUpdate(const SparseOptimizerConfig& config, const SparseStep& at, int dim,
                       const float* grad, float* embedding, float* state) {
  switch (config.kind) {
    case SparseOptimizerKind::kSgd:
      return Sgd(config, dim, grad, embedding);
    case SparseOptimizerKind::kAdagrad:
      return Adagrad(config, dim, grad, embedding, state);
    case SparseOptimizerKind::kAdam:
      return Adam(config, at, dim, grad, embedding, state);
    case SparseOptimizerKind::kFtrl:
      return Ftrl(config, dim, grad, embedding, state);
  }
}

}  // namespace attnps::ps
