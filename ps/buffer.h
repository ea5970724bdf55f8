// Buffer: an owned byte buffer for one message. Allocation does not zero-fill (a 4 MB reply is
// written once, by its producer), and the data is aligned for any scalar type. Resize keeps the
// storage when it is large enough, so a receive loop reuses one buffer (no page faults).
// Thread-safety: none (a value type; move it between threads).
#ifndef ATTNPS_PS_BUFFER_H_
#define ATTNPS_PS_BUFFER_H_

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>
#include <utility>

namespace attnps::ps {

class Buffer {
 public:
  Buffer() = default;
  // `size` bytes of uninitialized memory.
  explicit Buffer(size_t size)
      : data_(size > 0 ? new char[size] : nullptr), size_(size), capacity_(size) {}
  Buffer(Buffer&& other) noexcept
      : data_(std::move(other.data_)), size_(other.size_), capacity_(other.capacity_) {
    other.size_ = other.capacity_ = 0;
  }
  Buffer& operator=(Buffer&& other) noexcept {
    if (this == &other) return *this;
    data_ = std::move(other.data_);
    size_ = other.size_;
    capacity_ = other.capacity_;
    other.size_ = other.capacity_ = 0;
    return *this;
  }
  // A copy of `bytes`.
  static Buffer Copy(std::string_view bytes) {
    Buffer b(bytes.size());
    if (!bytes.empty()) std::memcpy(b.data(), bytes.data(), bytes.size());
    return b;
  }

  char* data() { return data_.get(); }
  const char* data() const { return data_.get(); }
  size_t size() const { return size_; }
  // `size` bytes; the contents are kept only up to the old size when the storage is kept, and
  // are uninitialized otherwise.
  void Resize(size_t size) {
    if (size > capacity_) {
      data_.reset(new char[size]);
      capacity_ = size;
    }
    size_ = size;
  }
  std::string_view view() const { return {data_.get(), size_}; }

 private:
  std::unique_ptr<char[]> data_;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

}  // namespace attnps::ps

#endif  // ATTNPS_PS_BUFFER_H_
