// Buffer: an owned byte buffer for one message. Allocation does not zero-fill (a 4 MB reply is
// written once, by its producer), and the data is aligned for any scalar type.
// Thread-safety: none (a value type; move it between threads).
#ifndef ATTNPS_PS_BUFFER_H_
#define ATTNPS_PS_BUFFER_H_

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace attnps::ps {

class Buffer {
 public:
  Buffer() = default;
  // `size` bytes of uninitialized memory.
  explicit Buffer(size_t size) : data_(size > 0 ? new char[size] : nullptr), size_(size) {}
  // A copy of `bytes`.
  static Buffer Copy(std::string_view bytes) {
    Buffer b(bytes.size());
    if (!bytes.empty()) std::memcpy(b.data(), bytes.data(), bytes.size());
    return b;
  }

  char* data() { return data_.get(); }
  const char* data() const { return data_.get(); }
  size_t size() const { return size_; }
  std::string_view view() const { return {data_.get(), size_}; }

 private:
  std::unique_ptr<char[]> data_;
  size_t size_ = 0;
};

}  // namespace attnps::ps

#endif  // ATTNPS_PS_BUFFER_H_
