#include "worker/metrics/metrics.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>

#include <glog/logging.h>

namespace attnps::metrics {
namespace {

bool IsPositive(float label) { return label >= 0.5f; }

// AUC of the samples idx[0..n), which are sorted by ascending score: the Mann-Whitney U statistic
// with average ranks for ties, divided by P * N.
double AucOfSorted(const float* labels, const float* scores, const uint32_t* idx, size_t n) {
  double positive_rank_sum = 0;  // 1-based ranks
  double positives = 0;
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    double group_positives = 0;
    while (j < n && scores[idx[j]] == scores[idx[i]]) {
      group_positives += IsPositive(labels[idx[j]]);
      ++j;
    }
    const double average_rank = 0.5 * static_cast<double>(i + 1 + j);  // mean of i+1 .. j
    positive_rank_sum += group_positives * average_rank;
    positives += group_positives;
    i = j;
  }
  const double negatives = static_cast<double>(n) - positives;
  if (positives == 0 || negatives == 0) return kNaN;
  return (positive_rank_sum - positives * (positives + 1) / 2) / (positives * negatives);
}

bool AnyNaN(const std::vector<float>& v) {
  return std::any_of(v.begin(), v.end(), [](float x) { return std::isnan(x); });
}

std::vector<uint32_t> Iota(size_t n) {
  CHECK_LE(n, size_t{UINT32_MAX}) << "metrics over more than 2^32 samples";
  std::vector<uint32_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0u);
  return idx;
}

double Sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

void AppendDouble(double v, std::string* out) {
  if (!std::isfinite(v)) {
    *out += "null";
    return;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  *out += buf;
}

void AppendJsonString(const std::string& s, std::string* out) {
  *out += '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      *out += '\\';
      *out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      *out += buf;
    } else {
      *out += static_cast<char>(c);
    }
  }
  *out += '"';
}

void AppendKey(const std::string& key, std::string* out) {
  if (out->size() > 1) *out += ',';
  AppendJsonString(key, out);
  *out += ':';
}

}  // namespace

double Auc(const std::vector<float>& labels, const std::vector<float>& scores) {
  CHECK_EQ(labels.size(), scores.size()) << "Auc: labels and scores differ in length";
  if (AnyNaN(scores)) return kNaN;
  std::vector<uint32_t> idx = Iota(scores.size());
  std::sort(idx.begin(), idx.end(), [&](uint32_t a, uint32_t b) { return scores[a] < scores[b]; });
  return AucOfSorted(labels.data(), scores.data(), idx.data(), idx.size());
}

double Gauc(const std::vector<uint64_t>& users, const std::vector<float>& labels,
            const std::vector<float>& scores) {
  CHECK_EQ(labels.size(), scores.size()) << "Gauc: labels and scores differ in length";
  CHECK_EQ(users.size(), scores.size()) << "Gauc: users and scores differ in length";
  if (AnyNaN(scores)) return kNaN;
  // One sort by (user, score) puts each user's samples together, ordered by score.
  std::vector<uint32_t> idx = Iota(scores.size());
  std::sort(idx.begin(), idx.end(), [&](uint32_t a, uint32_t b) {
    return users[a] != users[b] ? users[a] < users[b] : scores[a] < scores[b];
  });
  double weighted_sum = 0, weight = 0;
  for (size_t begin = 0; begin < idx.size();) {
    size_t end = begin;
    while (end < idx.size() && users[idx[end]] == users[idx[begin]]) ++end;
    const double auc = AucOfSorted(labels.data(), scores.data(), idx.data() + begin, end - begin);
    if (!std::isnan(auc)) {
      weighted_sum += static_cast<double>(end - begin) * auc;
      weight += static_cast<double>(end - begin);
    }
    begin = end;
  }
  return weight > 0 ? weighted_sum / weight : kNaN;
}

double LogLoss(const std::vector<float>& labels, const std::vector<float>& probabilities) {
  CHECK_EQ(labels.size(), probabilities.size()) << "LogLoss: lengths differ";
  if (labels.empty()) return kNaN;
  double sum = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const double p = std::clamp<double>(probabilities[i], kLogLossEps, 1 - kLogLossEps);
    const double y = labels[i];
    sum -= y * std::log(p) + (1 - y) * std::log(1 - p);
  }
  return sum / static_cast<double>(labels.size());
}

double LogLossFromLogits(const std::vector<float>& labels, const std::vector<float>& logits) {
  CHECK_EQ(labels.size(), logits.size()) << "LogLossFromLogits: lengths differ";
  if (labels.empty()) return kNaN;
  double sum = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const double x = logits[i], y = labels[i];
    sum += std::max(x, 0.0) - x * y + std::log1p(std::exp(-std::abs(x)));
  }
  return sum / static_cast<double>(labels.size());
}

// ---- CtrEvaluator ------------------------------------------------------------------------------

