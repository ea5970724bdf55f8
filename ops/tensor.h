// Tensor: a float32 n-d array in CPU or CUDA memory, owning its buffer or viewing another's.
//
// Ownership: an owning tensor shares its buffer with every copy and view made from it (the buffer
// lives while any of them does); View() over a raw pointer owns nothing and the caller keeps the
// memory alive. Copies are shallow; Clone() copies the data.
// Thread-safety: distinct tensors may be used from distinct threads; a buffer written by one thread
// must not be read by another without external synchronization.
// Errors: misuse (negative sizes, CPU access to CUDA memory, CUDA in a build without it)
// CHECK-fails.
#ifndef ATTNPS_OPS_TENSOR_H_
#define ATTNPS_OPS_TENSOR_H_

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace attnps {

enum class Device { kCPU, kCUDA };

using Shape = std::vector<int64_t>;

std::string ShapeToString(const Shape& shape);
int64_t NumElements(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;  // empty: numel() == 0, ndim() == 0, data() == nullptr

  static Tensor Empty(Shape shape, Device device = Device::kCPU);
  static Tensor Zeros(Shape shape, Device device = Device::kCPU);
  static Tensor Filled(Shape shape, float value);                           // CPU
  static Tensor FromVector(Shape shape, const std::vector<float>& values);  // CPU
  // Non-owning view of `data` (CPU or CUDA pointer as `device` says).
  static Tensor View(float* data, Shape shape, Device device = Device::kCPU);

  // A view of the same buffer with another shape of the same element count.
  Tensor Reshaped(Shape shape) const;
  // A view of rows [begin, end) along dimension 0.
  Tensor Rows(int64_t begin, int64_t end) const;
  // A deep copy on `device`.
  Tensor Clone(Device device) const;
  Tensor Clone() const { return Clone(device_); }
  // Makes this an owning tensor of `shape` (uninitialized, on this tensor's device) unless it
  // already has that shape, in which case its buffer (and contents) are kept.
  void EnsureShape(const Shape& shape);
  // As EnsureShape, but keeps the buffer (contents unspecified) whenever this tensor owns one
  // that holds `shape`: for tensors whose leading dimension varies from step to step (jagged
  // rows), so that they reallocate only to grow. Copies sharing the buffer see the writes.
  void EnsureCapacity(const Shape& shape);
  // Copies all elements from `src` (same element count; any devices).
  void CopyFrom(const Tensor& src);
  void Fill(float value);  // CPU or CUDA
  void SetZero() { Fill(0.0f); }

  float* data() const { return data_; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const;  // negative i counts from the end; CHECKs the range
  int64_t numel() const { return numel_; }
  bool empty() const { return numel_ == 0; }
  Device device() const { return device_; }
  bool owns_memory() const { return storage_ != nullptr; }
  std::string ShapeString() const { return ShapeToString(shape_); }

  // CPU element access (flat index), unchecked: for CPU tensors only.
  float& operator[](int64_t i) const { return data_[i]; }
  std::vector<float> ToVector() const;  // any device

 private:
  Tensor(std::shared_ptr<float> storage, float* data, Shape shape, Device device);

  std::shared_ptr<float> storage_;  // null for views of raw pointers
  float* data_ = nullptr;
  Shape shape_;
  int64_t numel_ = 0;
  int64_t capacity_ = 0;  // elements of the owned buffer from data_ (EnsureCapacity)
  Device device_ = Device::kCPU;
};

// True when the build has CUDA and a device is visible.
bool CudaAvailable();

}  // namespace attnps

#endif  // ATTNPS_OPS_TENSOR_H_
