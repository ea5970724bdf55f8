#include "ops/tensor.h"

#include <glog/logging.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "ops/cuda_runtime_api.h"

namespace attnps {
namespace {

constexpr size_t kCpuAlignment = 64;

std::shared_ptr<float> Allocate(int64_t count, Device device) {
  const size_t bytes = static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(float);
  if (device == Device::kCUDA) {
    return std::shared_ptr<float>(static_cast<float*>(cuda::Malloc(bytes)),
                                  [](float* p) { cuda::Free(p); });
  }
  const size_t rounded = (bytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
  void* p = std::aligned_alloc(kCpuAlignment, rounded);
  CHECK(p != nullptr) << "out of host memory allocating " << bytes << " bytes";
  return std::shared_ptr<float>(static_cast<float*>(p), [](float* q) { std::free(q); });
}

cuda::CopyKind KindOf(Device dst, Device src) {
  if (dst == Device::kCUDA && src == Device::kCUDA) return cuda::CopyKind::kDeviceToDevice;
  return dst == Device::kCUDA ? cuda::CopyKind::kHostToDevice : cuda::CopyKind::kDeviceToHost;
}

}  // namespace

std::string ShapeToString(const Shape& shape) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

int64_t NumElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    CHECK_GE(d, 0) << "negative dimension in shape " << ShapeToString(shape);
    n *= d;
  }
  return n;
}

Tensor::Tensor(std::shared_ptr<float> storage, float* data, Shape shape, Device device)
    : storage_(std::move(storage)),
      data_(data),
      shape_(std::move(shape)),
      numel_(NumElements(shape_)),
      device_(device) {}

Tensor Tensor::Empty(Shape shape, Device device) {
  const int64_t count = NumElements(shape);
  auto storage = Allocate(count, device);
  float* data = storage.get();
  Tensor t(std::move(storage), data, std::move(shape), device);
  t.capacity_ = count;
  return t;
}

void Tensor::EnsureShape(const Shape& shape) {
  if (shape_ != shape) *this = Empty(shape, device_);
}

void Tensor::EnsureCapacity(const Shape& shape) {
  if (shape_ == shape) return;
  const int64_t count = NumElements(shape);
  if (storage_ == nullptr || count > capacity_) {
    *this = Empty(shape, device_);
    return;
  }
  shape_ = shape;
  numel_ = count;
}

Tensor Tensor::Zeros(Shape shape, Device device) {
  Tensor t = Empty(std::move(shape), device);
  t.SetZero();
  return t;
}

Tensor Tensor::Filled(Shape shape, float value) {
  Tensor t = Empty(std::move(shape));
  t.Fill(value);
  return t;
}

Tensor Tensor::FromVector(Shape shape, const std::vector<float>& values) {
  Tensor t = Empty(std::move(shape));
  CHECK_EQ(t.numel(), static_cast<int64_t>(values.size()))
      << "FromVector: shape " << t.ShapeString() << " vs " << values.size() << " values";
  std::copy(values.begin(), values.end(), t.data());
  return t;
}

Tensor Tensor::View(float* data, Shape shape, Device device) {
  return Tensor(nullptr, data, std::move(shape), device);
}

Tensor Tensor::Reshaped(Shape shape) const {
  CHECK_EQ(NumElements(shape), numel_)
      << "Reshaped: " << ShapeString() << " -> " << ShapeToString(shape);
  return Tensor(storage_, data_, std::move(shape), device_);
}

Tensor Tensor::Rows(int64_t begin, int64_t end) const {
  CHECK(ndim() >= 1 && 0 <= begin && begin <= end && end <= shape_[0])
      << "Rows(" << begin << ", " << end << ") of " << ShapeString();
  Shape shape = shape_;
  shape[0] = end - begin;
  const int64_t row = shape_[0] ? numel_ / shape_[0] : 0;
  return Tensor(storage_, data_ + begin * row, std::move(shape), device_);
}

Tensor Tensor::Clone(Device device) const {
  Tensor t = Empty(shape_, device);
  t.CopyFrom(*this);
  return t;
}

void Tensor::CopyFrom(const Tensor& src) {
  CHECK_EQ(numel_, src.numel_) << "CopyFrom: " << src.ShapeString() << " -> " << ShapeString();
  const size_t bytes = static_cast<size_t>(numel_) * sizeof(float);
  if (bytes == 0) return;
  if (device_ == Device::kCPU && src.device_ == Device::kCPU) {
    std::memcpy(data_, src.data_, bytes);
  } else {
    cuda::Memcpy(data_, src.data_, bytes, KindOf(device_, src.device_));
  }
}

void Tensor::Fill(float value) {
  if (device_ == Device::kCUDA) {
    cuda::FillFloat(data_, static_cast<size_t>(numel_), value);
  } else {
    std::fill(data_, data_ + numel_, value);
  }
}

int64_t Tensor::dim(int i) const {
  const int n = ndim();
  const int k = i < 0 ? i + n : i;
  CHECK(k >= 0 && k < n) << "dim(" << i << ") of a tensor of shape " << ShapeString();
  return shape_[k];
}

std::vector<float> Tensor::ToVector() const {
  std::vector<float> out(static_cast<size_t>(numel_));
  if (numel_ == 0) return out;
  if (device_ == Device::kCPU) {
    std::memcpy(out.data(), data_, out.size() * sizeof(float));
  } else {
    cuda::Memcpy(out.data(), data_, out.size() * sizeof(float), cuda::CopyKind::kDeviceToHost);
  }
  return out;
}

bool CudaAvailable() { return cuda::DeviceAvailable(); }

}  // namespace attnps
