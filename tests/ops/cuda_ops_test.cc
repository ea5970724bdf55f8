// The CUDA twins against the CPU ops, on random inputs and odd sizes. Every case runs on three
// backends: the plans of ops/cuda/op_plans.h with a host executor (the kernel bodies and the
// op's orchestration, checked on every machine), the device (skipped without a GPU), and the
// device with a 1-block grid (every grid-stride loop takes its second lap). Gradient buffers
// start nonzero, so the accumulate (+=) contract is checked too. A mismatch reports the first bad
// index: |got - ref| > atol + |ref| * rtol.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ops/blas.h"
#include "ops/cuda/op_plans.h"
#include "ops/ops.h"
#include "tests/ops/gradcheck.h"
#ifdef ATTNPS_WITH_CUDA
#include "ops/cuda/device_ops.h"
#endif

namespace attnps {
namespace {

using testing::RandomTensor;

// OpPlans on the host: loops, the CPU GEMM, a vector for scratch.
struct HostExec {
  std::vector<char> scratch;
  template <typename Body>
  void ForEach(int64_t n, const Body& body) {
    cuda::ForEachOnHost(n, body);
  }
  // Filled with 0xFF bytes (NaN floats and doubles): the device's scratch is uninitialized, so
  // a plan that read scratch before writing it would fail here too.
  void* Scratch(size_t bytes) {
    scratch.assign(bytes, static_cast<char>(0xFF));
    return scratch.data();
  }
  void Gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
            int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
    attnps::Gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  void GemmBatched(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                   int64_t lda, int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b,
                   float beta, float* c, int64_t ldc, int64_t stride_c, int64_t batch) {
    for (int64_t g = 0; g < batch; ++g) {
      attnps::Gemm(ta, tb, m, n, k, alpha, a + g * stride_a, lda, b + g * stride_b, ldb, beta,
                   c + g * stride_c, ldc);
    }
  }
  const int64_t* Int64s(const int64_t* host, int64_t, int) { return host; }
  std::vector<int64_t> offsets;
  const int64_t* Offsets(const JaggedOffsets& o) {
    offsets.resize(o.batch() + 1);
    for (int64_t i = 0; i <= o.batch(); ++i) offsets[i] = o[i];
    return offsets.data();
  }
  double Sum(const double* v, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i) s += v[i];
    return s;
  }
};

enum class Backend { kHostPlans, kDevice, kDeviceOneBlock };

std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  switch (info.param) {
    case Backend::kHostPlans:
      return "HostPlans";
    case Backend::kDevice:
      return "Device";
    case Backend::kDeviceOneBlock:
      return "DeviceOneBlock";
  }
  return "?";
}

// Expects got == ref elementwise within atol + |ref| * rtol; reports the first bad index.
void ExpectClose(const Tensor& ref, const Tensor& got, const std::string& what, float atol = 1e-5f,
                 float rtol = 1e-4f) {
  ASSERT_EQ(ref.shape(), got.shape()) << what;
  const std::vector<float> r = ref.ToVector(), g = got.ToVector();
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < r.size(); ++i) {
    const bool ok = std::fabs(g[i] - r[i]) <= atol + std::fabs(r[i]) * rtol ||
                    (std::isnan(r[i]) && std::isnan(g[i]));
    if (!ok && bad++ == 0) first = static_cast<int64_t>(i);
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << r.size() << " values differ; first at "
                    << first << ": got " << (first >= 0 ? g[first] : 0) << ", expected "
                    << (first >= 0 ? r[first] : 0);
}

// The twin under test: the same calls as the CPU ops, run by the backend.
class TwinTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() != Backend::kHostPlans && !CudaAvailable())
      GTEST_SKIP() << "no GPU visible (the host-plan cases still check the kernels' math)";
#ifdef ATTNPS_WITH_CUDA
    cuda::SetMaxBlocksForTesting(GetParam() == Backend::kDeviceOneBlock ? 1 : 0);
#endif
  }
  void TearDown() override {
#ifdef ATTNPS_WITH_CUDA
    cuda::SetMaxBlocksForTesting(0);
#endif
  }
  bool host() const { return GetParam() == Backend::kHostPlans; }
  // A copy of `t` where the backend computes.
  Tensor In(const Tensor& t) const {
    if (t.ndim() == 0) return Tensor();  // absent
    return host() ? t.Clone(Device::kCPU) : t.Clone(Device::kCUDA);
  }
  cuda::OpPlans<HostExec> plans() { return cuda::OpPlans<HostExec>(&exec_); }

  HostExec exec_;
};

Tensor Mask(int64_t b, int64_t t, std::mt19937* rng) {
  Tensor m = Tensor::Zeros({b, t});
  std::uniform_int_distribution<int64_t> len(0, t);
  for (int64_t i = 0; i < b; ++i) {
    const int64_t n = i == 0 ? 0 : len(*rng);  // row 0 fully masked
    for (int64_t j = 0; j < n; ++j) m[i * t + j] = 1.0f;
  }
  return m;
}

TEST_P(TwinTest, Linear) {
  struct Case {
    int64_t n, i, o;
    bool bias;
  };
  for (const Case c : {Case{1, 1, 1, true}, Case{37, 19, 23, true}, Case{300, 64, 5, false}}) {
    std::mt19937 rng(c.n + c.i + c.o);
    Tensor x = RandomTensor({c.n, c.i}, &rng), w = RandomTensor({c.i, c.o}, &rng);
    Tensor b = c.bias ? RandomTensor({c.o}, &rng) : Tensor();
    Tensor dy = RandomTensor({c.n, c.o}, &rng);
    Tensor dx = RandomTensor({c.n, c.i}, &rng), dw = RandomTensor({c.i, c.o}, &rng);
    Tensor db = RandomTensor({c.o}, &rng);
    Tensor y = Tensor::Empty({c.n, c.o});
    LinearForward(x, w, b, &y);
    Tensor gx = In(dx), gw = In(dw), gb = In(db), gy = In(Tensor::Zeros({c.n, c.o}));
    Tensor ix = In(x), iw = In(w), ib = In(b), idy = In(dy);
    if (host()) {
      plans().LinearForward(ix, iw, ib, &gy);
      plans().LinearBackward(ix, iw, idy, &gx, &gw, &gb);
    } else {
      LinearForward(ix, iw, ib, &gy);
      LinearBackward(ix, iw, idy, &gx, &gw, &gb);
    }
    LinearBackward(x, w, dy, &dx, &dw, &db);
    const std::string at = " n=" + std::to_string(c.n);
    ExpectClose(y, gy, "linear y" + at);
    ExpectClose(dx, gx, "linear dx" + at);
    ExpectClose(dw, gw, "linear dw" + at);
    ExpectClose(db, gb, "linear db" + at);
  }
}

TEST_P(TwinTest, Elementwise) {
  for (const int64_t n : {1, 255, 1000, 70001}) {
    std::mt19937 rng(n);
    Tensor x = RandomTensor({n}, &rng, -4.0f, 4.0f), dy = RandomTensor({n}, &rng);
    Tensor dx0 = RandomTensor({n}, &rng);
    const std::string at = " n=" + std::to_string(n);
    struct Op {
      const char* name;
      void (*fwd)(const Tensor&, Tensor*);
      void (*bwd)(const Tensor&, const Tensor&, Tensor*);
    };
    const Op ops[] = {{"relu", ReluForward, ReluBackward},
                      {"sigmoid", SigmoidForward, SigmoidBackward},
                      {"tanh", TanhForward, TanhBackward}};
    for (int k = 0; k < 3; ++k) {
      const Op& op = ops[k];
      Tensor y = Tensor::Empty({n}), dx = dx0.Clone();
      op.fwd(x, &y);
      op.bwd(y, dy, &dx);
      Tensor gy = In(Tensor::Zeros({n})), gdx = In(dx0), iy = In(y), idy = In(dy), ix = In(x);
      if (host()) {
        if (k == 0) plans().Unary<cuda::ReluForwardBody>(ix, &gy);
        if (k == 1) plans().Unary<cuda::SigmoidForwardBody>(ix, &gy);
        if (k == 2) plans().Unary<cuda::TanhForwardBody>(ix, &gy);
        if (k == 0) plans().UnaryGrad<cuda::ReluBackwardBody>(iy, idy, &gdx);
        if (k == 1) plans().UnaryGrad<cuda::SigmoidBackwardBody>(iy, idy, &gdx);
        if (k == 2) plans().UnaryGrad<cuda::TanhBackwardBody>(iy, idy, &gdx);
      } else {
        op.fwd(ix, &gy);
        op.bwd(iy, idy, &gdx);
      }
      ExpectClose(y, gy, std::string(op.name) + " y" + at);
      ExpectClose(dx, gdx, std::string(op.name) + " dx" + at);
    }
  }
}

TEST_P(TwinTest, Prelu) {
  for (const Shape& s : {Shape{1, 1}, Shape{3, 7}, Shape{513, 37}}) {
    std::mt19937 rng(s[0] * s[1]);
    Tensor x = RandomTensor(s, &rng), a = RandomTensor({s[1]}, &rng), dy = RandomTensor(s, &rng);
    Tensor dx = RandomTensor(s, &rng), da = RandomTensor({s[1]}, &rng);
    Tensor gdx = In(dx), gda = In(da), gy = In(Tensor::Zeros(s));
    Tensor y = Tensor::Empty(s);
    PreluForward(x, a, &y);
    if (host()) {
      plans().PreluForward(In(x), In(a), &gy);
      plans().PreluBackward(In(x), In(a), In(dy), &gdx, &gda);
    } else {
      PreluForward(In(x), In(a), &gy);
      PreluBackward(In(x), In(a), In(dy), &gdx, &gda);
    }
    PreluBackward(x, a, dy, &dx, &da);
    ExpectClose(y, gy, "prelu y " + ShapeToString(s));
    ExpectClose(dx, gdx, "prelu dx " + ShapeToString(s));
    ExpectClose(da, gda, "prelu dalpha " + ShapeToString(s), 1e-4f, 1e-4f);
  }
}

