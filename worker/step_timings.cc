#include "worker/step_timings.h"

#include <cstdio>

namespace attnps::worker {
namespace {

constexpr const char* kShort[kNumStepPhases] = {"data",    "pull", "gather",    "compute",
                                                "scatter", "push", "allreduce", "dense"};
constexpr const char* kField[kNumStepPhases] = {
    "step_ms_data",    "step_ms_pull_wait", "step_ms_gather",    "step_ms_compute",
    "step_ms_scatter", "step_ms_push",      "step_ms_allreduce", "step_ms_dense_update"};

}  // namespace

std::string StepTimings::Summary() const {
  if (steps_ == 0) return "";
  std::string out;
  char text[64];
  for (int p = 0; p < kNumStepPhases; ++p) {
    std::snprintf(text, sizeof(text), "%s%s %.2f", p ? " " : "", kShort[p],
                  1e3 * seconds_[p] / steps_);
    out += text;
  }
  std::snprintf(text, sizeof(text), " ms, %.1f KB pulled %.1f KB pushed", pulled_ / 1024.0 / steps_,
                pushed_ / 1024.0 / steps_);
  return out + text;
}

std::vector<std::pair<std::string, double>> StepTimings::Fields() const {
  std::vector<std::pair<std::string, double>> fields;
  if (steps_ == 0) return fields;
  for (int p = 0; p < kNumStepPhases; ++p)
    fields.emplace_back(kField[p], 1e3 * seconds_[p] / steps_);
  fields.emplace_back("pulled_bytes", static_cast<double>(pulled_) / steps_);
  fields.emplace_back("pushed_bytes", static_cast<double>(pushed_) / steps_);
  return fields;
}

}  // namespace attnps::worker
