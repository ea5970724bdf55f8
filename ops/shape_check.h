// ShapeCheck: validates an op's tensor arguments before any memory is touched.
//
// Usage:
//   Dim B("B"), I("I"), O("O");
//   ShapeCheck("linear_forward")
//       .Arg("x", x, {&B, &I}).Arg("w", w, {&I, &O}).Arg("y", *y, {&B, &O}).Done();
// A Dim is bound by the first argument that names it and compared afterwards. On a violation
// Done() CHECK-fails with the op name, the problem and every argument's shape, e.g.
//   "linear_forward: w dim 0 is 37, expected I=36 (x=[128, 36] w=[37, 40] y=[128, 40])".
// Bad shapes are a caller bug (the model builder validates configs), hence CHECK, not Status.
#ifndef ATTNPS_OPS_SHAPE_CHECK_H_
#define ATTNPS_OPS_SHAPE_CHECK_H_

#include <cstdint>
#include <initializer_list>
#include <string>

#include "ops/tensor.h"

namespace attnps {

class Dim {
 public:
  explicit Dim(const char* name) : name_(name) {}
  Dim(const char* name, int64_t fixed) : name_(name), value_(fixed) {}
  const char* name() const { return name_; }
  int64_t value() const { return value_; }
  bool bound() const { return value_ >= 0; }
  void Bind(int64_t v) { value_ = v; }

 private:
  const char* name_;
  int64_t value_ = -1;
};

class ShapeCheck {
 public:
  explicit ShapeCheck(const char* op, Device device = Device::kCPU) : op_(op), device_(device) {}
  ShapeCheck(const ShapeCheck&) = delete;
  ShapeCheck& operator=(const ShapeCheck&) = delete;
  ~ShapeCheck() { Done(); }

  // Requires `t` to have exactly dims.size() dimensions matching `dims`, on this check's device.
  ShapeCheck& Arg(const char* name, const Tensor& t, std::initializer_list<Dim*> dims);
  // As Arg, but an empty tensor (the "absent" optional argument) passes.
  ShapeCheck& Optional(const char* name, const Tensor& t, std::initializer_list<Dim*> dims);
  // Requires `t` to have the shape of `like` (typically a gradient buffer and its input).
  ShapeCheck& Like(const char* name, const Tensor& t, const Tensor& like);
  // An extra condition on the bound dims or hyper-parameters; `what` describes the requirement.
  ShapeCheck& Require(bool condition, const std::string& what);
  // CHECK-fails on the first recorded violation. Idempotent.
  void Done();

 private:
  void Fail(const std::string& problem);

  const char* op_;
  Device device_;
  std::string shapes_;
  std::string problem_;
  bool done_ = false;
};

}  // namespace attnps

#endif  // ATTNPS_OPS_SHAPE_CHECK_H_