TEST_P(TwinTest, Dice) {
  for (const Mode mode : {Mode::kTraining, Mode::kInference}) {
    for (const Shape& s : {Shape{1, 3}, Shape{300, 37}}) {
      std::mt19937 rng(s[0] + s[1]);
      Tensor x = RandomTensor(s, &rng, -2.0f, 3.0f), a = RandomTensor({s[1]}, &rng);
      Tensor dy = RandomTensor(s, &rng), dx = RandomTensor(s, &rng);
      Tensor da = RandomTensor({s[1]}, &rng);
      Tensor rm = RandomTensor({s[1]}, &rng), rv = RandomTensor({s[1]}, &rng, 0.5f, 2.0f);
      const DiceOptions options;
      Tensor grm = In(rm), grv = In(rv), gdx = In(dx), gda = In(da);
      Tensor y = Tensor::Empty(s), mean = Tensor::Empty({s[1]}), rstd = Tensor::Empty({s[1]});
      Tensor gy = In(Tensor::Zeros(s)), gmean = In(Tensor::Zeros({s[1]}));
      Tensor grstd = In(Tensor::Zeros({s[1]}));
      Tensor ix = In(x), ia = In(a), idy = In(dy);
      if (host()) {
        plans().DiceForward(ix, ia, mode, options, &grm, &grv, &gy, &gmean, &grstd);
        plans().DiceBackward(ix, ia, mode, gmean, grstd, idy, &gdx, &gda);
      } else {
        DiceForward(ix, ia, mode, options, &grm, &grv, &gy, &gmean, &grstd);
        DiceBackward(ix, ia, mode, gmean, grstd, idy, &gdx, &gda);
      }
      DiceForward(x, a, mode, options, &rm, &rv, &y, &mean, &rstd);
      DiceBackward(x, a, mode, mean, rstd, dy, &dx, &da);
      const std::string at =
          (mode == Mode::kTraining ? " training " : " inference ") + ShapeToString(s);
      ExpectClose(y, gy, "dice y" + at);
      ExpectClose(mean, gmean, "dice mean" + at);
      ExpectClose(rstd, grstd, "dice rstd" + at);
      ExpectClose(rm, grm, "dice running_mean" + at);
      ExpectClose(rv, grv, "dice running_var" + at);
      ExpectClose(dx, gdx, "dice dx" + at, 1e-4f, 1e-3f);
      ExpectClose(da, gda, "dice dalpha" + at, 1e-4f, 1e-3f);
    }
  }
}

TEST_P(TwinTest, LayerNorm) {
  for (const Shape& s : {Shape{1, 1}, Shape{5, 3}, Shape{700, 64}}) {
    std::mt19937 rng(s[0] + 7 * s[1]);
    Tensor x = RandomTensor(s, &rng, -3.0f, 5.0f), g = RandomTensor({s[1]}, &rng);
    Tensor b = RandomTensor({s[1]}, &rng), dy = RandomTensor(s, &rng);
    Tensor dx = RandomTensor(s, &rng), dg = RandomTensor({s[1]}, &rng);
    Tensor dbeta = RandomTensor({s[1]}, &rng);
    Tensor y = Tensor::Empty(s), mean = Tensor::Empty({s[0]}), rstd = Tensor::Empty({s[0]});
    Tensor gy = In(Tensor::Zeros(s)), gmean = In(Tensor::Zeros({s[0]}));
    Tensor grstd = In(Tensor::Zeros({s[0]}));
    Tensor gdx = In(dx), gdg = In(dg), gdb = In(dbeta), ix = In(x), ig = In(g), ib = In(b);
    if (host()) {
      plans().LayerNormForward(ix, ig, ib, kLayerNormEps, &gy, &gmean, &grstd);
      plans().LayerNormBackward(ix, ig, gmean, grstd, In(dy), &gdx, &gdg, &gdb);
    } else {
      LayerNormForward(ix, ig, ib, kLayerNormEps, &gy, &gmean, &grstd);
      LayerNormBackward(ix, ig, gmean, grstd, In(dy), &gdx, &gdg, &gdb);
    }
    LayerNormForward(x, g, b, kLayerNormEps, &y, &mean, &rstd);
    LayerNormBackward(x, g, mean, rstd, dy, &dx, &dg, &dbeta);
    const std::string at = " " + ShapeToString(s);
    ExpectClose(y, gy, "layer_norm y" + at);
    ExpectClose(rstd, grstd, "layer_norm rstd" + at);
    ExpectClose(dx, gdx, "layer_norm dx" + at, 1e-4f, 1e-3f);
    ExpectClose(dg, gdg, "layer_norm dgamma" + at, 1e-4f, 1e-3f);
    ExpectClose(dbeta, gdb, "layer_norm dbeta" + at, 1e-4f, 1e-4f);
  }
}

TEST_P(TwinTest, MaskedSoftmax) {
  for (const Shape& s : {Shape{1, 1}, Shape{9, 50}, Shape{600, 101}}) {
    for (const bool masked : {true, false}) {
      std::mt19937 rng(s[0] + s[1] + masked);
      Tensor x = RandomTensor(s, &rng, -6.0f, 6.0f), dy = RandomTensor(s, &rng);
      Tensor mask = masked ? Mask(s[0], s[1], &rng) : Tensor(), dx = RandomTensor(s, &rng);
      Tensor y = Tensor::Empty(s), gy = In(Tensor::Zeros(s)), gdx = In(dx);
      MaskedSoftmaxForward(x, mask, 0.5f, &y);
      MaskedSoftmaxBackward(y, dy, 0.5f, &dx);
      if (host()) {
        plans().MaskedSoftmaxForward(In(x), In(mask), 0.5f, &gy);
        plans().MaskedSoftmaxBackward(In(y), In(dy), 0.5f, &gdx);
      } else {
        MaskedSoftmaxForward(In(x), In(mask), 0.5f, &gy);
        MaskedSoftmaxBackward(In(y), In(dy), 0.5f, &gdx);
      }
      const std::string at = (masked ? " masked " : " ") + ShapeToString(s);
      ExpectClose(y, gy, "masked_softmax y" + at);
      ExpectClose(dx, gdx, "masked_softmax dx" + at);
    }
  }
}

TEST_P(TwinTest, MaskedPools) {
  for (const Shape& s : {Shape{1, 1, 1}, Shape{7, 13, 5}, Shape{64, 50, 33}}) {
    for (const bool mean : {false, true}) {
      std::mt19937 rng(s[0] * s[1] + mean);
      Tensor x = RandomTensor(s, &rng), mask = Mask(s[0], s[1], &rng);
      Tensor dy = RandomTensor({s[0], s[2]}, &rng), dx = RandomTensor(s, &rng);
      Tensor y = Tensor::Empty({s[0], s[2]}), gy = In(Tensor::Zeros({s[0], s[2]})), gdx = In(dx);
      (mean ? MaskedMeanPoolForward : MaskedSumPoolForward)(x, mask, &y);
      (mean ? MaskedMeanPoolBackward : MaskedSumPoolBackward)(mask, dy, &dx);
      if (host()) {
        plans().MaskedPoolForward(In(x), In(mask), mean, &gy);
        plans().MaskedPoolBackward(In(mask), In(dy), mean, &gdx);
      } else {
        (mean ? MaskedMeanPoolForward : MaskedSumPoolForward)(In(x), In(mask), &gy);
        (mean ? MaskedMeanPoolBackward : MaskedSumPoolBackward)(In(mask), In(dy), &gdx);
      }
      const std::string at = (mean ? " mean " : " sum ") + ShapeToString(s);
      ExpectClose(y, gy, "masked_pool y" + at);
      ExpectClose(dx, gdx, "masked_pool dx" + at);
    }
  }
}

TEST_P(TwinTest, BceWithLogits) {
  for (const int64_t n : {1, 257, 5000}) {
    for (const bool weighted : {false, true}) {
      std::mt19937 rng(n + weighted);
      Tensor x = RandomTensor({n}, &rng, -8.0f, 8.0f), labels = Tensor::Zeros({n});
      for (int64_t i = 0; i < n; i += 3) labels[i] = 1.0f;
      Tensor w = weighted ? RandomTensor({n}, &rng, 0.0f, 2.0f) : Tensor();
      Tensor dx = RandomTensor({n}, &rng), gdx = In(dx);
      const double loss = BceWithLogitsForward(x, labels, w);
      BceWithLogitsBackward(x, labels, w, 0.7f, &dx);
      double got = 0.0;
      if (host()) {
        got = plans().BceWithLogitsForward(In(x), In(labels), In(w));
        plans().BceWithLogitsBackward(In(x), In(labels), In(w), 0.7f, &gdx);
      } else {
        got = BceWithLogitsForward(In(x), In(labels), In(w));
        BceWithLogitsBackward(In(x), In(labels), In(w), 0.7f, &gdx);
      }
      EXPECT_NEAR(got, loss, 1e-6 * (1.0 + std::fabs(loss))) << "bce loss n=" << n;
      ExpectClose(dx, gdx, "bce dlogits n=" + std::to_string(n));
    }
  }
}

