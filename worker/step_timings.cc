#include "worker/step_timings.h"

#include <cstdio>

namespace attnps::worker {
namespace {

constexpr const char* kShort[kNumStepPhases] = {"data",    "pull", "gather",    "compute",
                                                "scatter", "push", "allreduce", "dense"};
constexpr const char* kField[kNumStepPhases] = {
    "step_ms_data",    "step_ms_pull_wait", "step_ms_gather",    "step_ms_compute",
    "step_ms_scatter", "step_ms_push",      "step_ms_allreduce", "step_ms_dense_update"};

ps::PeerTraffic Sum(const std::vector<ps::PeerTraffic>& traffic) {
  ps::PeerTraffic sum;
  for (const ps::PeerTraffic& t : traffic) {
    sum.sent_bytes += t.sent_bytes;
    sum.sent_messages += t.sent_messages;
    sum.received_bytes += t.received_bytes;
    sum.received_messages += t.received_messages;
  }
  return sum;
}

}  // namespace

void StepTimings::AddTraffic(const std::vector<ps::PeerTraffic>& traffic,
                             uint64_t allreduce_bytes) {
  if (traffic_.size() < traffic.size()) traffic_.resize(traffic.size());
  for (size_t s = 0; s < traffic.size(); ++s) {
    traffic_[s].sent_bytes += traffic[s].sent_bytes;
    traffic_[s].sent_messages += traffic[s].sent_messages;
    traffic_[s].received_bytes += traffic[s].received_bytes;
    traffic_[s].received_messages += traffic[s].received_messages;
  }
  allreduce_bytes_ += allreduce_bytes;
}

double StepTimings::seconds() const {
  double sum = 0;
  for (double s : seconds_) sum += s;
  return sum;
}

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
  out += text;
  if (!traffic_.empty()) {
    const ps::PeerTraffic sum = Sum(traffic_);
    size_t busiest = 0;  // by bytes both ways
    auto both = [](const ps::PeerTraffic& t) { return t.sent_bytes + t.received_bytes; };
    for (size_t s = 1; s < traffic_.size(); ++s) {
      if (both(traffic_[s]) > both(traffic_[busiest])) busiest = s;
    }
    const double mean = static_cast<double>(both(sum)) / traffic_.size();
    std::snprintf(text, sizeof(text), "; net %.1f KB out %.1f KB in over %zu servers",
                  sum.sent_bytes / 1024.0 / steps_, sum.received_bytes / 1024.0 / steps_,
                  traffic_.size());
    out += text;
    if (traffic_.size() > 1) {
      std::snprintf(text, sizeof(text), ", busiest s%zu %.2fx mean", busiest,
                    mean > 0 ? both(traffic_[busiest]) / mean : 1.0);
      out += text;
    }
  }
  if (lookups_ > 0) {
    std::snprintf(text, sizeof(text), ", unique keys %.2f",
                  static_cast<double>(unique_keys_) / lookups_);
    out += text;
  }
  return out;
}

std::vector<std::pair<std::string, double>> StepTimings::Fields() const {
  std::vector<std::pair<std::string, double>> fields;
  if (steps_ == 0) return fields;
  for (int p = 0; p < kNumStepPhases; ++p)
    fields.emplace_back(kField[p], 1e3 * seconds_[p] / steps_);
  fields.emplace_back("pulled_bytes", static_cast<double>(pulled_) / steps_);
  fields.emplace_back("pushed_bytes", static_cast<double>(pushed_) / steps_);
  const double steps = static_cast<double>(steps_);
  if (lookups_ > 0)
    fields.emplace_back("unique_key_ratio", unique_keys_ / static_cast<double>(lookups_));
  fields.emplace_back("allreduce_bytes", allreduce_bytes_ / steps);
  if (traffic_.empty()) return fields;
  auto add = [&](const std::string& prefix, const ps::PeerTraffic& t) {
    fields.emplace_back(prefix + "sent_bytes", t.sent_bytes / steps);
    fields.emplace_back(prefix + "received_bytes", t.received_bytes / steps);
    fields.emplace_back(prefix + "sent_messages", t.sent_messages / steps);
    fields.emplace_back(prefix + "received_messages", t.received_messages / steps);
  };
  add("", Sum(traffic_));
  for (size_t s = 0; s < traffic_.size(); ++s) add("s" + std::to_string(s) + "_", traffic_[s]);
  return fields;
}

}  // namespace attnps::worker
