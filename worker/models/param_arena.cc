#include "worker/models/param_arena.h"

#include <glog/logging.h>

#include <cmath>

#include "ops/random.h"

namespace attnps::models {
namespace {

// Separates the dense-model streams from other users of the same seed (embedding initializers).
constexpr uint64_t kSalt = 0x6d6f64656c73ull;  // "models"

int64_t TotalElements(const std::vector<Shape>& shapes) {
  int64_t n = 0;
  for (const Shape& s : shapes) n += NumElements(s);
  return n;
}

}  // namespace

ParamInit ParamInit::LinearLike(int64_t fan_in) {
  CHECK_GT(fan_in, 0);
  return {Kind::kUniform, static_cast<float>(1.0 / std::sqrt(static_cast<double>(fan_in)))};
}

void ParamArena::AddParam(const Shape& shape, const ParamInit& init, Tensor* value, Tensor* grad) {
  CHECK(!allocated_) << "AddParam after Allocate";
  CHECK(value != nullptr && grad != nullptr);
  params_decl_.push_back({shape, init, value, grad});
}

void ParamArena::AddBuffer(const Shape& shape, float fill, Tensor* value) {
  CHECK(!allocated_) << "AddBuffer after Allocate";
  CHECK(value != nullptr);
  buffers_decl_.push_back({shape, ParamInit::Constant(fill), value, nullptr});
}

void ParamArena::Allocate(uint64_t seed) {
  CHECK(!allocated_) << "Allocate called twice";
  allocated_ = true;
  std::vector<Shape> pshapes, bshapes;
  for (const Entry& e : params_decl_) pshapes.push_back(e.shape);
  for (const Entry& e : buffers_decl_) bshapes.push_back(e.shape);
  params_ = Tensor::Zeros({TotalElements(pshapes)});
  grads_ = Tensor::Zeros({TotalElements(pshapes)});
  buffers_ = Tensor::Zeros({TotalElements(bshapes)});

  int64_t offset = 0;
  for (size_t i = 0; i < params_decl_.size(); ++i) {
    const Entry& e = params_decl_[i];
    const int64_t n = NumElements(e.shape);
    *e.value = Tensor::View(params_.data() + offset, e.shape);
    *e.grad = Tensor::View(grads_.data() + offset, e.shape);
    const uint64_t key = StreamKey(seed, kSalt, i);
    for (int64_t j = 0; j < n; ++j) {
      (*e.value)[j] = e.init.kind == ParamInit::Kind::kUniform
                          ? (2.0f * StreamUniform(key, j) - 1.0f) * e.init.value
                          : e.init.value;
    }
    offset += n;
  }
  offset = 0;
  for (const Entry& e : buffers_decl_) {
    *e.value = Tensor::View(buffers_.data() + offset, e.shape);
    e.value->Fill(e.init.value);
    offset += NumElements(e.shape);
  }
}

}  // namespace attnps::models