TEST_P(TwinTest, DenseOptimizers) {
  const int64_t n = 1031;
  std::mt19937 rng(5);
  Tensor p0 = RandomTensor({n}, &rng);
  std::vector<Tensor> grads;
  for (int s = 0; s < 3; ++s) grads.push_back(RandomTensor({n}, &rng));
  auto run = [&](const char* name, auto cpu_step, auto twin_step, int slots) {
    Tensor p = p0.Clone(), gp = In(p0);
    std::vector<Tensor> st, gst;
    for (int k = 0; k < slots; ++k) {
      st.push_back(Tensor::Filled({n}, 0.1f));
      gst.push_back(In(st.back()));
    }
    for (int s = 0; s < 3; ++s) {
      cpu_step(s + 1, grads[s], &p, &st);
      twin_step(s + 1, In(grads[s]), &gp, &gst);
    }
    ExpectClose(p, gp, std::string(name) + " params");
    for (int k = 0; k < slots; ++k) ExpectClose(st[k], gst[k], std::string(name) + " state");
  };
  for (const MomentumKind kind : {MomentumKind::kClassic, MomentumKind::kNesterov}) {
    SgdOptions o;
    o.momentum = 0.9f;
    o.momentum_kind = kind;
    o.weight_decay = 0.01f;
    auto cpu = [&](int, const Tensor& g, Tensor* p, std::vector<Tensor>* st) {
      SgdUpdate(o, 0.1f, g, p, &(*st)[0]);
    };
    auto twin = [&](int, const Tensor& g, Tensor* p, std::vector<Tensor>* st) {
      if (host())
        plans().SgdUpdate(o, 0.1f, g, p, &(*st)[0]);
      else
        SgdUpdate(o, 0.1f, g, p, &(*st)[0]);
    };
    run(kind == MomentumKind::kClassic ? "sgd momentum" : "sgd nesterov", cpu, twin, 1);
  }
  for (const WeightDecayKind wd : {WeightDecayKind::kL2, WeightDecayKind::kDecoupled}) {
    AdamOptions o;
    o.weight_decay = 0.01f;
    o.weight_decay_kind = wd;
    auto cpu = [&](int step, const Tensor& g, Tensor* p, std::vector<Tensor>* st) {
      AdamUpdate(o, 0.01f, step, g, p, &(*st)[0], &(*st)[1]);
    };
    // The host plan takes the coefficients the CPU op computes: checked through the device path.
    auto twin = [&](int step, const Tensor& g, Tensor* p, std::vector<Tensor>* st) {
      if (host()) {
        const double t = step;
        const float step_size = static_cast<float>(0.01 / (1.0 - std::pow(double{o.beta1}, t)));
        const float bc2 = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(double{o.beta2}, t)));
        const bool dec = wd == WeightDecayKind::kDecoupled;
        plans().AdamUpdate(o.beta1, o.beta2, o.eps, step_size, bc2, dec ? 0.0f : o.weight_decay,
                           dec ? 1.0f - 0.01f * o.weight_decay : 1.0f, g, p, &(*st)[0], &(*st)[1]);
      } else {
        AdamUpdate(o, 0.01f, step, g, p, &(*st)[0], &(*st)[1]);
      }
    };
    run(wd == WeightDecayKind::kL2 ? "adam" : "adamw", cpu, twin, 2);
  }
  AdagradOptions ao;
  auto cpu = [&](int, const Tensor& g, Tensor* p, std::vector<Tensor>* st) {
    AdagradUpdate(ao, 0.05f, g, p, &(*st)[0]);
  };
  auto twin = [&](int, const Tensor& g, Tensor* p, std::vector<Tensor>* st) {
    if (host())
      plans().AdagradUpdate(ao, 0.05f, g, p, &(*st)[0]);
    else
      AdagradUpdate(ao, 0.05f, g, p, &(*st)[0]);
  };
  run("adagrad", cpu, twin, 1);
}

DinAttentionParams RandomDinParams(int64_t d, int64_t h1, int64_t h2, std::mt19937* rng) {
  return {RandomTensor({4 * d, h1}, rng), RandomTensor({h1}, rng),    RandomTensor({h1, h2}, rng),
          RandomTensor({h2}, rng),        RandomTensor({h2, 1}, rng), RandomTensor({1}, rng)};
}

TEST_P(TwinTest, DinAttention) {
  struct Case {
    int64_t b, t, d, h1, h2;
  };
  for (const Case c : {Case{1, 1, 1, 1, 1}, Case{5, 7, 3, 8, 4}, Case{33, 50, 16, 36, 18}}) {
    for (const auto norm : {AttentionNormalization::kNone, AttentionNormalization::kSoftmax}) {
      for (const auto act : {DinActivation::kSigmoid, DinActivation::kRelu}) {
        std::mt19937 rng(c.b * c.t + static_cast<int>(norm) * 2 + static_cast<int>(act));
        const DinAttentionOptions o{norm, act};
        const DinAttentionParams p = RandomDinParams(c.d, c.h1, c.h2, &rng);
        Tensor q = RandomTensor({c.b, c.d}, &rng), k = RandomTensor({c.b, c.t, c.d}, &rng);
        Tensor mask = Mask(c.b, c.t, &rng), d_pooled = RandomTensor({c.b, c.d}, &rng);
        Tensor d_weights = c.b % 2 ? RandomTensor({c.b, c.t}, &rng) : Tensor();
        Tensor dq = RandomTensor(q.shape(), &rng), dk = RandomTensor(k.shape(), &rng);
        DinAttentionParams g = RandomDinParams(c.d, c.h1, c.h2, &rng);
        // The twin's copies, taken before the CPU op accumulates into the originals.
        const DinAttentionParams tp{In(p.w1), In(p.b1), In(p.w2), In(p.b2), In(p.w3), In(p.b3)};
        DinAttentionParams tg{In(g.w1), In(g.b1), In(g.w2), In(g.b2), In(g.w3), In(g.b3)};
        Tensor tq = In(q), tk = In(k), tmask = In(mask), tdp = In(d_pooled), tdw = In(d_weights);
        Tensor tdq = In(dq), tdk = In(dk);
        Tensor tweights = In(Tensor::Zeros({c.b, c.t})), tpooled = In(Tensor::Zeros({c.b, c.d}));
        DinAttentionWorkspace tws = DinAttentionWorkspace::Allocate(
            c.b, c.t, c.d, c.h1, c.h2, host() ? Device::kCPU : Device::kCUDA);

        DinAttentionWorkspace ws = DinAttentionWorkspace::Allocate(c.b, c.t, c.d, c.h1, c.h2);
        Tensor weights = Tensor::Empty({c.b, c.t}), pooled = Tensor::Empty({c.b, c.d});
        DinAttentionForward(q, k, mask, p, o, &ws, &weights, &pooled);
        DinAttentionBackward(q, k, mask, p, o, weights, d_weights, d_pooled, &ws, &dq, &dk, &g);
        if (host()) {
          plans().DinAttentionForward(tq, tk, tmask, tp, o, &tws, &tweights, &tpooled);
          plans().DinAttentionBackward(tq, tk, tmask, tp, o, tweights, tdw, tdp, &tws, &tdq, &tdk,
                                       &tg);
        } else {
          DinAttentionForward(tq, tk, tmask, tp, o, &tws, &tweights, &tpooled);
          DinAttentionBackward(tq, tk, tmask, tp, o, tweights, tdw, tdp, &tws, &tdq, &tdk, &tg);
        }
        const std::string at = " B=" + std::to_string(c.b) + " T=" + std::to_string(c.t) +
                               (norm == AttentionNormalization::kNone ? " raw" : " softmax") +
                               (act == DinActivation::kSigmoid ? " sigmoid" : " relu");
        ExpectClose(weights, tweights, "din weights" + at);
        ExpectClose(pooled, tpooled, "din pooled" + at);
        ExpectClose(dq, tdq, "din dq" + at, 1e-4f, 1e-3f);
        ExpectClose(dk, tdk, "din dk" + at, 1e-4f, 1e-3f);
        ExpectClose(g.w1, tg.w1, "din dw1" + at, 1e-4f, 1e-3f);
        ExpectClose(g.b1, tg.b1, "din db1" + at, 1e-4f, 1e-3f);
        ExpectClose(g.w2, tg.w2, "din dw2" + at, 1e-4f, 1e-3f);
        ExpectClose(g.b2, tg.b2, "din db2" + at, 1e-4f, 1e-3f);
        ExpectClose(g.w3, tg.w3, "din dw3" + at, 1e-4f, 1e-3f);
        ExpectClose(g.b3, tg.b3, "din db3" + at, 1e-4f, 1e-3f);
      }
    }
  }
}

