// gpu_bench: a DIN training step's dense work on the GPU (or the CPU with --device=cpu) beside
// its PyTorch twin (bench/gpu_din_torch.py, eager and torch.compile) in the same invocation.
//
// The step: the DIN activation unit (padded, raw scores, sigmoid, H1 = 80, H2 = 40) over
// q [B, D] and k [B, T, D], the head MLP on [q, pooled] (2D -> 200 -> 80 -> 1, ReLU), BCE with
// logits, backward through all of it and Adam on every weight: the shapes of the twin, weights
// drawn as PyTorch's nn.Linear draws them. The embedding pull and push are not in it (the PS
// side has its own benchmarks). Prints per T the median step time, the achieved GFLOP/s (our
// ops' multiply-adds x 2) and those of one cuBLAS (CPU: attnps::Gemm) GEMM of the unit's main
// shape, then the twin's times; the last line is
//   din_vs_torch_eager=<torch eager ms / ours> din_vs_torch_compile=<torch.compile ms / ours>
// for the first T (nan where the twin could not run).
//
//   gpu_bench [--device=cuda|cpu] [--b=2048] [--t=50,100] [--d=36] [--iters=20] [--no_torch]
//             [--no_compile] [--python=python3] [--torch_script=bench/gpu_din_torch.py]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ops/blas.h"
#include "ops/cuda_runtime_api.h"
#include "ops/ops.h"
#ifdef ATTNPS_WITH_CUDA
#include "ops/cuda/device_ops.h"
#endif

namespace attnps {
namespace {

struct Flags {
  Device device = CudaAvailable() ? Device::kCUDA : Device::kCPU;
  int64_t b = 2048, d = 36, iters = 20;
  std::vector<int64_t> ts = {50, 100};
  bool torch = true, compile = true;
  std::string python = "python3";
  std::string torch_script = "bench/gpu_din_torch.py";  // relative to the working directory
};

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* name) -> const char* {
      const size_t n = std::strlen(name);
      return a.compare(0, n, name) == 0 ? a.c_str() + n : nullptr;
    };
    if (const char* v = value("--device=")) {
      f.device = std::string(v) == "cpu" ? Device::kCPU : Device::kCUDA;
    } else if (const char* v = value("--b=")) {
      f.b = std::atoll(v);
    } else if (const char* v = value("--d=")) {
      f.d = std::atoll(v);
    } else if (const char* v = value("--iters=")) {
      f.iters = std::atoll(v);
    } else if (const char* v = value("--t=")) {
      f.ts.clear();
      for (const char* p = v; *p != '\0';) {
        f.ts.push_back(std::atoll(p));
        while (*p != '\0' && *p != ',') ++p;
        if (*p == ',') ++p;
      }
    } else if (const char* v = value("--python=")) {
      f.python = v;
    } else if (const char* v = value("--torch_script=")) {
      f.torch_script = v;
    } else if (a == "--no_torch") {
      f.torch = false;
    } else if (a == "--no_compile") {
      f.compile = false;
    } else {
      std::fprintf(stderr, "gpu_bench: unknown flag %s\n", a.c_str());
      std::exit(2);
    }
  }
  if (f.device == Device::kCUDA && !CudaAvailable()) {
    std::fprintf(stderr, "gpu_bench: --device=cuda but no GPU is visible (use --device=cpu)\n");
    std::exit(2);
  }
  return f;
}

// U(-1/sqrt(fan_in), 1/sqrt(fan_in)), nn.Linear's draw for weights and biases.
Tensor Uniform(const Shape& shape, int64_t fan_in, std::mt19937* rng, Device device) {
  const float bound = 1.0f / std::sqrt(static_cast<float>(fan_in));
  std::uniform_real_distribution<float> u(-bound, bound);
  Tensor t = Tensor::Empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = u(*rng);
  return t.Clone(device);
}

void Sync(Device device) {
  if (device == Device::kCUDA) cuda::Synchronize();
}

