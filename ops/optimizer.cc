#include "ops/optimizer.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "ops/device_dispatch.h"
#include "ops/parallel.h"
#include "ops/shape_check.h"

namespace attnps {
namespace {

constexpr int64_t kChunk = 1 << 14;

// Calls body(begin, end) over chunks of [0, n), in parallel when large enough.
template <typename Body>
void ForChunks(int64_t n, int64_t cost_per_element, const Body& body) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  ParallelFor(chunks, kChunk * cost_per_element,
              [&](int64_t c) { body(c * kChunk, std::min(n, (c + 1) * kChunk)); });
}

// Checks params and grads [P] and each (name, state) [P]; a null state fails.
void CheckFlat(ShapeCheck* check, const Tensor& grads, const Tensor* params,
               std::initializer_list<std::pair<const char*, const Tensor*>> states) {
  Dim p("P");
  check->Require(params != nullptr, "a params tensor");
  if (params) check->Arg("params", *params, {&p});
  check->Arg("grads", grads, {&p});
  for (const auto& [name, state] : states) {
    check->Require(state != nullptr, std::string("a ") + name + " tensor");
    if (state) check->Arg(name, *state, {&p});
  }
}

// The update loops are plain functions over restrict pointers so that they vectorize (the Adam and
// Adagrad loops stay scalar at sqrt unless built with -fno-math-errno).
struct AdamCoefficients {
  float b1, b2, eps, step_size, inv_sqrt_bc2, l2, shrink;
};

void AdamChunk(const AdamCoefficients& k, int64_t n, const float* __restrict g, float* __restrict p,
               float* __restrict m, float* __restrict v) {
  const float b1 = k.b1, b2 = k.b2, eps = k.eps, step_size = k.step_size;
  const float inv_sqrt_bc2 = k.inv_sqrt_bc2, l2 = k.l2, shrink = k.shrink;
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i] + l2 * p[i];
    m[i] = b1 * m[i] + (1.0f - b1) * gi;
    v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
    p[i] = shrink * p[i] - step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
  }
}

void AdagradChunk(float lr, float eps, int64_t n, const float* __restrict g, float* __restrict p,
                  float* __restrict acc) {
  for (int64_t i = 0; i < n; ++i) {
    acc[i] += g[i] * g[i];
    p[i] -= lr * g[i] / (std::sqrt(acc[i]) + eps);
  }
}

void SgdChunk(const SgdOptions& o, float lr, int64_t n, const float* __restrict g,
              float* __restrict p, float* __restrict buf) {
  const float wd = o.weight_decay, mu = o.momentum;
  if (mu == 0.0f) {
    for (int64_t i = 0; i < n; ++i) p[i] -= lr * (g[i] + wd * p[i]);
  } else if (o.momentum_kind == MomentumKind::kNesterov) {
    for (int64_t i = 0; i < n; ++i) {
      const float gi = g[i] + wd * p[i];
      buf[i] = mu * buf[i] + gi;
      p[i] -= lr * (gi + mu * buf[i]);
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      buf[i] = mu * buf[i] + g[i] + wd * p[i];
      p[i] -= lr * buf[i];
    }
  }
}

void SgdLoop(const SgdOptions& o, float lr, int64_t n, const float* g, float* p, float* buf) {
  ForChunks(n, 6, [&](int64_t begin, int64_t end) {
    SgdChunk(o, lr, end - begin, g + begin, p + begin, buf ? buf + begin : nullptr);
  });
}

class SgdOptimizer : public DenseOptimizer {
 public:
  SgdOptimizer(const DenseOptimizerOptions& options, int64_t n, Device device)
      : DenseOptimizer(options, n) {
    if (options.sgd.momentum != 0.0f) momentum_ = Tensor::Zeros({n}, device);
  }
  void Step(const Tensor& grads, Tensor* params) override {
    ++step_count_;
    SgdUpdate(options_.sgd, options_.learning_rate, grads, params, &momentum_);
  }
  std::vector<OptimizerSlot> Slots() const override {
    if (momentum_.empty()) return {};
    return {{"momentum", momentum_}};
  }