TEST_P(TwinTest, GruFamily) {
  struct Case {
    int64_t b, t, in, h;
    bool h0;
  };
  using cuda::GruGate;
  for (const Case c : {Case{1, 1, 1, 1, false}, Case{3, 5, 4, 6, true}, Case{17, 23, 9, 12, true},
                       Case{8, 30, 16, 16, false}}) {
    for (const GruGate gate :
         {GruGate::kGru, GruGate::kAugru, GruGate::kAgru, GruGate::kAugruOfficial}) {
      std::mt19937 rng(c.b * 31 + c.t + static_cast<int>(gate));
      const bool att = gate != GruGate::kGru;
      const GruParams p{RandomTensor({c.in, 3 * c.h}, &rng), RandomTensor({c.h, 3 * c.h}, &rng),
                        RandomTensor({3 * c.h}, &rng)};
      GruParams g{RandomTensor({c.in, 3 * c.h}, &rng), RandomTensor({c.h, 3 * c.h}, &rng),
                  RandomTensor({3 * c.h}, &rng)};
      Tensor x = RandomTensor({c.b, c.t, c.in}, &rng), mask = Mask(c.b, c.t, &rng);
      Tensor a = att ? RandomTensor({c.b, c.t}, &rng, 0.0f, 1.0f) : Tensor();
      Tensor h0 = c.h0 ? RandomTensor({c.b, c.h}, &rng) : Tensor();
      Tensor d_states = RandomTensor({c.b, c.t, c.h}, &rng), dx = RandomTensor(x.shape(), &rng);
      Tensor dh0 = c.h0 ? RandomTensor({c.b, c.h}, &rng) : Tensor();
      Tensor da = att ? RandomTensor({c.b, c.t}, &rng) : Tensor();
      const GruParams tp{In(p.wx), In(p.wh), In(p.b)};
      GruParams tg{In(g.wx), In(g.wh), In(g.b)};
      Tensor tdx = In(dx), tdh0 = In(dh0), tda = In(da);
      Tensor tstates = In(Tensor::Zeros({c.b, c.t, c.h}));
      GruWorkspace tws =
          GruWorkspace::Allocate(c.b, c.t, c.in, c.h, host() ? Device::kCPU : Device::kCUDA);
      GruWorkspace ws = GruWorkspace::Allocate(c.b, c.t, c.in, c.h);
      Tensor states = Tensor::Empty({c.b, c.t, c.h});
      Tensor* dh0p = c.h0 ? &dh0 : nullptr;
      Tensor* dap = att ? &da : nullptr;
      switch (gate) {
        case GruGate::kGru:
          GruForward(x, mask, h0, p, &ws, &states);
          GruBackward(x, mask, h0, p, d_states, &ws, &dx, dh0p, &g);
          break;
        case GruGate::kAugru:
          AugruForward(x, mask, a, h0, p, &ws, &states);
          AugruBackward(x, mask, a, h0, p, d_states, &ws, &dx, dh0p, dap, &g);
          break;
        case GruGate::kAgru:
          AgruForward(x, mask, a, h0, p, &ws, &states);
          AgruBackward(x, mask, a, h0, p, d_states, &ws, &dx, dh0p, dap, &g);
          break;
        case GruGate::kAugruOfficial:
          AugruOfficialForward(x, mask, a, h0, p, &ws, &states);
          AugruOfficialBackward(x, mask, a, h0, p, d_states, &ws, &dx, dh0p, dap, &g);
          break;
      }
      Tensor tx = In(x), tmask = In(mask), ta = In(a), th0 = In(h0), tds = In(d_states);
      Tensor* tdh0p = c.h0 ? &tdh0 : nullptr;
      Tensor* tdap = att ? &tda : nullptr;
      if (host()) {
        plans().GruForward(gate, tx, tmask, ta, th0, tp, &tws, &tstates);
        plans().GruBackward(gate, tx, tmask, ta, th0, tp, tds, &tws, &tdx, tdh0p, tdap, &tg);
      } else {
        // Through the public ops, as models call them.
        switch (gate) {
          case GruGate::kGru:
            GruForward(tx, tmask, th0, tp, &tws, &tstates);
            GruBackward(tx, tmask, th0, tp, tds, &tws, &tdx, tdh0p, &tg);
            break;
          case GruGate::kAugru:
            AugruForward(tx, tmask, ta, th0, tp, &tws, &tstates);
            AugruBackward(tx, tmask, ta, th0, tp, tds, &tws, &tdx, tdh0p, tdap, &tg);
            break;
          case GruGate::kAgru:
            AgruForward(tx, tmask, ta, th0, tp, &tws, &tstates);
            AgruBackward(tx, tmask, ta, th0, tp, tds, &tws, &tdx, tdh0p, tdap, &tg);
            break;
          case GruGate::kAugruOfficial:
            AugruOfficialForward(tx, tmask, ta, th0, tp, &tws, &tstates);
            AugruOfficialBackward(tx, tmask, ta, th0, tp, tds, &tws, &tdx, tdh0p, tdap, &tg);
            break;
        }
      }
      const std::string at = " gate=" + std::to_string(static_cast<int>(gate)) +
                             " B=" + std::to_string(c.b) + " T=" + std::to_string(c.t);
      ExpectClose(states, tstates, "gru states" + at);
      ExpectClose(dx, tdx, "gru dx" + at, 1e-4f, 1e-3f);
      if (c.h0) ExpectClose(dh0, tdh0, "gru dh0" + at, 1e-4f, 1e-3f);
      if (att) ExpectClose(da, tda, "gru d_attention" + at, 1e-4f, 1e-3f);
      ExpectClose(g.wx, tg.wx, "gru dwx" + at, 1e-4f, 1e-3f);
      ExpectClose(g.wh, tg.wh, "gru dwh" + at, 1e-4f, 1e-3f);
      ExpectClose(g.b, tg.b, "gru db" + at, 1e-4f, 1e-3f);
    }
  }
}

cuda::HeadLayout Heads(const Tensor& x, int64_t heads) {
  return {x.empty() ? nullptr : x.data(), x.shape()[1], x.shape()[2] / heads, heads, x.shape()[2]};
}

TEST_P(TwinTest, ScaledDotProductAttention) {
  struct Case {
    int64_t b, tq, t, dk, dv;
    bool causal, masked;
  };
  for (const Case c : {Case{1, 1, 1, 1, 1, false, false}, Case{3, 1, 9, 8, 5, false, true},
                       Case{4, 13, 13, 16, 16, true, true}, Case{2, 7, 20, 6, 3, false, false}}) {
    std::mt19937 rng(c.b + c.tq + c.t);
    Tensor q = RandomTensor({c.b, c.tq, c.dk}, &rng), k = RandomTensor({c.b, c.t, c.dk}, &rng);
    Tensor v = RandomTensor({c.b, c.t, c.dv}, &rng), d_out = RandomTensor({c.b, c.tq, c.dv}, &rng);
    Tensor mask = c.masked ? Mask(c.b, c.t, &rng) : Tensor();
    Tensor dq = RandomTensor(q.shape(), &rng), dk = RandomTensor(k.shape(), &rng);
    Tensor dv = RandomTensor(v.shape(), &rng);
    Tensor tq = In(q), tk = In(k), tv = In(v), tmask = In(mask), tdo = In(d_out);
    Tensor tdq = In(dq), tdk = In(dk), tdv = In(dv);
    Tensor tp = In(Tensor::Zeros({c.b, c.tq, c.t})), tout = In(Tensor::Zeros({c.b, c.tq, c.dv}));
    Tensor p = Tensor::Empty({c.b, c.tq, c.t}), out = Tensor::Empty({c.b, c.tq, c.dv});
    ScaledDotProductAttentionForward(q, k, v, mask, c.causal, &p, &out);
    ScaledDotProductAttentionBackward(q, k, v, p, d_out, &dq, &dk, &dv);
    if (host()) {
      std::vector<float> scores(c.b * c.tq * c.t);
      plans().AttentionCoreForward(Heads(tq, 1), Heads(tk, 1), Heads(tv, 1),
                                   tmask.empty() ? nullptr : tmask.data(), c.b, c.causal, tp.data(),
                                   Heads(tout, 1));
      plans().AttentionCoreBackward(Heads(tq, 1), Heads(tk, 1), Heads(tv, 1), tp.data(),
                                    Heads(tdo, 1), c.b, scores.data(), Heads(tdq, 1), Heads(tdk, 1),
                                    Heads(tdv, 1));
    } else {
      ScaledDotProductAttentionForward(tq, tk, tv, tmask, c.causal, &tp, &tout);
      ScaledDotProductAttentionBackward(tq, tk, tv, tp, tdo, &tdq, &tdk, &tdv);
    }
    const std::string at =
        " B=" + std::to_string(c.b) + " Tq=" + std::to_string(c.tq) + (c.causal ? " causal" : "");
    ExpectClose(p, tp, "sdpa p" + at);
    ExpectClose(out, tout, "sdpa out" + at);
    ExpectClose(dq, tdq, "sdpa dq" + at, 1e-4f, 1e-3f);
    ExpectClose(dk, tdk, "sdpa dk" + at, 1e-4f, 1e-3f);
    ExpectClose(dv, tdv, "sdpa dv" + at, 1e-4f, 1e-3f);
  }
}

TEST_P(TwinTest, DropoutAndClipping) {
  for (const int64_t n : {1, 2, 3, 4097}) {
    for (const int64_t first : {0, 1}) {
      std::mt19937 rng(n + first);
      Tensor x = RandomTensor({n}, &rng), dy = RandomTensor({n}, &rng);
      Tensor dx = RandomTensor({n}, &rng), tdx = In(dx);
      Tensor mask = Tensor::Empty({n}), y = Tensor::Empty({n});
      Tensor tmask = In(Tensor::Zeros({n})), ty = In(Tensor::Zeros({n}));
      DropoutForward(x, 0.3f, 77, Mode::kTraining, &mask, &y, first);
      DropoutBackward(mask, dy, &dx);
      if (host()) {
        plans().DropoutForward(In(x), 0.3f, 77, Mode::kTraining, &tmask, &ty, first);
        plans().DropoutBackward(tmask, In(dy), &tdx);
      } else {
        DropoutForward(In(x), 0.3f, 77, Mode::kTraining, &tmask, &ty, first);
        DropoutBackward(tmask, In(dy), &tdx);
      }
      const std::string at = " n=" + std::to_string(n) + " first=" + std::to_string(first);
      ExpectClose(mask, tmask, "dropout mask" + at, 0.0f, 0.0f);
      ExpectClose(y, ty, "dropout y" + at, 0.0f, 0.0f);
      ExpectClose(dx, tdx, "dropout dx" + at);
    }
  }
  std::mt19937 rng(9);
  Tensor a = RandomTensor({1000}, &rng, -3.0f, 3.0f), b = RandomTensor({37}, &rng);
  Tensor ta = In(a), tb = In(b);
  const float norm = ClipByGlobalNorm({&a, &b}, 1.5f);
  float got = 0.0f;
  if (host()) {
    got = static_cast<float>(std::sqrt(plans().SumOfSquares(ta) + plans().SumOfSquares(tb)));
    plans().Scale(&ta, 1.5f / got);
    plans().Scale(&tb, 1.5f / got);
  } else {
    got = ClipByGlobalNorm({&ta, &tb}, 1.5f);
  }
  EXPECT_NEAR(got, norm, 1e-5f * norm);
  ExpectClose(a, ta, "clipped a");
  ExpectClose(b, tb, "clipped b");
}

