#include "ops/shape_check.h"

#include <glog/logging.h>

namespace attnps {

ShapeCheck& ShapeCheck::Arg(const char* name, const Tensor& t, std::initializer_list<Dim*> dims) {
  shapes_ += (shapes_.empty() ? "" : " ") + std::string(name) + "=" + t.ShapeString();
  if (!problem_.empty()) return *this;
  if (t.ndim() != static_cast<int>(dims.size())) {
    std::string want = "[";
    for (const Dim* d : dims) want += std::string(want.size() > 1 ? ", " : "") + d->name();
    Fail(std::string(name) + " has rank " + std::to_string(t.ndim()) + ", expected " + want + "]");
    return *this;
  }
  if (t.numel() > 0 && t.device() != device_) {
    Fail(std::string(name) + " is on the wrong device");
    return *this;
  }
  if (t.numel() > 0 && t.data() == nullptr) {
    Fail(std::string(name) + " has no data");
    return *this;
  }
  int i = 0;
  for (Dim* d : dims) {
    const int64_t got = t.shape()[i];
    if (!d->bound()) {
      d->Bind(got);
    } else if (d->value() != got) {
      Fail(std::string(name) + " dim " + std::to_string(i) + " is " + std::to_string(got) +
           ", expected " + d->name() + "=" + std::to_string(d->value()));
      return *this;
    }
    ++i;
  }
  return *this;
}

ShapeCheck& ShapeCheck::Optional(const char* name, const Tensor& t,
                                 std::initializer_list<Dim*> dims) {
  if (t.empty() && t.ndim() == 0) {
    shapes_ += (shapes_.empty() ? "" : " ") + std::string(name) + "=(none)";
    return *this;
  }
  return Arg(name, t, dims);
}

ShapeCheck& ShapeCheck::Like(const char* name, const Tensor& t, const Tensor& like) {
  shapes_ += (shapes_.empty() ? "" : " ") + std::string(name) + "=" + t.ShapeString();
  if (!problem_.empty()) return *this;
  if (t.shape() != like.shape()) {
    Fail(std::string(name) + " must have shape " + like.ShapeString());
  } else if (t.numel() > 0 && (t.device() != device_ || t.data() == nullptr)) {
    Fail(std::string(name) + " has no data on this device");
  }
  return *this;
}

ShapeCheck& ShapeCheck::Require(bool condition, const std::string& what) {
  if (!condition && problem_.empty()) Fail("requires " + what);
  return *this;
}

void ShapeCheck::Fail(const std::string& problem) {
  if (problem_.empty()) problem_ = problem;
}

void ShapeCheck::Done() {
  if (done_) return;
  done_ = true;
  LOG_IF(FATAL, !problem_.empty()) << op_ << ": " << problem_ << " (" << shapes_ << ")";
}

}  // namespace attnps
