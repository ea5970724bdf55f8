// Problems: the list of "<field path>: <problem>" messages a config check collects, reported
// all at once; shared by the job validation (worker/config/validate.cc) and the checks of each
// model kind (worker/models/). Header-only, so that the models need no link to the config code.
// Also the limits on model settings that both use (docs/config.md).
// Thread-compatible: one Problems per check.
#ifndef ATTNPS_WORKER_CONFIG_PROBLEMS_H_
#define ATTNPS_WORKER_CONFIG_PROBLEMS_H_

#include <cmath>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "ops/status.h"

namespace attnps::config {

inline constexpr int kMaxLayerSize = 16384;  // model.mlp.hidden[i], attention layers
inline constexpr double kMaxEpsilon = 1;     // optimizer epsilons, model.mlp.dice_epsilon
// Elements of one tensor (per-batch tensor, weight matrix) and of all dense parameters: 8 GiB of
// floats, and within int32 indexing.
inline constexpr double kMaxTensorFloats = 2147483648.0;  // 2^31

// Integers (exactly representable doubles) without an exponent, others as %g.
inline std::string Num(double v) {
  char buf[32];
  const bool integral = std::isfinite(v) && std::fabs(v) < 1e15 && v == std::floor(v);
  std::snprintf(buf, sizeof(buf), integral ? "%.0f" : "%g", v);
  return buf;
}

inline std::string Quote(const std::string& s) { return "\"" + s + "\""; }

// Accumulates problems; the checks are written so that NaN fails them (`!(x > 0)`).
class Problems {
 public:
  void Add(const std::string& path, const std::string& problem) {
    list_.push_back(path + ": " + problem);
    reported_.insert(path);
  }
  bool Reported(const std::string& path) const { return reported_.count(path) > 0; }
  size_t size() const { return list_.size(); }

  void Positive(const std::string& path, double v) {
    if (!(v > 0)) Add(path, "must be > 0, got " + Num(v));
  }
  void NonNegative(const std::string& path, double v) {
    if (!(v >= 0)) Add(path, "must be >= 0, got " + Num(v));
  }
  // v <= hi, reported only when no other check of `path` failed (NaN fails the lower bound).
  void AtMost(const std::string& path, double v, double hi) {
    if (v > hi && !Reported(path)) Add(path, "must be <= " + Num(hi) + ", got " + Num(v));
  }
  // 0 < v <= hi.
  void PositiveAtMost(const std::string& path, double v, double hi) {
    Positive(path, v);
    AtMost(path, v, hi);
  }
  // 0 <= v <= hi.
  void NonNegativeAtMost(const std::string& path, double v, double hi) {
    NonNegative(path, v);
    AtMost(path, v, hi);
  }
  // lo <= v < hi.
  void InHalfOpen(const std::string& path, double v, double lo, double hi) {
    if (!(v >= lo && v < hi)) {
      Add(path, "must be in [" + Num(lo) + ", " + Num(hi) + "), got " + Num(v));
    }
  }
  void InClosed(const std::string& path, double v, double lo, double hi) {
    if (!(v >= lo && v <= hi)) {
      Add(path, "must be in [" + Num(lo) + ", " + Num(hi) + "], got " + Num(v));
    }
  }
  void NotEmpty(const std::string& path, const std::string& v) {
    if (v.empty()) Add(path, "must be set");
  }
  // Each element in (0, hi].
  template <typename Repeated>
  void AllPositiveAtMost(const std::string& path, const Repeated& values, double hi) {
    for (int i = 0; i < values.size(); ++i) {
      PositiveAtMost(path + "[" + std::to_string(i) + "]", values.Get(i), hi);
    }
  }

  Status ToStatus() const {
    if (list_.empty()) return Status::Ok();
    std::string msg;
    for (const std::string& p : list_) msg += (msg.empty() ? "" : "; ") + p;
    return Status::InvalidArgument(msg);
  }

 private:
  std::vector<std::string> list_;
  std::set<std::string> reported_;
};

}  // namespace attnps::config

#endif  // ATTNPS_WORKER_CONFIG_PROBLEMS_H_