TEST_P(TwinTest, JaggedOps) {
  for (const std::vector<int32_t>& off :
       {std::vector<int32_t>{0, 0}, std::vector<int32_t>{0, 3, 3, 7, 8},
        std::vector<int32_t>{0, 50, 51, 99, 150, 150, 200}}) {
    const JaggedOffsets offsets(off);
    const int64_t b = offsets.batch(), n = offsets.total(), d = 7;
    const int64_t t = std::max<int64_t>(offsets.MaxLength(), 1) + 1;
    std::mt19937 rng(n);
    Tensor x = RandomTensor({n, d}, &rng), dy = RandomTensor({b, d}, &rng);
    Tensor dx = RandomTensor({n, d}, &rng), dpadded = RandomTensor({b, t, d}, &rng);
    Tensor y = Tensor::Empty({b, d}), padded = Tensor::Empty({b, t, d}),
           mask = Tensor::Empty({b, t});
    Tensor ty = In(Tensor::Zeros({b, d})), tpadded = In(Tensor::Zeros({b, t, d}));
    Tensor tmask = In(Tensor::Zeros({b, t})), tdx = In(dx);
    SegmentSumPoolForward(x, offsets, &y);
    SegmentSumPoolBackward(offsets, dy, &dx);
    JaggedToPadded(x, offsets, &padded, &mask);
    PaddedToJaggedAdd(dpadded, offsets, &dx);
    Tensor tx = In(x), tdy = In(dy), tdp = In(dpadded);
    if (host()) {
      plans().SegmentSumPoolForward(tx, offsets, &ty);
      plans().SegmentSumPoolBackward(offsets, tdy, &tdx);
      plans().JaggedToPadded(tx, offsets, &tpadded, &tmask);
      plans().PaddedToJaggedAdd(tdp, offsets, &tdx);
    } else {
      SegmentSumPoolForward(tx, offsets, &ty);
      SegmentSumPoolBackward(offsets, tdy, &tdx);
      JaggedToPadded(tx, offsets, &tpadded, &tmask);
      PaddedToJaggedAdd(tdp, offsets, &tdx);
    }
    const std::string at = " B=" + std::to_string(b) + " N=" + std::to_string(n);
    ExpectClose(y, ty, "segment_sum_pool y" + at);
    ExpectClose(padded, tpadded, "jagged_to_padded padded" + at, 0.0f, 0.0f);
    ExpectClose(mask, tmask, "jagged_to_padded mask" + at, 0.0f, 0.0f);
    ExpectClose(dx, tdx, "segment_sum_pool + padded_to_jagged dx" + at);
  }
}

TEST_P(TwinTest, SampledSoftmaxDienAuxAndProbabilities) {
  for (const int64_t s : {0, 1, 37}) {
    for (const bool remove : {false, true}) {
      const int64_t b = 9, d = 6;
      std::mt19937 rng(s * 2 + remove);
      Tensor u = RandomTensor({b, d}, &rng), pos = RandomTensor({b, d}, &rng);
      Tensor neg = RandomTensor({s, d}, &rng), lqp = RandomTensor({b}, &rng, -3.0f, 0.0f);
      Tensor lqn = RandomTensor({s}, &rng, -3.0f, 0.0f);
      std::vector<int64_t> pos_ids(b), neg_ids(s);
      for (int64_t i = 0; i < b; ++i) pos_ids[i] = i % 4;
      for (int64_t j = 0; j < s; ++j) neg_ids[j] = j % 5;
      SampledSoftmaxOptions o;
      if (remove) {
        o.accidental_hits = AccidentalHits::kRemove;
        o.pos_ids = Int64Span(pos_ids.data(), pos_ids.size());
        o.neg_ids = Int64Span(neg_ids.data(), neg_ids.size());
      }
      Tensor du = RandomTensor(u.shape(), &rng), dpos = RandomTensor(pos.shape(), &rng);
      Tensor dneg = RandomTensor(neg.shape(), &rng);
      Tensor tdu = In(du), tdpos = In(dpos), tdneg = In(dneg);
      auto ws = SampledSoftmaxWorkspace::Allocate(b, s);
      auto tws = SampledSoftmaxWorkspace::Allocate(b, s, host() ? Device::kCPU : Device::kCUDA);
      const double loss = SampledSoftmaxForward(u, pos, neg, lqp, lqn, o, &ws);
      SampledSoftmaxBackward(u, pos, neg, lqp, lqn, 0.5f, &ws, &du, &dpos, &dneg);
      Tensor tu = In(u), tpos = In(pos), tneg = In(neg), tlqp = In(lqp), tlqn = In(lqn);
      double got = 0.0;
      if (host()) {
        got = plans().SampledSoftmaxForward(tu, tpos, tneg, tlqp, tlqn, o, &tws);
        plans().SampledSoftmaxBackward(tu, tpos, tneg, 0.5f, &tws, &tdu, &tdpos, &tdneg);
      } else {
        got = SampledSoftmaxForward(tu, tpos, tneg, tlqp, tlqn, o, &tws);
        SampledSoftmaxBackward(tu, tpos, tneg, tlqp, tlqn, 0.5f, &tws, &tdu, &tdpos, &tdneg);
      }
      const std::string at = " S=" + std::to_string(s) + (remove ? " remove" : "");
      EXPECT_NEAR(got, loss, 1e-5 * (1.0 + std::fabs(loss))) << "sampled_softmax loss" << at;
      ExpectClose(ws.probs, tws.probs, "sampled_softmax probs" + at);
      ExpectClose(du, tdu, "sampled_softmax du" + at);
      ExpectClose(dpos, tdpos, "sampled_softmax dpos" + at);
      ExpectClose(dneg, tdneg, "sampled_softmax dneg" + at);
    }
  }
  for (const bool empty_mask : {false, true}) {
    const int64_t b = 6, t = 9, d = 5;
    std::mt19937 rng(empty_mask);
    Tensor h = RandomTensor({b, t, d}, &rng), ep = RandomTensor({b, t, d}, &rng);
    Tensor en = RandomTensor({b, t, d}, &rng);
    Tensor mask = empty_mask ? Tensor::Zeros({b, t}) : Mask(b, t, &rng);
    Tensor dh = RandomTensor(h.shape(), &rng), dep = RandomTensor(h.shape(), &rng);
    Tensor den = RandomTensor(h.shape(), &rng), tdh = In(dh), tdep = In(dep), tden = In(den);
    const double loss = DienAuxLossForward(h, ep, en, mask);
    DienAuxLossBackward(h, ep, en, mask, 0.8f, &dh, &dep, &den);
    Tensor th = In(h), tep = In(ep), ten = In(en), tmask = In(mask);
    double got = 0.0;
    if (host()) {
      got = plans().DienAuxLossForward(th, tep, ten, tmask);
      plans().DienAuxLossBackward(th, tep, ten, tmask, 0.8f, &tdh, &tdep, &tden);
    } else {
      got = DienAuxLossForward(th, tep, ten, tmask);
      DienAuxLossBackward(th, tep, ten, tmask, 0.8f, &tdh, &tdep, &tden);
    }
    EXPECT_NEAR(got, loss, 1e-5 * (1.0 + std::fabs(loss))) << "dien_aux loss";
    ExpectClose(dh, tdh, "dien_aux dh");
    ExpectClose(dep, tdep, "dien_aux de_pos");
    ExpectClose(den, tden, "dien_aux de_neg");
  }
  std::mt19937 rng(3);
  Tensor x = RandomTensor({513}, &rng, -30.0f, 30.0f), p = Tensor::Empty({513});
  Tensor tp = In(Tensor::Zeros({513}));
  SigmoidProbabilities(x, &p);
  if (host())
    plans().SigmoidProbabilities(In(x), &tp);
  else
    SigmoidProbabilities(In(x), &tp);
  ExpectClose(p, tp, "sigmoid_probabilities");
}

TEST_P(TwinTest, FeatureInteractions) {
  const Device dev = host() ? Device::kCPU : Device::kCUDA;
  for (const Shape& s : {Shape{1, 2, 1}, Shape{7, 5, 4}, Shape{33, 9, 8}}) {
    const int64_t b = s[0], f = s[1], d = s[2], r = SenetHiddenSize(f, 2), na = 6;
    std::mt19937 rng(b + f + d);
    Tensor e = RandomTensor(s, &rng), dout = RandomTensor(s, &rng), de = RandomTensor(s, &rng);
    const SenetParams sp{RandomTensor({f, r}, &rng), RandomTensor({r}, &rng),
                         RandomTensor({r, f}, &rng), RandomTensor({f}, &rng)};
    SenetParams sg{RandomTensor({f, r}, &rng), RandomTensor({r}, &rng), RandomTensor({r, f}, &rng),
                   RandomTensor({f}, &rng)};
    const SenetParams tsp{In(sp.w1), In(sp.b1), In(sp.w2), In(sp.b2)};
    SenetParams tsg{In(sg.w1), In(sg.b1), In(sg.w2), In(sg.b2)};
    Tensor te = In(e), tdout = In(dout), tde = In(de), tout = In(Tensor::Zeros(s));
    auto ws = SenetWorkspace::Allocate(b, f, r), tws = SenetWorkspace::Allocate(b, f, r, dev);
    Tensor out = Tensor::Empty(s);
    SenetForward(e, sp, &ws, &out);
    SenetBackward(e, sp, dout, &ws, &de, &sg);
    if (host()) {
      plans().SenetForward(te, tsp, &tws, &tout);
      plans().SenetBackward(te, tsp, tdout, &tws, &tde, &tsg);
    } else {
      SenetForward(te, tsp, &tws, &tout);
      SenetBackward(te, tsp, tdout, &tws, &tde, &tsg);
    }
    const std::string at = " " + ShapeToString(s);
    ExpectClose(out, tout, "senet out" + at);
    ExpectClose(de, tde, "senet de" + at, 1e-4f, 1e-3f);
    ExpectClose(sg.w1, tsg.w1, "senet dw1" + at, 1e-4f, 1e-3f);
    ExpectClose(sg.b2, tsg.b2, "senet db2" + at, 1e-4f, 1e-3f);
    // AFM over the same fields.
    const AfmParams ap{RandomTensor({d, na}, &rng), RandomTensor({na}, &rng),
                       RandomTensor({na}, &rng)};
    AfmParams ag{RandomTensor({d, na}, &rng), RandomTensor({na}, &rng), RandomTensor({na}, &rng)};
    const AfmParams tap{In(ap.w), In(ap.b), In(ap.h)};
    AfmParams tag{In(ag.w), In(ag.b), In(ag.h)};
    auto aws = AfmWorkspace::Allocate(b, f, d, na), taws = AfmWorkspace::Allocate(b, f, d, na, dev);
    Tensor aout = Tensor::Empty({b, d}), taout = In(Tensor::Zeros({b, d}));
    Tensor adout = RandomTensor({b, d}, &rng), dv = RandomTensor(s, &rng), tdv = In(dv);
    AfmForward(e, ap, &aws, &aout);
    AfmBackward(e, ap, adout, &aws, &dv, &ag);
    if (host()) {
      plans().AfmForward(te, tap, &taws, &taout);
      plans().AfmBackward(te, tap, In(adout), &taws, &tdv, &tag);
    } else {
      AfmForward(te, tap, &taws, &taout);
      AfmBackward(te, tap, In(adout), &taws, &tdv, &tag);
    }
    ExpectClose(aout, taout, "afm out" + at);
    ExpectClose(dv, tdv, "afm dv" + at, 1e-4f, 1e-3f);
    ExpectClose(ag.w, tag.w, "afm dw" + at, 1e-4f, 1e-3f);
    ExpectClose(ag.b, tag.b, "afm db" + at, 1e-4f, 1e-3f);
    ExpectClose(ag.h, tag.h, "afm dh" + at, 1e-4f, 1e-3f);
  }
  // The scaled sigmoid gate (POSO, LHUC).
  std::mt19937 rng(12);
  Tensor h = RandomTensor({37, 11}, &rng), g = RandomTensor({37, 11}, &rng, -4.0f, 4.0f);
  Tensor dout = RandomTensor(h.shape(), &rng), dh = RandomTensor(h.shape(), &rng);
  Tensor dg = RandomTensor(h.shape(), &rng), tdh = In(dh), tdg = In(dg);
  Tensor out = Tensor::Empty(h.shape()), tout = In(Tensor::Zeros(h.shape()));
  PosoGateForward(h, g, &out, 3.0f);
  PosoGateBackward(h, g, dout, &dh, &dg, 3.0f);
  if (host()) {
    plans().GateForward(In(h), In(g), 3.0f, &tout);
    plans().GateBackward(In(h), In(g), 3.0f, In(dout), &tdh, &tdg);
  } else {
    PosoGateForward(In(h), In(g), &tout, 3.0f);
    PosoGateBackward(In(h), In(g), In(dout), &tdh, &tdg, 3.0f);
  }
  ExpectClose(out, tout, "poso out");
  ExpectClose(dh, tdh, "poso dh");
  ExpectClose(dg, tdg, "poso dg");
}