 private:
  Tensor momentum_;
};

class AdamOptimizer : public DenseOptimizer {
 public:
  AdamOptimizer(const DenseOptimizerOptions& options, int64_t n, Device device)
      : DenseOptimizer(options, n),
        m_(Tensor::Zeros({n}, device)),
        v_(Tensor::Zeros({n}, device)) {}
  void Step(const Tensor& grads, Tensor* params) override {
    ++step_count_;
    AdamUpdate(options_.adam, options_.learning_rate, step_count_, grads, params, &m_, &v_);
  }
  std::vector<OptimizerSlot> Slots() const override { return {{"m", m_}, {"v", v_}}; }

 private:
  Tensor m_, v_;
};

class AdagradOptimizer : public DenseOptimizer {
 public:
  AdagradOptimizer(const DenseOptimizerOptions& options, int64_t n, Device device)
      : DenseOptimizer(options, n), accumulator_(Tensor::Empty({n}, device)) {
    accumulator_.Fill(options.adagrad.initial_accumulator_value);
  }
  void Step(const Tensor& grads, Tensor* params) override {
    ++step_count_;
    AdagradUpdate(options_.adagrad, options_.learning_rate, grads, params, &accumulator_);
  }
  std::vector<OptimizerSlot> Slots() const override { return {{"accumulator", accumulator_}}; }

 private:
  Tensor accumulator_;
};

}  // namespace

void SgdUpdate(const SgdOptions& options, float lr, const Tensor& grads, Tensor* params,
               Tensor* momentum) {
  ShapeCheck check("sgd_update", grads.device());
  check.Require(options.momentum >= 0.0f && options.momentum < 1.0f, "momentum in [0, 1)");
  check.Require(options.momentum_kind == MomentumKind::kClassic || options.momentum > 0.0f,
                "momentum > 0 for nesterov");
  if (options.momentum != 0.0f) {
    CheckFlat(&check, grads, params, {{"momentum", momentum}});
  } else {
    CheckFlat(&check, grads, params, {});
  }
  check.Done();
  ATTNPS_RUN_ON_CUDA(grads, SgdUpdate(options, lr, grads, params, momentum));
  SgdLoop(options, lr, grads.numel(), grads.data(), params->data(),
          options.momentum != 0.0f ? momentum->data() : nullptr);
}

void AdamUpdate(const AdamOptions& options, float lr, int64_t step, const Tensor& grads,
                Tensor* params, Tensor* m, Tensor* v) {
  ShapeCheck check("adam_update", grads.device());
  check.Require(step >= 1, "step >= 1 (got " + std::to_string(step) + ")");
  check.Require(options.beta1 >= 0.0f && options.beta1 < 1.0f, "beta1 in [0, 1)");
  check.Require(options.beta2 >= 0.0f && options.beta2 < 1.0f, "beta2 in [0, 1)");
  check.Require(options.eps > 0.0f, "eps > 0");
  CheckFlat(&check, grads, params, {{"m", m}, {"v", v}});
  check.Done();
  const double t = static_cast<double>(step);
  const float step_size = static_cast<float>(lr / (1.0 - std::pow(double{options.beta1}, t)));
  const float inv_sqrt_bc2 =
      static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(double{options.beta2}, t)));
  const bool decoupled = options.weight_decay_kind == WeightDecayKind::kDecoupled;
  const float l2 = decoupled ? 0.0f : options.weight_decay;
  const float shrink = decoupled ? 1.0f - lr * options.weight_decay : 1.0f;
  const AdamCoefficients k{options.beta1, options.beta2, options.eps, step_size, inv_sqrt_bc2, l2,
                           shrink};
  ATTNPS_RUN_ON_CUDA(grads, AdamUpdate(k.b1, k.b2, k.eps, k.step_size, k.inv_sqrt_bc2, k.l2,
                                       k.shrink, grads, params, m, v));
  const float* g = grads.data();
  float* p = params->data();
  float* md = m->data();
  float* vd = v->data();
  ForChunks(grads.numel(), 12, [&](int64_t begin, int64_t end) {
    AdamChunk(k, end - begin, g + begin, p + begin, md + begin, vd + begin);
  });
}