// dst[:, col0 : col0 + width] (+)= src[:, src_col0 : ...] on either device.
void Columns(const Tensor& src, int64_t src_col0, Tensor* dst, int64_t dst_col0, int64_t width,
             bool accumulate) {
  const int64_t rows = src.dim(0), sc = src.dim(1), dc = dst->dim(1);
#ifdef ATTNPS_WITH_CUDA
  if (src.device() == Device::kCUDA) {
    cuda::CopyColumns(src.data(), rows, sc, src_col0, dst->data(), dc, dst_col0, width, accumulate);
    return;
  }
#endif
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < width; ++c) {
      float& out = (*dst)[r * dc + dst_col0 + c];
      const float v = src[r * sc + src_col0 + c];
      out = accumulate ? out + v : v;
    }
}

// One head layer: z = x w + b, y = relu(z) (the last layer's z is the logits); dz, dy their
// gradients; m*, v* Adam's moments.
struct Layer {
  Tensor w, b, dw, db, mw, vw, mb, vb, z, y, dz, dy;
};

class DinStep {
 public:
  DinStep(const Flags& f, int64_t t, std::mt19937* rng) : dev_(f.device), b_(f.b), t_(t), d_(f.d) {
    const int64_t d = d_;
    unit_ = {Uniform({4 * d, 80}, 4 * d, rng, dev_), Uniform({80}, 4 * d, rng, dev_),
             Uniform({80, 40}, 80, rng, dev_),       Uniform({40}, 80, rng, dev_),
             Uniform({40, 1}, 40, rng, dev_),        Uniform({1}, 40, rng, dev_)};
    grads_ = DinAttentionParams::Zeros(d, 80, 40);
    for (Tensor* g : {&grads_.w1, &grads_.b1, &grads_.w2, &grads_.b2, &grads_.w3, &grads_.b3})
      *g = g->Clone(dev_);
    for (Tensor* p : {&unit_.w1, &unit_.b1, &unit_.w2, &unit_.b2, &unit_.w3, &unit_.b3}) {
      adam_m_.push_back(Tensor::Zeros(p->shape(), dev_));
      adam_v_.push_back(Tensor::Zeros(p->shape(), dev_));
    }
    const int64_t sizes[] = {2 * d, 200, 80, 1};
    for (int l = 0; l < 3; ++l) {
      const int64_t in = sizes[l], out = sizes[l + 1];
      head_.push_back({Uniform({in, out}, in, rng, dev_), Uniform({out}, in, rng, dev_),
                       Tensor::Zeros({in, out}, dev_), Tensor::Zeros({out}, dev_),
                       Tensor::Zeros({in, out}, dev_), Tensor::Zeros({in, out}, dev_),
                       Tensor::Zeros({out}, dev_), Tensor::Zeros({out}, dev_),
                       Tensor::Zeros({b_, out}, dev_), Tensor::Zeros({b_, out}, dev_),
                       Tensor::Zeros({b_, out}, dev_), Tensor::Zeros({b_, out}, dev_)});
    }
    std::normal_distribution<float> normal;
    Tensor q = Tensor::Empty({b_, d}), k = Tensor::Empty({b_, t, d});
    Tensor mask = Tensor::Zeros({b_, t}), labels = Tensor::Empty({b_});
    for (int64_t i = 0; i < q.numel(); ++i) q[i] = normal(*rng);
    for (int64_t i = 0; i < k.numel(); ++i) k[i] = normal(*rng);
    std::uniform_int_distribution<int64_t> len(1, t);
    for (int64_t i = 0; i < b_; ++i) {
      const int64_t n = len(*rng);
      for (int64_t j = 0; j < n; ++j) mask[i * t + j] = 1.0f;
      labels[i] = static_cast<float>((*rng)() & 1);
    }
    q_ = q.Clone(dev_), k_ = k.Clone(dev_), mask_ = mask.Clone(dev_), labels_ = labels.Clone(dev_);
    ws_ = DinAttentionWorkspace::Allocate(b_, t, d, 80, 40, dev_);
    weights_ = Tensor::Zeros({b_, t}, dev_);
    pooled_ = Tensor::Zeros({b_, d}, dev_);
    x_ = Tensor::Zeros({b_, 2 * d}, dev_);
    dx_ = Tensor::Zeros({b_, 2 * d}, dev_);
    dq_ = Tensor::Zeros({b_, d}, dev_);
    dk_ = Tensor::Zeros({b_, t, d}, dev_);
    d_pooled_ = Tensor::Zeros({b_, d}, dev_);
  }