TEST_P(TwinTest, MultiInterest) {
  const Device dev = host() ? Device::kCPU : Device::kCUDA;
  struct Case {
    int64_t b, t, d, da, k;
  };
  for (const Case c : {Case{1, 1, 1, 1, 1}, Case{5, 9, 6, 7, 3}, Case{17, 30, 16, 12, 4}}) {
    std::mt19937 rng(c.b + c.t);
    Tensor h = RandomTensor({c.b, c.t, c.d}, &rng), mask = Mask(c.b, c.t, &rng);
    const ComiRecSaParams p{RandomTensor({c.t, c.d}, &rng), RandomTensor({c.d, c.da}, &rng),
                            RandomTensor({c.da, c.k}, &rng)};
    ComiRecSaParams g{RandomTensor({c.t, c.d}, &rng), RandomTensor({c.d, c.da}, &rng),
                      RandomTensor({c.da, c.k}, &rng)};
    const ComiRecSaParams tp{In(p.position), In(p.w1), In(p.w2)};
    ComiRecSaParams tg{In(g.position), In(g.w1), In(g.w2)};
    Tensor di = RandomTensor({c.b, c.k, c.d}, &rng), dh = RandomTensor(h.shape(), &rng);
    Tensor tdh = In(dh), ti = In(Tensor::Zeros({c.b, c.k, c.d}));
    auto ws = ComiRecSaWorkspace::Allocate(c.b, c.t, c.d, c.da, c.k);
    auto tws = ComiRecSaWorkspace::Allocate(c.b, c.t, c.d, c.da, c.k, dev);
    Tensor interests = Tensor::Empty({c.b, c.k, c.d});
    ComiRecSaForward(h, mask, p, &ws, &interests);
    ComiRecSaBackward(h, mask, p, di, &ws, &dh, &g);
    Tensor th = In(h), tmask = In(mask), tdi = In(di);
    if (host()) {
      plans().ComiRecSaForward(th, tmask, tp, &tws, &ti);
      plans().ComiRecSaBackward(th, tmask, tp, tdi, &tws, &tdh, &tg);
    } else {
      ComiRecSaForward(th, tmask, tp, &tws, &ti);
      ComiRecSaBackward(th, tmask, tp, tdi, &tws, &tdh, &tg);
    }
    const std::string at = " B=" + std::to_string(c.b) + " T=" + std::to_string(c.t);
    ExpectClose(interests, ti, "comirec_sa interests" + at);
    ExpectClose(dh, tdh, "comirec_sa dh" + at, 1e-4f, 1e-3f);
    ExpectClose(g.position, tg.position, "comirec_sa dposition" + at, 1e-4f, 1e-3f);
    ExpectClose(g.w1, tg.w1, "comirec_sa dw1" + at, 1e-4f, 1e-3f);
    ExpectClose(g.w2, tg.w2, "comirec_sa dw2" + at, 1e-4f, 1e-3f);
    // Capsule routing (ComiRec-DR) over the same history, Dc = da.
    const int64_t dc = c.da;
    Tensor w = RandomTensor({c.t, c.k, dc, c.d}, &rng), u = Tensor::Empty({c.b, c.t, c.k, dc});
    Tensor tu = In(Tensor::Zeros(u.shape())), tw = In(w);
    BilinearCapsuleMapForward(h, w, &u);
    Tensor coupling = Tensor::Empty({c.b, c.k, c.t}),
           tcoupling = In(Tensor::Zeros(coupling.shape()));
    DynamicRoutingCoefficients(u, mask, 3, &coupling);
    Tensor caps_s = Tensor::Empty({c.b, c.k, dc}), v = Tensor::Empty({c.b, c.k, dc});
    Tensor ts = In(Tensor::Zeros(caps_s.shape())), tv = In(Tensor::Zeros(v.shape()));
    RoutedCapsulesForward(u, coupling, &caps_s, &v);
    Tensor dv = RandomTensor(v.shape(), &rng), du = RandomTensor(u.shape(), &rng), tdu = In(du);
    RoutedCapsulesBackward(u, coupling, caps_s, dv, &du);
    Tensor de = RandomTensor(h.shape(), &rng), dw = RandomTensor(w.shape(), &rng);
    Tensor tde = In(de), tdw = In(dw), tdv = In(dv);
    if (host()) {
      plans().BilinearCapsuleMapForward(th, tw, &tu);
      plans().DynamicRoutingCoefficients(tu, tmask, 3, &tcoupling);
      plans().RoutedCapsulesForward(tu, tcoupling, &ts, &tv);
      plans().RoutedCapsulesBackward(tu, tcoupling, ts, tdv, &tdu);
    } else {
      BilinearCapsuleMapForward(th, tw, &tu);
      DynamicRoutingCoefficients(tu, tmask, 3, &tcoupling);
      RoutedCapsulesForward(tu, tcoupling, &ts, &tv);
      RoutedCapsulesBackward(tu, tcoupling, ts, tdv, &tdu);
    }
    // The map's backward from the CPU's d_u_hat on both sides.
    BilinearCapsuleMapBackward(h, w, du, &de, &dw);
    if (host())
      plans().BilinearCapsuleMapBackward(th, tw, In(du), &tde, &tdw);
    else
      BilinearCapsuleMapBackward(th, tw, In(du), &tde, &tdw);
    ExpectClose(u, tu, "capsule u_hat" + at, 1e-4f, 1e-4f);
    ExpectClose(coupling, tcoupling, "routing coupling" + at, 1e-4f, 1e-3f);
    ExpectClose(v, tv, "routed v" + at, 1e-4f, 1e-3f);
    ExpectClose(du, tdu, "routed d_u_hat" + at, 1e-4f, 1e-3f);
    ExpectClose(de, tde, "capsule de" + at, 1e-4f, 1e-3f);
    ExpectClose(dw, tdw, "capsule dw" + at, 1e-4f, 1e-3f);
  }
}