void CtrEvaluator::Add(const float* labels, const float* logits, const uint64_t* users, size_t n) {
  if (n == 0) return;
  CHECK(labels != nullptr && logits != nullptr);
  CHECK(labels_.empty() || (users != nullptr) == !users_.empty())
      << "CtrEvaluator::Add: calls with and without users mixed";
  labels_.insert(labels_.end(), labels, labels + n);
  logits_.insert(logits_.end(), logits, logits + n);
  if (users != nullptr) users_.insert(users_.end(), users, users + n);
}

void CtrEvaluator::Merge(const CtrEvaluator& other) {
  Add(other.labels_.data(), other.logits_.data(),
      other.users_.empty() ? nullptr : other.users_.data(), other.size());
}

namespace {

// memcpy that allows empty (and then possibly null) ranges.
void CopyBytes(void* dst, const void* src, size_t bytes) {
  if (bytes > 0) std::memcpy(dst, src, bytes);
}

template <typename T>
void AppendBytes(const std::vector<T>& v, std::string* out) {
  if (!v.empty()) out->append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

}  // namespace

std::string CtrEvaluator::Serialize() const {
  const uint64_t n = size();
  std::string out(reinterpret_cast<const char*>(&n), sizeof(n));
  AppendBytes(labels_, &out);
  AppendBytes(logits_, &out);
  AppendBytes(users_, &out);
  return out;
}

bool CtrEvaluator::AppendSerialized(const std::string& bytes) {
  uint64_t n = 0;
  if (bytes.size() < sizeof(n)) return false;
  std::memcpy(&n, bytes.data(), sizeof(n));
  const size_t floats = n * sizeof(float), body = bytes.size() - sizeof(n);
  if (n > body || (body != 2 * floats && body != 2 * floats + n * sizeof(uint64_t))) return false;
  if (n == 0) return true;
  const char* p = bytes.data() + sizeof(n);
  std::vector<float> labels(n), logits(n);
  std::vector<uint64_t> users(body > 2 * floats ? n : 0);
  CopyBytes(labels.data(), p, floats);
  CopyBytes(logits.data(), p + floats, floats);
  CopyBytes(users.data(), p + 2 * floats, users.size() * sizeof(uint64_t));
  Add(labels.data(), logits.data(), users.empty() ? nullptr : users.data(), n);
  return true;
}

void CtrEvaluator::Clear() {
  labels_.clear();
  logits_.clear();
  users_.clear();
}

CtrResult CtrEvaluator::Compute() const {
  CtrResult r;
  r.samples = static_cast<int64_t>(labels_.size());
  if (labels_.empty()) return r;
  // AUC and GAUC are rank statistics: logits rank like probabilities, without saturation ties.
  r.auc = Auc(labels_, logits_);
  if (!users_.empty()) r.gauc = Gauc(users_, labels_, logits_);
  r.logloss = LogLossFromLogits(labels_, logits_);
  double positives = 0, predictions = 0;
  for (size_t i = 0; i < labels_.size(); ++i) {
    positives += IsPositive(labels_[i]);
    predictions += Sigmoid(logits_[i]);
  }
  r.positive_rate = positives / static_cast<double>(r.samples);
  r.mean_prediction = predictions / static_cast<double>(r.samples);
  return r;
}

// ---- JSON lines --------------------------------------------------------------------------------

Record MakeRecord(int64_t step, int epoch, const std::string& split, const CtrResult& result,
                  double time_s) {
  Record r;
  r.step = step;
  r.epoch = epoch;
  r.split = split;
  r.samples = result.samples;
  r.auc = result.auc;
  r.gauc = result.gauc;
  r.logloss = result.logloss;
  r.time_s = time_s;
  return r;
}

std::string MetricsJsonLine(const Record& record) {
  std::string out = "{";
  AppendKey("step", &out);
  out += std::to_string(record.step);
  AppendKey("epoch", &out);
  out += std::to_string(record.epoch);
  AppendKey("split", &out);
  AppendJsonString(record.split, &out);
  AppendKey("samples", &out);
  out += std::to_string(record.samples);
  const std::pair<const char*, double> doubles[] = {{"auc", record.auc},
                                                    {"gauc", record.gauc},
                                                    {"logloss", record.logloss},
                                                    {"time_s", record.time_s}};
  for (const auto& [key, value] : doubles) {
    AppendKey(key, &out);
    AppendDouble(value, &out);
  }
  for (const auto& [key, value] : record.extra) {
    AppendKey(key, &out);
    AppendDouble(value, &out);
  }
  out += '}';
  return out;
}

Status AppendJsonLine(const std::string& path, const std::string& line) {
  std::FILE* f = std::fopen(path.c_str(), "a");
  if (f == nullptr) {
    return Status::IoError("metrics file " + path + ": cannot open: " + std::strerror(errno));
  }
  const std::string data = line + "\n";
  const bool written = std::fwrite(data.data(), 1, data.size(), f) == data.size();
  const bool flushed = std::fflush(f) == 0;
  const int err = errno;
  const bool closed = std::fclose(f) == 0;
  if (!written || !flushed || !closed) {
    return Status::IoError("metrics file " + path + ": write failed: " + std::strerror(err));
  }
  return Status::Ok();
}

}  // namespace attnps::metrics