  void Run() {
    const DinAttentionOptions o{AttentionNormalization::kNone, DinActivation::kSigmoid};
    DinAttentionForward(q_, k_, mask_, unit_, o, &ws_, &weights_, &pooled_);
    Columns(q_, 0, &x_, 0, d_, false);
    Columns(pooled_, 0, &x_, d_, d_, false);
    const Tensor* in = &x_;
    const size_t last = head_.size() - 1;
    for (size_t l = 0; l <= last; ++l) {
      LinearForward(*in, head_[l].w, head_[l].b, &head_[l].z);
      if (l < last) ReluForward(head_[l].z, &head_[l].y);
      in = &head_[l].y;
    }
    const Tensor logits = head_[last].z.Reshaped({b_});
    BceWithLogitsForward(logits, labels_, Tensor());
    for (Layer& l : head_) {
      for (Tensor* g : {&l.dz, &l.dy, &l.dw, &l.db}) g->SetZero();
    }
    Tensor dlogits = head_[last].dz.Reshaped({b_});
    BceWithLogitsBackward(logits, labels_, Tensor(), 1.0f, &dlogits);
    dx_.SetZero();
    for (size_t l = last + 1; l-- > 0;) {
      const Tensor& input = l == 0 ? x_ : head_[l - 1].y;
      Tensor* d_input = l == 0 ? &dx_ : &head_[l - 1].dy;
      LinearBackward(input, head_[l].w, head_[l].dz, d_input, &head_[l].dw, &head_[l].db);
      if (l > 0) ReluBackward(head_[l - 1].y, head_[l - 1].dy, &head_[l - 1].dz);
    }
    dq_.SetZero();
    dk_.SetZero();
    for (Tensor* g : {&grads_.w1, &grads_.b1, &grads_.w2, &grads_.b2, &grads_.w3, &grads_.b3})
      g->SetZero();
    Columns(dx_, 0, &dq_, 0, d_, false);
    Columns(dx_, d_, &d_pooled_, 0, d_, false);
    DinAttentionBackward(q_, k_, mask_, unit_, o, weights_, Tensor(), d_pooled_, &ws_, &dq_, &dk_,
                         &grads_);
    ++step_;
    const AdamOptions adam;
    Tensor* params[] = {&unit_.w1, &unit_.b1, &unit_.w2, &unit_.b2, &unit_.w3, &unit_.b3};
    Tensor* grads[] = {&grads_.w1, &grads_.b1, &grads_.w2, &grads_.b2, &grads_.w3, &grads_.b3};
    for (int i = 0; i < 6; ++i) Adam(adam, *grads[i], params[i], &adam_m_[i], &adam_v_[i]);
    for (Layer& l : head_) {
      Adam(adam, l.dw, &l.w, &l.mw, &l.vw);
      Adam(adam, l.db, &l.b, &l.mb, &l.vb);
    }
  }

  // Multiply-adds x 2 of one step: forward GEMMs and pooling, backward about twice.
  double Flops() const {
    const double n = static_cast<double>(b_) * t_, d = d_;
    const double unit = n * (2 * d * 80 + 80 * 40 + 40 + d) + b_ * d * 80;
    const double head = b_ * (2 * d * 200 + 200 * 80 + 80);
    return 2.0 * 3.0 * (unit + head);
  }
  int64_t rows() const { return b_ * t_; }

 private:
  // Adam over the tensors viewed flat (the views share the buffers).
  void Adam(const AdamOptions& o, const Tensor& g, Tensor* p, Tensor* m, Tensor* v) {
    const int64_t n = p->numel();
    Tensor fp = p->Reshaped({n}), fm = m->Reshaped({n}), fv = v->Reshaped({n});
    AdamUpdate(o, 1e-3f, step_, g.Reshaped({n}), &fp, &fm, &fv);
  }

  Device dev_;
  int64_t b_, t_, d_, step_ = 0;
  DinAttentionParams unit_, grads_;
  std::vector<Tensor> adam_m_, adam_v_;
  std::vector<Layer> head_;
  Tensor q_, k_, mask_, labels_, weights_, pooled_, x_, dx_, dq_, dk_, d_pooled_;
  DinAttentionWorkspace ws_;
};