TEST_P(TwinTest, AdditiveAttention) {
  const Device dev = host() ? Device::kCPU : Device::kCUDA;
  struct Case {
    int64_t b, t, dq, dk, a;
    bool masked, d_weights;
  };
  for (const Case c : {Case{1, 1, 1, 1, 1, false, false}, Case{6, 11, 5, 7, 9, true, true},
                       Case{20, 40, 16, 16, 8, true, false}}) {
    std::mt19937 rng(c.b + c.t);
    const AdditiveAttentionParams p{RandomTensor({c.dq, c.a}, &rng),
                                    RandomTensor({c.dk, c.a}, &rng), RandomTensor({c.a}, &rng),
                                    RandomTensor({c.a}, &rng)};
    AdditiveAttentionParams g{RandomTensor({c.dq, c.a}, &rng), RandomTensor({c.dk, c.a}, &rng),
                              RandomTensor({c.a}, &rng), RandomTensor({c.a}, &rng)};
    const AdditiveAttentionParams tp{In(p.wq), In(p.wk), In(p.b), In(p.v)};
    AdditiveAttentionParams tg{In(g.wq), In(g.wk), In(g.b), In(g.v)};
    Tensor q = RandomTensor({c.b, c.dq}, &rng), k = RandomTensor({c.b, c.t, c.dk}, &rng);
    Tensor mask = c.masked ? Mask(c.b, c.t, &rng) : Tensor();
    Tensor dw = c.d_weights ? RandomTensor({c.b, c.t}, &rng) : Tensor();
    Tensor dp = RandomTensor({c.b, c.dk}, &rng), dq = RandomTensor(q.shape(), &rng);
    Tensor dk = RandomTensor(k.shape(), &rng), tdq = In(dq), tdk = In(dk);
    auto ws = AdditiveAttentionWorkspace::Allocate(c.b, c.t, c.a);
    auto tws = AdditiveAttentionWorkspace::Allocate(c.b, c.t, c.a, dev);
    Tensor w = Tensor::Empty({c.b, c.t}), pooled = Tensor::Empty({c.b, c.dk});
    Tensor tw = In(Tensor::Zeros(w.shape())), tpooled = In(Tensor::Zeros(pooled.shape()));
    AdditiveAttentionForward(q, k, mask, p, &ws, &w, &pooled);
    AdditiveAttentionBackward(q, k, mask, p, w, dw, dp, &ws, &dq, &dk, &g);
    Tensor tq = In(q), tk = In(k), tmask = In(mask), tdw = In(dw), tdp = In(dp);
    if (host()) {
      plans().AdditiveAttentionForward(tq, tk, tmask, tp, &tws, &tw, &tpooled);
      plans().AdditiveAttentionBackward(tq, tk, tp, tw, tdw, tdp, &tws, &tdq, &tdk, &tg);
    } else {
      AdditiveAttentionForward(tq, tk, tmask, tp, &tws, &tw, &tpooled);
      AdditiveAttentionBackward(tq, tk, tmask, tp, tw, tdw, tdp, &tws, &tdq, &tdk, &tg);
    }
    const std::string at = " B=" + std::to_string(c.b) + " T=" + std::to_string(c.t);
    ExpectClose(w, tw, "additive weights" + at);
    ExpectClose(pooled, tpooled, "additive pooled" + at);
    ExpectClose(dq, tdq, "additive dq" + at, 1e-4f, 1e-3f);
    ExpectClose(dk, tdk, "additive dk" + at, 1e-4f, 1e-3f);
    ExpectClose(g.wq, tg.wq, "additive dwq" + at, 1e-4f, 1e-3f);
    ExpectClose(g.wk, tg.wk, "additive dwk" + at, 1e-4f, 1e-3f);
    ExpectClose(g.b, tg.b, "additive db" + at, 1e-4f, 1e-3f);
    ExpectClose(g.v, tg.v, "additive dv" + at, 1e-4f, 1e-3f);
  }
}

