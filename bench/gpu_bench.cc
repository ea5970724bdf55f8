// gpu_bench: the dense work of a DIN, DIEN, BST and ComiRec-SA training step on the GPU (or the CPU
// with
// --device=cpu) beside its PyTorch twin (bench/gpu_din_torch.py, eager and torch.compile) in the
// same invocation. DIEN: GRU, target attention on its states, AUGRU, the head on the final
// state; BST: the history and target through one post-LN transformer block, masked mean, head;
// ComiRec-SA: multi-interest self-attention, label-aware selection, sampled softmax.
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
//   gpu_bench [--device=cuda|cpu] [--models=din,dien,bst,comirec_sa] [--b=2048] [--t=50,100]
//   [--d=36]
//             [--iters=20] [--no_torch]
//             [--no_compile] [--python=python3] [--torch_script=bench/gpu_din_torch.py]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ops/blas.h"
#include "ops/cuda_runtime_api.h"
#include "ops/ops.h"

namespace attnps {
namespace {

struct Flags {
  Device device = CudaAvailable() ? Device::kCUDA : Device::kCPU;
  int64_t b = 2048, d = 36, iters = 20;
  std::vector<int64_t> ts = {50, 100};
  std::vector<std::string> models = {"din", "dien", "bst", "comirec_sa"};
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
    } else if (const char* v = value("--models=")) {
      f.models.clear();
      for (std::string rest = v; !rest.empty();) {
        const size_t comma = rest.find(',');
        f.models.push_back(rest.substr(0, comma));
        rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
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

// Every trainable tensor of a step with its gradient and Adam's moments.
class Weights {
 public:
  explicit Weights(Device device) : dev_(device) {}
  // A weight [shape] drawn as nn.Linear draws (fan_in), or filled with `fill` when fan_in = 0.
  Tensor Add(const Shape& shape, int64_t fan_in, std::mt19937* rng, float fill = 0.0f) {
    Tensor p = fan_in > 0 ? Uniform(shape, fan_in, rng, dev_) : Tensor::Zeros(shape, dev_);
    if (fan_in == 0 && fill != 0.0f) p.Fill(fill);
    p_.push_back(p);
    g_.push_back(Tensor::Zeros(shape, dev_));
    m_.push_back(Tensor::Zeros(shape, dev_));
    v_.push_back(Tensor::Zeros(shape, dev_));
    return p;
  }
  // The gradient of the weight Add returned (the same buffer).
  Tensor& Grad(const Tensor& p) {
    for (size_t i = 0; i < p_.size(); ++i)
      if (p_[i].data() == p.data()) return g_[i];
    std::fprintf(stderr, "gpu_bench: not a weight\n");
    std::exit(2);
  }
  void ZeroGrads() {
    for (Tensor& g : g_) g.SetZero();
  }
  void Adam() {
    ++step_;
    const AdamOptions o;
    for (size_t i = 0; i < p_.size(); ++i) {
      const int64_t n = p_[i].numel();
      Tensor p = p_[i].Reshaped({n}), m = m_[i].Reshaped({n}), v = v_[i].Reshaped({n});
      AdamUpdate(o, 1e-3f, step_, g_[i].Reshaped({n}), &p, &m, &v);
    }
  }
  Device device() const { return dev_; }

 private:
  Device dev_;
  int64_t step_ = 0;
  std::vector<Tensor> p_, g_, m_, v_;
};

// The head on x = [q, rep] [B, 2D]: 2D -> 200 -> 80 -> 1 with ReLU, BCE with logits against
// the labels.
class Head {
 public:
  Head(int64_t b, int64_t d, Weights* w, std::mt19937* rng)
      : w_(w),
        d_(d),
        x_(Tensor::Zeros({b, 2 * d}, w->device())),
        dx_(Tensor::Zeros({b, 2 * d}, w->device())) {
    const int64_t sizes[] = {2 * d, 200, 80, 1};
    for (int l = 0; l < 3; ++l) {
      const Device dev = w->device();
      layers_.push_back(
          {w->Add({sizes[l], sizes[l + 1]}, sizes[l], rng), w->Add({sizes[l + 1]}, sizes[l], rng),
           Tensor::Zeros({b, sizes[l + 1]}, dev), Tensor::Zeros({b, sizes[l + 1]}, dev),
           Tensor::Zeros({b, sizes[l + 1]}, dev), Tensor::Zeros({b, sizes[l + 1]}, dev)});
    }
  }
  // Forward, loss and backward on [q, rep]: d_rep (and d_q when not null) = d loss / d them;
  // the weights' gradients added.
  void Train(const Tensor& q, const Tensor& rep, const Tensor& labels, Tensor* d_q, Tensor* d_rep) {
    CopyColumns(q, 0, &x_, 0, d_, false);
    CopyColumns(rep, 0, &x_, d_, d_, false);
    Train(x_, labels, &dx_);
    if (d_q) CopyColumns(dx_, 0, d_q, 0, d_, false);
    CopyColumns(dx_, d_, d_rep, 0, d_, false);
  }
  static double Flops(int64_t b, int64_t d) { return 2.0 * b * (2 * d * 200 + 200 * 80 + 80); }

 private:
  // Forward, loss and backward: dx (zeroed here) = d loss / dx.
  void Train(const Tensor& x, const Tensor& labels, Tensor* dx) {
    const size_t last = layers_.size() - 1;
    const Tensor* in = &x;
    for (size_t l = 0; l <= last; ++l) {
      LinearForward(*in, layers_[l].w, layers_[l].b, &layers_[l].z);
      if (l < last) ReluForward(layers_[l].z, &layers_[l].y);
      in = &layers_[l].y;
    }
    const int64_t b = x.dim(0);
    const Tensor logits = layers_[last].z.Reshaped({b});
    BceWithLogitsForward(logits, labels, Tensor());
    for (Layer& l : layers_) {
      l.dz.SetZero();
      l.dy.SetZero();
    }
    Tensor dlogits = layers_[last].dz.Reshaped({b});
    BceWithLogitsBackward(logits, labels, Tensor(), 1.0f, &dlogits);
    dx->SetZero();
    for (size_t l = last + 1; l-- > 0;) {
      const Tensor& input = l == 0 ? x : layers_[l - 1].y;
      Tensor* d_input = l == 0 ? dx : &layers_[l - 1].dy;
      LinearBackward(input, layers_[l].w, layers_[l].dz, d_input, &w_->Grad(layers_[l].w),
                     &w_->Grad(layers_[l].b));
      if (l > 0) ReluBackward(layers_[l - 1].y, layers_[l - 1].dy, &layers_[l - 1].dz);
    }
  }
  struct Layer {
    Tensor w, b, z, y, dz, dy;  // z = x w + b, y = relu(z); dz, dy their gradients
  };
  Weights* w_;
  int64_t d_;
  Tensor x_, dx_;
  std::vector<Layer> layers_;
};

// The inputs of every step: q [B, D] (the target), k [B, T, D] (the history), a prefix mask with
// lengths uniform in [1, T], 0/1 labels.
struct Inputs {
  Tensor q, k, mask, labels;
  Inputs(int64_t b, int64_t t, int64_t d, Device dev, std::mt19937* rng) {
    std::normal_distribution<float> normal;
    Tensor hq = Tensor::Empty({b, d}), hk = Tensor::Empty({b, t, d});
    Tensor hm = Tensor::Zeros({b, t}), hl = Tensor::Empty({b});
    for (int64_t i = 0; i < hq.numel(); ++i) hq[i] = normal(*rng);
    for (int64_t i = 0; i < hk.numel(); ++i) hk[i] = normal(*rng);
    std::uniform_int_distribution<int64_t> len(1, t);
    for (int64_t i = 0; i < b; ++i) {
      const int64_t n = len(*rng);
      for (int64_t j = 0; j < n; ++j) hm[i * t + j] = 1.0f;
      hl[i] = static_cast<float>((*rng)() & 1);
    }
    q = hq.Clone(dev), k = hk.Clone(dev), mask = hm.Clone(dev), labels = hl.Clone(dev);
  }
};

// One training step of a model's dense part; Flops() counts its multiply-adds x 2 (forward, and
// about twice that backward).
class Step {
 public:
  virtual ~Step() = default;
  virtual void Run() = 0;
  virtual double Flops() const = 0;
};

// DIN: the activation unit (raw scores, sigmoid, 80, 40), the head on [q, pooled].
class DinStep final : public Step {
 public:
  DinStep(const Inputs& in, std::mt19937* rng)
      : in_(in),
        w_(in.q.device()),
        b_(in.k.dim(0)),
        t_(in.k.dim(1)),
        d_(in.k.dim(2)),
        head_(b_, d_, &w_, rng) {
    const int64_t d = d_;
    unit_ = {w_.Add({4 * d, 80}, 4 * d, rng), w_.Add({80}, 4 * d, rng), w_.Add({80, 40}, 80, rng),
             w_.Add({40}, 80, rng),           w_.Add({40, 1}, 40, rng), w_.Add({1}, 40, rng)};
    grads_ = {w_.Grad(unit_.w1), w_.Grad(unit_.b1), w_.Grad(unit_.w2),
              w_.Grad(unit_.b2), w_.Grad(unit_.w3), w_.Grad(unit_.b3)};
    const Device dev = w_.device();
    ws_ = DinAttentionWorkspace::Allocate(b_, t_, d, 80, 40, dev);
    weights_ = Tensor::Zeros({b_, t_}, dev);
    pooled_ = Tensor::Zeros({b_, d}, dev);
    dq_ = Tensor::Zeros({b_, d}, dev);
    dk_ = Tensor::Zeros({b_, t_, d}, dev);
    d_pooled_ = Tensor::Zeros({b_, d}, dev);
  }
  void Run() override {
    const DinAttentionOptions o{AttentionNormalization::kNone, DinActivation::kSigmoid};
    w_.ZeroGrads();
    DinAttentionForward(in_.q, in_.k, in_.mask, unit_, o, &ws_, &weights_, &pooled_);
    head_.Train(in_.q, pooled_, in_.labels, &dq_, &d_pooled_);
    dk_.SetZero();
    DinAttentionBackward(in_.q, in_.k, in_.mask, unit_, o, weights_, Tensor(), d_pooled_, &ws_,
                         &dq_, &dk_, &grads_);
    w_.Adam();
  }
  double Flops() const override {
    const double n = static_cast<double>(b_) * t_, d = d_;
    return 3.0 * (2.0 * (n * (2 * d * 80 + 80 * 40 + 40 + d) + b_ * d * 80) + Head::Flops(b_, d_));
  }

 private:
  const Inputs& in_;
  Weights w_;
  int64_t b_, t_, d_;
  Head head_;
  DinAttentionParams unit_, grads_;
  DinAttentionWorkspace ws_;
  Tensor weights_, pooled_, dq_, dk_, d_pooled_;
};

// DIEN: a GRU over the history, attention of the target on its states (scaled dot product,
// masked softmax), an AUGRU driven by it, the head on [q, the final AUGRU state].
class DienStep final : public Step {
 public:
  DienStep(const Inputs& in, std::mt19937* rng)
      : in_(in),
        w_(in.q.device()),
        b_(in.k.dim(0)),
        t_(in.k.dim(1)),
        d_(in.k.dim(2)),
        head_(b_, d_, &w_, rng) {
    const int64_t d = d_;
    const Device dev = w_.device();
    for (GruParams* g : {&gru_, &augru_}) {
      *g = {w_.Add({d, 3 * d}, d, rng), w_.Add({d, 3 * d}, d, rng), w_.Add({3 * d}, d, rng)};
    }
    gru_g_ = {w_.Grad(gru_.wx), w_.Grad(gru_.wh), w_.Grad(gru_.b)};
    augru_g_ = {w_.Grad(augru_.wx), w_.Grad(augru_.wh), w_.Grad(augru_.b)};
    ws1_ = GruWorkspace::Allocate(b_, t_, d, d, dev);
    ws2_ = GruWorkspace::Allocate(b_, t_, d, d, dev);
    for (Tensor* x : {&states_, &states2_, &d_states_, &d_states2_, &dk_})
      *x = Tensor::Zeros({b_, t_, d}, dev);
    for (Tensor* x : {&scores_, &att_, &d_att_, &d_scores_}) *x = Tensor::Zeros({b_, t_}, dev);
    for (Tensor* x : {&final_, &dq_, &d_final_}) *x = Tensor::Zeros({b_, d}, dev);
  }
  void Run() override {
    const float scale = 1.0f / std::sqrt(static_cast<float>(d_));
    const Tensor q3 = in_.q.Reshaped({b_, 1, d_});
    Tensor scores3 = scores_.Reshaped({b_, 1, t_});
    w_.ZeroGrads();
    GruForward(in_.k, in_.mask, Tensor(), gru_, &ws1_, &states_);
    BatchedMatmulForward(q3, false, states_, true, &scores3);
    MaskedSoftmaxForward(scores_, in_.mask, scale, &att_);
    AugruForward(states_, in_.mask, att_, Tensor(), augru_, &ws2_, &states2_);
    CopyColumns(states2_.Reshaped({b_, t_ * d_}), (t_ - 1) * d_, &final_, 0, d_, false);
    head_.Train(in_.q, final_, in_.labels, nullptr, &d_final_);
    for (Tensor* g : {&d_states2_, &d_states_, &dk_, &d_att_, &d_scores_, &dq_}) g->SetZero();
    Tensor d_states2 = d_states2_.Reshaped({b_, t_ * d_});
    CopyColumns(d_final_, 0, &d_states2, (t_ - 1) * d_, d_, false);
    AugruBackward(states_, in_.mask, att_, Tensor(), augru_, d_states2_, &ws2_, &d_states_, nullptr,
                  &d_att_, &augru_g_);
    MaskedSoftmaxBackward(att_, d_att_, scale, &d_scores_);
    Tensor dq3 = dq_.Reshaped({b_, 1, d_});
    BatchedMatmulBackward(q3, false, states_, true, d_scores_.Reshaped({b_, 1, t_}), &dq3,
                          &d_states_);
    GruBackward(in_.k, in_.mask, Tensor(), gru_, d_states_, &ws1_, &dk_, nullptr, &gru_g_);
    w_.Adam();
  }
  double Flops() const override {
    const double n = static_cast<double>(b_) * t_, d = d_;
    const double gru = 2.0 * n * (d * 3 * d + d * 3 * d);
    return 3.0 * (2 * gru + 2.0 * 2 * n * d + Head::Flops(b_, d_));
  }

 private:
  const Inputs& in_;
  Weights w_;
  int64_t b_, t_, d_;
  Head head_;
  GruParams gru_, augru_, gru_g_, augru_g_;
  GruWorkspace ws1_, ws2_;
  Tensor states_, states2_, d_states_, d_states2_, dk_, scores_, att_, d_att_, d_scores_, final_,
      dq_, d_final_;
};

// BST: the history with the target appended, one post-LayerNorm transformer encoder block (2
// heads, FFN 4D, ReLU, no dropout) over it, the masked mean of its outputs; the head on
// [q, pooled].
class BstStep final : public Step {
 public:
  BstStep(const Inputs& in, std::mt19937* rng)
      : in_(in),
        w_(in.q.device()),
        b_(in.k.dim(0)),
        l_(in.k.dim(1) + 1),
        d_(in.k.dim(2)),
        head_(b_, d_, &w_, rng) {
    const int64_t d = d_, f = 4 * d_, n = b_ * l_;
    const Device dev = w_.device();
    mha_ = {w_.Add({d, d}, d, rng), w_.Add({d}, d, rng),    w_.Add({d, d}, d, rng),
            w_.Add({d}, d, rng),    w_.Add({d, d}, d, rng), w_.Add({d}, d, rng),
            w_.Add({d, d}, d, rng), w_.Add({d}, d, rng)};
    mha_g_ = {w_.Grad(mha_.wq), w_.Grad(mha_.bq), w_.Grad(mha_.wk), w_.Grad(mha_.bk),
              w_.Grad(mha_.wv), w_.Grad(mha_.bv), w_.Grad(mha_.wo), w_.Grad(mha_.bo)};
    ln1_g_ = w_.Add({d}, 0, rng, 1.0f), ln1_b_ = w_.Add({d}, 0, rng);
    ln2_g_ = w_.Add({d}, 0, rng, 1.0f), ln2_b_ = w_.Add({d}, 0, rng);
    w1_ = w_.Add({d, f}, d, rng), b1_ = w_.Add({f}, d, rng);
    w2_ = w_.Add({f, d}, f, rng), b2_ = w_.Add({d}, f, rng);
    ws_ = MultiHeadAttentionWorkspace::AllocateSelf(b_, l_, 2, d / 2, d / 2, dev);
    seq_ = Tensor::Zeros({b_, l_, d}, dev);
    Tensor seq2 = seq_.Reshaped({b_, l_ * d});
    CopyColumns(in_.k.Reshaped({b_, (l_ - 1) * d}), 0, &seq2, 0, (l_ - 1) * d, false);
    CopyColumns(in_.q, 0, &seq2, (l_ - 1) * d, d, false);
    mask_ = Tensor::Zeros({b_, l_}, dev);
    mask_.Fill(1.0f);
    CopyColumns(in_.mask, 0, &mask_, 0, l_ - 1, false);
    for (Tensor* x : {&att_, &h1_, &n1_, &f2_, &h2_, &n2_, &d_seq_, &d_h1_, &d_n1_, &d_h2_, &d_n2_})
      *x = Tensor::Zeros({n, d}, dev);
    for (Tensor* x : {&f1z_, &f1y_, &d_f1z_, &d_f1y_}) *x = Tensor::Zeros({n, f}, dev);
    for (Tensor* x : {&mean1_, &rstd1_, &mean2_, &rstd2_}) *x = Tensor::Zeros({n}, dev);
    pooled_ = Tensor::Zeros({b_, d}, dev);
    d_pooled_ = Tensor::Zeros({b_, d}, dev);
  }
  void Run() override {
    const int64_t d = d_;
    const MultiHeadAttentionOptions o{2, false};
    const Tensor seq = seq_.Reshaped({b_ * l_, d});
    Tensor att3 = att_.Reshaped({b_, l_, d});
    w_.ZeroGrads();
    MultiHeadAttentionForward(seq_, seq_, mask_, mha_, o, &ws_, &att3);
    h1_.CopyFrom(att_);
    CopyColumns(seq, 0, &h1_, 0, d, true);
    LayerNormForward(h1_, ln1_g_, ln1_b_, kLayerNormEps, &n1_, &mean1_, &rstd1_);
    LinearForward(n1_, w1_, b1_, &f1z_);
    ReluForward(f1z_, &f1y_);
    LinearForward(f1y_, w2_, b2_, &f2_);
    h2_.CopyFrom(f2_);
    CopyColumns(n1_, 0, &h2_, 0, d, true);
    LayerNormForward(h2_, ln2_g_, ln2_b_, kLayerNormEps, &n2_, &mean2_, &rstd2_);
    MaskedMeanPoolForward(n2_.Reshaped({b_, l_, d}), mask_, &pooled_);
    head_.Train(in_.q, pooled_, in_.labels, nullptr, &d_pooled_);
    for (Tensor* g : {&d_n2_, &d_h2_, &d_f1y_, &d_f1z_, &d_n1_, &d_h1_, &d_seq_}) g->SetZero();
    Tensor d_n2 = d_n2_.Reshaped({b_, l_, d});
    MaskedMeanPoolBackward(mask_, d_pooled_, &d_n2);
    LayerNormBackward(h2_, ln2_g_, mean2_, rstd2_, d_n2_, &d_h2_, &w_.Grad(ln2_g_),
                      &w_.Grad(ln2_b_));
    LinearBackward(f1y_, w2_, d_h2_, &d_f1y_, &w_.Grad(w2_), &w_.Grad(b2_));
    ReluBackward(f1y_, d_f1y_, &d_f1z_);
    LinearBackward(n1_, w1_, d_f1z_, &d_n1_, &w_.Grad(w1_), &w_.Grad(b1_));
    CopyColumns(d_h2_, 0, &d_n1_, 0, d, true);
    LayerNormBackward(h1_, ln1_g_, mean1_, rstd1_, d_n1_, &d_h1_, &w_.Grad(ln1_g_),
                      &w_.Grad(ln1_b_));
    Tensor d_seq3 = d_seq_.Reshaped({b_, l_, d});
    MultiHeadAttentionBackward(seq_, seq_, mask_, mha_, o, d_h1_.Reshaped({b_, l_, d}), &ws_,
                               &d_seq3, &d_seq3, &mha_g_);
    CopyColumns(d_h1_, 0, &d_seq_, 0, d, true);
    w_.Adam();
  }
  double Flops() const override {
    const double n = static_cast<double>(b_) * l_, d = d_, f = 4 * d_;
    const double block = 2.0 * n * (4 * d * d + 2 * d * f) + 2.0 * 2 * n * l_ * d;
    return 3.0 * (block + Head::Flops(b_, d_));
  }

 private:
  const Inputs& in_;
  Weights w_;
  int64_t b_, l_, d_;
  Head head_;
  MultiHeadAttentionParams mha_, mha_g_;
  MultiHeadAttentionWorkspace ws_;
  Tensor ln1_g_, ln1_b_, ln2_g_, ln2_b_, w1_, b1_, w2_, b2_;
  Tensor seq_, mask_, att_, h1_, n1_, f1z_, f1y_, f2_, h2_, n2_, mean1_, rstd1_, mean2_, rstd2_;
  Tensor d_seq_, d_h1_, d_n1_, d_f1z_, d_f1y_, d_h2_, d_n2_, pooled_, d_pooled_;
};

// ComiRec-SA: K = 4 interests by self-attention (Da = 4D) over the history with position
// embeddings, the target's label-aware softmax over the interests (MIND's form; ComiRec's argmax
// picks one at the same cost), sampled softmax against S = 1024 shared negatives (no log-Q).
class ComiRecStep final : public Step {
 public:
  static constexpr int64_t kInterests = 4, kNegatives = 1024;
  ComiRecStep(const Inputs& in, std::mt19937* rng)
      : in_(in), w_(in.q.device()), b_(in.k.dim(0)), t_(in.k.dim(1)), d_(in.k.dim(2)) {
    const int64_t d = d_, da = 4 * d_, k = kInterests;
    const Device dev = w_.device();
    p_ = {w_.Add({t_, d}, d, rng), w_.Add({d, da}, d, rng), w_.Add({da, k}, da, rng)};
    g_ = {w_.Grad(p_.position), w_.Grad(p_.w1), w_.Grad(p_.w2)};
    ws_ = ComiRecSaWorkspace::Allocate(b_, t_, d, da, k, dev);
    neg_ = Uniform({kNegatives, d}, 1, rng, dev);
    lq_pos_ = Tensor::Zeros({b_}, dev), lq_neg_ = Tensor::Zeros({kNegatives}, dev);
    sws_ = SampledSoftmaxWorkspace::Allocate(b_, kNegatives, dev);
    for (Tensor* x : {&interests_, &d_interests_}) *x = Tensor::Zeros({b_, k, d}, dev);
    for (Tensor* x : {&scores_, &sel_, &d_sel_, &d_scores_}) *x = Tensor::Zeros({b_, k}, dev);
    for (Tensor* x : {&u_, &du_, &dq_}) *x = Tensor::Zeros({b_, d}, dev);
    dneg_ = Tensor::Zeros({kNegatives, d}, dev);
    dh_ = Tensor::Zeros({b_, t_, d}, dev);
  }
  void Run() override {
    const int64_t k = kInterests;
    const Tensor q3 = in_.q.Reshaped({b_, d_, 1});
    Tensor scores3 = scores_.Reshaped({b_, k, 1}), sel3 = sel_.Reshaped({b_, 1, k});
    Tensor u3 = u_.Reshaped({b_, 1, d_});
    w_.ZeroGrads();
    ComiRecSaForward(in_.k, in_.mask, p_, &ws_, &interests_);
    BatchedMatmulForward(interests_, false, q3, false, &scores3);
    MaskedSoftmaxForward(scores_, Tensor(), 1.0f, &sel_);
    BatchedMatmulForward(sel3, false, interests_, false, &u3);
    SampledSoftmaxForward(u_, in_.q, neg_, lq_pos_, lq_neg_, SampledSoftmaxOptions(), &sws_);
    for (Tensor* g : {&du_, &dq_, &dneg_, &d_interests_, &d_sel_, &d_scores_, &dh_}) g->SetZero();
    SampledSoftmaxBackward(u_, in_.q, neg_, lq_pos_, lq_neg_, 1.0f, &sws_, &du_, &dq_, &dneg_);
    Tensor d_sel3 = d_sel_.Reshaped({b_, 1, k});
    BatchedMatmulBackward(sel3, false, interests_, false, du_.Reshaped({b_, 1, d_}), &d_sel3,
                          &d_interests_);
    MaskedSoftmaxBackward(sel_, d_sel_, 1.0f, &d_scores_);
    Tensor dq3 = dq_.Reshaped({b_, d_, 1});
    BatchedMatmulBackward(interests_, false, q3, false, d_scores_.Reshaped({b_, k, 1}),
                          &d_interests_, &dq3);
    ComiRecSaBackward(in_.k, in_.mask, p_, d_interests_, &ws_, &dh_, &g_);
    w_.Adam();
  }
  double Flops() const override {
    const double n = static_cast<double>(b_) * t_, d = d_, da = 4 * d_, k = kInterests;
    return 3.0 * 2.0 *
           (n * (d * da + da * k) + b_ * k * t_ * d + 2 * b_ * k * d + b_ * kNegatives * d);
  }

 private:
  const Inputs& in_;
  Weights w_;
  int64_t b_, t_, d_;
  ComiRecSaParams p_, g_;
  ComiRecSaWorkspace ws_;
  SampledSoftmaxWorkspace sws_;
  Tensor neg_, lq_pos_, lq_neg_, interests_, d_interests_, scores_, sel_, d_sel_, d_scores_, u_,
      du_, dq_, dneg_, dh_;
};

std::unique_ptr<Step> MakeStep(const std::string& model, const Inputs& in, std::mt19937* rng) {
  if (model == "din") return std::make_unique<DinStep>(in, rng);
  if (model == "dien") return std::make_unique<DienStep>(in, rng);
  if (model == "bst") return std::make_unique<BstStep>(in, rng);
  if (model == "comirec_sa") return std::make_unique<ComiRecStep>(in, rng);
  std::fprintf(stderr, "gpu_bench: unknown model %s (din, dien, bst, comirec_sa)\n", model.c_str());
  std::exit(2);
}

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
void TorchMs(const Flags& f, const std::string& model, int64_t t, double* eager, double* compiled) {
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
  const std::string cmd = f.python + " " + f.torch_script + " --model=" + model +
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
  for (const std::string& model : f.models) {
    for (size_t i = 0; i < f.ts.size(); ++i) {
      const int64_t t = f.ts[i];
      std::mt19937 rng(7);
      const Inputs in(f.b, t, f.d, f.device, &rng);
      std::unique_ptr<Step> step = MakeStep(model, in, &rng);
      const double ms = MedianMs(f.iters, f.device, [&] { step->Run(); });
      const double gemm = GemmGflops(f, f.b * t);
      double eager = NAN, compiled = NAN;
      TorchMs(f, model, t, &eager, &compiled);
      std::printf(
          "%s T=%lld: step %.3f ms, %.1f GFLOP/s (one GEMM [%lld x %lld x 80]: %.1f "
          "GFLOP/s); torch eager %.3f ms (%.2fx), torch.compile %.3f ms (%.2fx)\n",
          model.c_str(), static_cast<long long>(t), ms, step->Flops() / (ms * 1e6),
          static_cast<long long>(f.b * t), static_cast<long long>(2 * f.d), gemm, eager, eager / ms,
          compiled, compiled / ms);
      std::fflush(stdout);
      if (model == "din" && i == 0) first_eager = eager / ms, first_compile = compiled / ms;
    }
  }
  std::printf("din_vs_torch_eager=%.3f din_vs_torch_compile=%.3f\n", first_eager, first_compile);
  return 0;
}

}  // namespace
}  // namespace attnps

int main(int argc, char** argv) { return attnps::Main(argc, argv); }