template <typename F>
double MedianMs(int64_t iters, Device device, const F& f) {
  for (int i = 0; i < 3; ++i) f();
  Sync(device);
  std::vector<double> ms;
  for (int64_t i = 0; i < iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    Sync(device);
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// One GEMM of the unit's main shape [rows, 2D] x [2D, 80] on the device.
double GemmGflops(const Flags& f, int64_t rows) {
  std::mt19937 rng(1);
  const Tensor a = Uniform({rows, 2 * f.d}, 1, &rng, f.device);
  const Tensor w = Uniform({2 * f.d, 80}, 1, &rng, f.device);
  Tensor c = Tensor::Zeros({rows, 80}, f.device);
  const double ms = MedianMs(f.iters, f.device, [&] { LinearForward(a, w, Tensor(), &c); });
  return 2.0 * rows * 2 * f.d * 80 / (ms * 1e6);
}

// The twin's median step ms per mode ("eager", "compile"); NAN where it did not run.
void TorchMs(const Flags& f, int64_t t, double* eager, double* compiled) {
  *eager = *compiled = NAN;
  if (!f.torch) return;
  if (FILE* script = std::fopen(f.torch_script.c_str(), "r")) {
    std::fclose(script);
  } else {
    std::fprintf(stderr,
                 "gpu_bench: %s not found (run from the repository root or pass "
                 "--torch_script=PATH): the twin is left out\n",
                 f.torch_script.c_str());
    return;
  }
  const std::string cmd = f.python + " " + f.torch_script +
                          " --device=" + (f.device == Device::kCUDA ? "cuda" : "cpu") +
                          " --b=" + std::to_string(f.b) + " --t=" + std::to_string(t) +
                          " --d=" + std::to_string(f.d) + " --iters=" + std::to_string(f.iters) +
                          (f.compile ? "" : " --no_compile") + " 2>&1";
  std::fflush(stdout);
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return;
  char line[4096];
  while (std::fgets(line, sizeof line, p) != nullptr) {
    double v = 0;
    if (std::sscanf(line, "torch_eager_ms=%lf", &v) == 1) *eager = v;
    if (std::sscanf(line, "torch_compile_ms=%lf", &v) == 1) *compiled = v;
    if (std::strncmp(line, "torch_", 6) != 0) std::fprintf(stderr, "  [torch] %s", line);
  }
  pclose(p);
}

int Main(int argc, char** argv) {
  const Flags f = ParseFlags(argc, argv);
  std::printf("gpu_bench: device %s, B=%lld D=%lld, %lld timed steps per T (median)\n",
              f.device == Device::kCUDA ? "cuda" : "cpu", static_cast<long long>(f.b),
              static_cast<long long>(f.d), static_cast<long long>(f.iters));
  double first_eager = NAN, first_compile = NAN;
  for (size_t i = 0; i < f.ts.size(); ++i) {
    const int64_t t = f.ts[i];
    std::mt19937 rng(7);
    DinStep step(f, t, &rng);
    const double ms = MedianMs(f.iters, f.device, [&] { step.Run(); });
    const double gemm = GemmGflops(f, step.rows());
    double eager = NAN, compiled = NAN;
    TorchMs(f, t, &eager, &compiled);
    std::printf(
        "T=%lld: din step %.3f ms, %.1f GFLOP/s (one GEMM [%lld x %lld x 80]: %.1f "
        "GFLOP/s); torch eager %.3f ms (%.2fx), torch.compile %.3f ms (%.2fx)\n",
        static_cast<long long>(t), ms, step.Flops() / (ms * 1e6),
        static_cast<long long>(step.rows()), static_cast<long long>(2 * f.d), gemm, eager,
        eager / ms, compiled, compiled / ms);
    std::fflush(stdout);
    if (i == 0) first_eager = eager / ms, first_compile = compiled / ms;
  }
  std::printf("din_vs_torch_eager=%.3f din_vs_torch_compile=%.3f\n", first_eager, first_compile);
  return 0;
}

}  // namespace
}  // namespace attnps

int main(int argc, char** argv) { return attnps::Main(argc, argv); }