void AdagradUpdate(const AdagradOptions& options, float lr, const Tensor& grads, Tensor* params,
                   Tensor* accumulator) {
  ShapeCheck check("adagrad_update", grads.device());
  check.Require(options.eps > 0.0f, "eps > 0");
  CheckFlat(&check, grads, params, {{"accumulator", accumulator}});
  check.Done();
  ATTNPS_RUN_ON_CUDA(grads, AdagradUpdate(options, lr, grads, params, accumulator));
  const float* g = grads.data();
  float* p = params->data();
  float* acc = accumulator->data();
  ForChunks(grads.numel(), 8, [&](int64_t begin, int64_t end) {
    AdagradChunk(lr, options.eps, end - begin, g + begin, p + begin, acc + begin);
  });
}

std::unique_ptr<DenseOptimizer> MakeDenseOptimizer(const DenseOptimizerOptions& options,
                                                   int64_t num_params, Device device) {
  ShapeCheck check("make_dense_optimizer");
  check.Require(num_params >= 0, "num_params >= 0");
  check.Require(options.learning_rate >= 0.0f, "learning_rate >= 0");
  if (options.kind == DenseOptimizerKind::kAdagrad) {
    check.Require(options.adagrad.initial_accumulator_value >= 0.0f,
                  "initial_accumulator_value >= 0");
  }
  check.Done();
  switch (options.kind) {
    case DenseOptimizerKind::kSgd:
      return std::make_unique<SgdOptimizer>(options, num_params, device);
    case DenseOptimizerKind::kAdam:
      return std::make_unique<AdamOptimizer>(options, num_params, device);
    case DenseOptimizerKind::kAdagrad:
      return std::make_unique<AdagradOptimizer>(options, num_params, device);
  }
  return nullptr;
}

// ---- Clipping --------------------------------------------------------------------------------

namespace {

// Sum of g^2 (chunks in float, summed in double), on g's device.
double SumOfSquares(const Tensor& g) {
  ATTNPS_RETURN_ON_CUDA(g, SumOfSquares(g));
  const float* x = g.data();
  const int64_t n = g.numel();
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(chunks, 0.0);
  ForChunks(n, 2, [&](int64_t begin, int64_t end) {
    float s = 0.0f;  // a chunk's sum in float vectorizes; chunks are summed in double
#pragma omp simd reduction(+ : s)
    for (int64_t i = begin; i < end; ++i) s += x[i] * x[i];
    partial[begin / kChunk] = s;
  });
  double sum = 0.0;
  for (double s : partial) sum += s;
  return sum;
}

// g *= factor, on g's device.
void Scale(Tensor* g, float factor) {
  ATTNPS_RUN_ON_CUDA(*g, Scale(g, factor));
  float* x = g->data();
  ForChunks(g->numel(), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) x[i] *= factor;
  });
}

}  // namespace

float ClipByGlobalNorm(const std::vector<Tensor*>& grads, float max_norm) {
  {
    // Every gradient on the first one's device.
    ShapeCheck check("clip_by_global_norm",
                     grads.empty() || grads[0] == nullptr ? Device::kCPU : grads[0]->device());
    check.Require(max_norm > 0.0f, "max_norm > 0");
    for (size_t i = 0; i < grads.size(); ++i) {
      const std::string name = "grads[" + std::to_string(i) + "]";
      check.Require(grads[i] != nullptr, name + " not null");
      if (grads[i]) check.Like(name.c_str(), *grads[i], *grads[i]);
    }
    check.Done();
  }
  double sum = 0.0;
  for (const Tensor* g : grads) sum += SumOfSquares(*g);
  const double norm = std::sqrt(sum);
  if (norm > max_norm) {
    const float factor = static_cast<float>(max_norm / norm);
    for (Tensor* g : grads) Scale(g, factor);
  }
  return static_cast<float>(norm);
}

float ClipByGlobalNorm(Tensor* grads, float max_norm) {
  return ClipByGlobalNorm(std::vector<Tensor*>{grads}, max_norm);
}

}  // namespace attnps