TEST_P(TwinTest, JaggedDinAttention) {
  const Device dev = host() ? Device::kCPU : Device::kCUDA;
  for (const std::vector<int32_t>& off :
       {std::vector<int32_t>{0, 1}, std::vector<int32_t>{0, 3, 3, 10, 11},
        std::vector<int32_t>{0, 40, 41, 90, 150, 150, 200, 260}}) {
    for (const auto norm : {AttentionNormalization::kNone, AttentionNormalization::kSoftmax}) {
      const JaggedOffsets offsets(off);
      const int64_t b = offsets.batch(), n = offsets.total(), d = 8, h1 = 12, h2 = 6;
      std::mt19937 rng(n + static_cast<int>(norm));
      const DinAttentionOptions o{norm, DinActivation::kSigmoid};
      const DinAttentionParams p = RandomDinParams(d, h1, h2, &rng);
      DinAttentionParams g = RandomDinParams(d, h1, h2, &rng);
      const DinAttentionParams tp{In(p.w1), In(p.b1), In(p.w2), In(p.b2), In(p.w3), In(p.b3)};
      DinAttentionParams tg{In(g.w1), In(g.b1), In(g.w2), In(g.b2), In(g.w3), In(g.b3)};
      Tensor q = RandomTensor({b, d}, &rng), k = RandomTensor({n, d}, &rng);
      Tensor dp = RandomTensor({b, d}, &rng), dw = RandomTensor({n}, &rng);
      Tensor dq = RandomTensor(q.shape(), &rng), dk = RandomTensor(k.shape(), &rng);
      Tensor tdq = In(dq), tdk = In(dk);
      auto ws = JaggedDinAttentionWorkspace::Allocate(n, b, d, h1, h2);
      auto tws = JaggedDinAttentionWorkspace::Allocate(n, b, d, h1, h2, dev);
      Tensor w = Tensor::Empty({n}), pooled = Tensor::Empty({b, d});
      Tensor tw = In(Tensor::Zeros({n})), tpooled = In(Tensor::Zeros({b, d}));
      JaggedDinAttentionForward(q, k, offsets, p, o, &ws, &w, &pooled);
      JaggedDinAttentionBackward(q, k, offsets, p, o, w, dw, dp, &ws, &dq, &dk, &g);
      Tensor tq = In(q), tk = In(k), tdp = In(dp), tdw = In(dw);
      if (host()) {
        plans().JaggedDinAttentionForward(tq, tk, offsets, tp, o, &tws, &tw, &tpooled);
        plans().JaggedDinAttentionBackward(tq, tk, offsets, tp, o, tw, tdw, tdp, &tws, &tdq, &tdk,
                                           &tg);
      } else {
        JaggedDinAttentionForward(tq, tk, offsets, tp, o, &tws, &tw, &tpooled);
        JaggedDinAttentionBackward(tq, tk, offsets, tp, o, tw, tdw, tdp, &tws, &tdq, &tdk, &tg);
      }
      const std::string at = " B=" + std::to_string(b) + " N=" + std::to_string(n) +
                             (norm == AttentionNormalization::kNone ? " raw" : " softmax");
      ExpectClose(w, tw, "jagged_din weights" + at);
      ExpectClose(pooled, tpooled, "jagged_din pooled" + at, 1e-4f, 1e-4f);
      ExpectClose(dq, tdq, "jagged_din dq" + at, 1e-4f, 1e-3f);
      ExpectClose(dk, tdk, "jagged_din dk" + at, 1e-4f, 1e-3f);
      ExpectClose(g.w1, tg.w1, "jagged_din dw1" + at, 1e-4f, 1e-3f);
      ExpectClose(g.b1, tg.b1, "jagged_din db1" + at, 1e-4f, 1e-3f);
      ExpectClose(g.w2, tg.w2, "jagged_din dw2" + at, 1e-4f, 1e-3f);
      ExpectClose(g.w3, tg.w3, "jagged_din dw3" + at, 1e-4f, 1e-3f);
      ExpectClose(g.b3, tg.b3, "jagged_din db3" + at, 1e-4f, 1e-3f);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, TwinTest,
                         ::testing::Values(Backend::kHostPlans, Backend::kDevice,
                                           Backend::kDeviceOneBlock),
                         BackendName);

// Duplicate keys: L lookups of U keys, summed per key in lookup order.
TEST(CudaSumDuplicateRows, HostPlanSumsEachKeysRows) {
  const int64_t d = 5;
  const std::vector<int64_t> keys = {7, 3, 7, 9, 3, 7};
  std::mt19937 rng(3);
  Tensor grads = RandomTensor({static_cast<int64_t>(keys.size()), d}, &rng);
  // Group by key (first appearance order): 7 -> {0, 2, 5}, 3 -> {1, 4}, 9 -> {3}.
  const std::vector<int32_t> order = {0, 2, 5, 1, 4, 3}, starts = {0, 3, 5, 6};
  Tensor out = Tensor::Zeros({3, d}), ref = Tensor::Zeros({3, d});
  for (int64_t u = 0; u < 3; ++u)
    for (int32_t k = starts[u]; k < starts[u + 1]; ++k)
      for (int64_t j = 0; j < d; ++j) ref[u * d + j] += grads[order[k] * d + j];
  HostExec exec;
  cuda::OpPlans<HostExec>(&exec).SumDuplicateRows(grads, order.data(), starts.data(), 3, &out);
  ExpectClose(ref, out, "sum_duplicate_rows", 0.0f, 0.0f);
}

#ifdef ATTNPS_WITH_CUDA
TEST(CudaBatchedMatmul, EveryTransposeMatchesCpu) {
  if (!CudaAvailable()) GTEST_SKIP() << "no GPU visible";
  const int64_t g = 3, m = 17, k = 9, p = 33;
  for (const bool ta : {false, true}) {
    for (const bool tb : {false, true}) {
      std::mt19937 rng(ta * 2 + tb);
      Tensor a = RandomTensor(ta ? Shape{g, k, m} : Shape{g, m, k}, &rng);
      Tensor b = RandomTensor(tb ? Shape{g, p, k} : Shape{g, k, p}, &rng);
      Tensor dc = RandomTensor({g, m, p}, &rng);
      Tensor c = Tensor::Empty({g, m, p}), da = RandomTensor(a.shape(), &rng);
      Tensor db = RandomTensor(b.shape(), &rng);
      Tensor gc = Tensor::Zeros({g, m, p}, Device::kCUDA), gda = da.Clone(Device::kCUDA);
      Tensor gdb = db.Clone(Device::kCUDA);
      const Tensor ga = a.Clone(Device::kCUDA), gb = b.Clone(Device::kCUDA);
      BatchedMatmulForward(a, ta, b, tb, &c);
      BatchedMatmulBackward(a, ta, b, tb, dc, &da, &db);
      BatchedMatmulForward(ga, ta, gb, tb, &gc);
      BatchedMatmulBackward(ga, ta, gb, tb, dc.Clone(Device::kCUDA), &gda, &gdb);
      const std::string at = std::string(" ta=") + (ta ? "1" : "0") + " tb=" + (tb ? "1" : "0");
      ExpectClose(c, gc, "batched_matmul c" + at);
      ExpectClose(da, gda, "batched_matmul da" + at);
      ExpectClose(db, gdb, "batched_matmul db" + at);
    }
  }
}

// Multi-head attention runs its projections, the core over in-place heads and (self-attention)
// the packed q, k, v columns on the device: checked there only (its pieces are checked above).
TEST(CudaMultiHeadAttention, SelfAndCrossAttentionMatchCpu) {
  if (!CudaAvailable()) GTEST_SKIP() << "no GPU visible";
  const int64_t b = 5, t = 11, d = 12, heads = 3, dh = 4;
  for (const bool self : {false, true}) {
    std::mt19937 rng(self);
    auto w = [&](int64_t r, int64_t c) { return RandomTensor({r, c}, &rng); };
    auto bias = [&](int64_t c) { return RandomTensor({c}, &rng); };
    const MultiHeadAttentionParams p{w(d, heads * dh), bias(heads * dh), w(d, heads * dh), Tensor(),
                                     w(d, heads * dh), bias(heads * dh), w(heads * dh, d), bias(d)};
    MultiHeadAttentionParams g = MultiHeadAttentionParams::ZerosLike(p);
    auto on_device = [](const MultiHeadAttentionParams& x) {
      auto c = [](const Tensor& t) { return t.empty() ? Tensor() : t.Clone(Device::kCUDA); };
      return MultiHeadAttentionParams{c(x.wq), c(x.bq), c(x.wk), c(x.bk),
                                      c(x.wv), c(x.bv), c(x.wo), c(x.bo)};
    };
    const MultiHeadAttentionParams tp = on_device(p);
    MultiHeadAttentionParams tg = on_device(g);
    const int64_t tq = self ? t : 2;
    Tensor keys = RandomTensor({b, t, d}, &rng);
    Tensor query = self ? keys : RandomTensor({b, tq, d}, &rng);
    Tensor mask = Mask(b, t, &rng), d_out = RandomTensor({b, tq, d}, &rng);
    const MultiHeadAttentionOptions o{heads, self};
    auto ws = self ? MultiHeadAttentionWorkspace::AllocateSelf(b, t, heads, dh, dh)
                   : MultiHeadAttentionWorkspace::Allocate(b, tq, t, heads, dh, dh);
    auto tws = self ? MultiHeadAttentionWorkspace::AllocateSelf(b, t, heads, dh, dh, Device::kCUDA)
                    : MultiHeadAttentionWorkspace::Allocate(b, tq, t, heads, dh, dh, Device::kCUDA);
    Tensor out = Tensor::Empty({b, tq, d}), d_keys = Tensor::Zeros({b, t, d});
    Tensor d_query = self ? d_keys : Tensor::Zeros({b, tq, d});
    MultiHeadAttentionForward(query, keys, mask, p, o, &ws, &out);
    MultiHeadAttentionBackward(query, keys, mask, p, o, d_out, &ws, &d_query, &d_keys, &g);
    Tensor tkeys = keys.Clone(Device::kCUDA);
    Tensor tquery = self ? tkeys : query.Clone(Device::kCUDA);
    Tensor tout = Tensor::Zeros({b, tq, d}, Device::kCUDA);
    Tensor td_keys = Tensor::Zeros({b, t, d}, Device::kCUDA);
    Tensor td_query = self ? td_keys : Tensor::Zeros({b, tq, d}, Device::kCUDA);
    const Tensor tmask = mask.Clone(Device::kCUDA), tdo = d_out.Clone(Device::kCUDA);
    MultiHeadAttentionForward(tquery, tkeys, tmask, tp, o, &tws, &tout);
    MultiHeadAttentionBackward(tquery, tkeys, tmask, tp, o, tdo, &tws, &td_query, &td_keys, &tg);
    const std::string at = self ? " self" : " cross";
    ExpectClose(out, tout, "mha out" + at);
    ExpectClose(d_keys, td_keys, "mha d_keys" + at, 1e-4f, 1e-3f);
    if (!self) ExpectClose(d_query, td_query, "mha d_query" + at, 1e-4f, 1e-3f);
    ExpectClose(g.wq, tg.wq, "mha dwq" + at, 1e-4f, 1e-3f);
    ExpectClose(g.wk, tg.wk, "mha dwk" + at, 1e-4f, 1e-3f);
    ExpectClose(g.wv, tg.wv, "mha dwv" + at, 1e-4f, 1e-3f);
    ExpectClose(g.bv, tg.bv, "mha dbv" + at, 1e-4f, 1e-3f);
    ExpectClose(g.wo, tg.wo, "mha dwo" + at, 1e-4f, 1e-3f);
  }
}

// MakeDenseOptimizer on the device: state there, Step through the device updates.
TEST(CudaDenseOptimizer, StateOnTheDeviceMatchesCpu) {
  if (!CudaAvailable()) GTEST_SKIP() << "no GPU visible";
  std::mt19937 rng(4);
  for (const DenseOptimizerKind kind :
       {DenseOptimizerKind::kSgd, DenseOptimizerKind::kAdam, DenseOptimizerKind::kAdagrad}) {
    DenseOptimizerOptions o;
    o.kind = kind;
    o.sgd.momentum = 0.9f;
    Tensor p = RandomTensor({300}, &rng), tp = p.Clone(Device::kCUDA);
    auto cpu = MakeDenseOptimizer(o, 300), gpu = MakeDenseOptimizer(o, 300, Device::kCUDA);
    for (int s = 0; s < 4; ++s) {
      Tensor g = RandomTensor({300}, &rng);
      cpu->Step(g, &p);
      gpu->Step(g.Clone(Device::kCUDA), &tp);
    }
    ExpectClose(p, tp, "optimizer params kind=" + std::to_string(static_cast<int>(kind)));
    const auto cs = cpu->Slots(), gs = gpu->Slots();
    ASSERT_EQ(cs.size(), gs.size());
    for (size_t i = 0; i < cs.size(); ++i) {
      EXPECT_EQ(gs[i].tensor.device(), Device::kCUDA);
      ExpectClose(cs[i].tensor, gs[i].tensor, "optimizer slot " + cs[i].name);
    }
  }
}

// K = 0 (a batch of empty histories, an empty projection): C = beta C, as the CPU GEMM does.
TEST(CudaBatchedMatmul, ZeroInnerDimensionAccumulatesNothing) {
  if (!CudaAvailable()) GTEST_SKIP() << "no GPU visible";
  std::mt19937 rng(2);
  Tensor a = RandomTensor({3, 4, 0}, &rng), b = RandomTensor({3, 0, 5}, &rng);
  Tensor dc = RandomTensor({3, 4, 5}, &rng), da = RandomTensor({3, 4, 0}, &rng);
  Tensor db = RandomTensor({3, 0, 5}, &rng), c = Tensor::Empty({3, 4, 5});
  Tensor gc = RandomTensor({3, 4, 5}, &rng).Clone(Device::kCUDA);
  BatchedMatmulForward(a, false, b, false, &c);
  BatchedMatmulForward(a.Clone(Device::kCUDA), false, b.Clone(Device::kCUDA), false, &gc);
  ExpectClose(c, gc, "batched_matmul c with K = 0", 0.0f, 0.0f);
  Tensor x = RandomTensor({6, 0}, &rng), w = RandomTensor({0, 3}, &rng), y = Tensor::Empty({6, 3});
  Tensor bias = RandomTensor({3}, &rng), gy = Tensor::Zeros({6, 3}, Device::kCUDA);
  LinearForward(x, w, bias, &y);
  LinearForward(x.Clone(Device::kCUDA), w.Clone(Device::kCUDA), bias.Clone(Device::kCUDA), &gy);
  ExpectClose(y, gy, "linear y with I = 0", 0.0f, 0.0f);
}

// A jagged workspace made for the CPU (the default) is remade on the device by the forward.
TEST(CudaJaggedDin, AHostWorkspaceIsRemadeOnTheDevice) {
  if (!CudaAvailable()) GTEST_SKIP() << "no GPU visible";
  std::mt19937 rng(8);
  const std::vector<int32_t> off = {0, 2, 5};
  const JaggedOffsets offsets(off);
  const DinAttentionParams p = RandomDinParams(4, 6, 3, &rng);
  const DinAttentionParams tp{p.w1.Clone(Device::kCUDA), p.b1.Clone(Device::kCUDA),
                              p.w2.Clone(Device::kCUDA), p.b2.Clone(Device::kCUDA),
                              p.w3.Clone(Device::kCUDA), p.b3.Clone(Device::kCUDA)};
  Tensor q = RandomTensor({2, 4}, &rng), k = RandomTensor({5, 4}, &rng);
  JaggedDinAttentionWorkspace ws, tws;
  Tensor w = Tensor::Empty({5}), pooled = Tensor::Empty({2, 4});
  Tensor tw = Tensor::Zeros({5}, Device::kCUDA), tpooled = Tensor::Zeros({2, 4}, Device::kCUDA);
  const DinAttentionOptions o;
  JaggedDinAttentionForward(q, k, offsets, p, o, &ws, &w, &pooled);
  JaggedDinAttentionForward(q.Clone(Device::kCUDA), k.Clone(Device::kCUDA), offsets, tp, o, &tws,
                            &tw, &tpooled);
  EXPECT_EQ(tws.x.device(), Device::kCUDA);
  ExpectClose(pooled, tpooled, "jagged_din pooled");
}

TEST(CudaMathMode, Tf32AndBf16StayNearFp32) {
  if (!CudaAvailable()) GTEST_SKIP() << "no GPU visible";
  std::mt19937 rng(11);
  Tensor x = RandomTensor({256, 128}, &rng), w = RandomTensor({128, 64}, &rng);
  Tensor y = Tensor::Empty({256, 64});
  LinearForward(x, w, Tensor(), &y);
  for (const auto mode : {cuda::MathMode::kTf32, cuda::MathMode::kBf16}) {
    cuda::SetMathMode(mode);
    Tensor gy = Tensor::Zeros({256, 64}, Device::kCUDA);
    LinearForward(x.Clone(Device::kCUDA), w.Clone(Device::kCUDA), Tensor(), &gy);
    cuda::SetMathMode(cuda::MathMode::kFp32);
    // TF32 and BF16 keep 10 and 7 mantissa bits: about 1e-3 and 1e-2 of a 128-term sum of O(1).
    ExpectClose(y, gy, "linear y in reduced precision", 0.15f, 0.02f);
  }
}
#endif

TEST(CudaDispatch, MixedDevicesAreRefused) {
  if (!CudaAvailable()) GTEST_SKIP() << "no GPU visible";
  Tensor x = Tensor::Zeros({4, 3}, Device::kCUDA), y = Tensor::Zeros({4, 3});
  EXPECT_DEATH(ReluForward(x, &y), "relu_forward");
}

}  // namespace
}  // namespace attnps
