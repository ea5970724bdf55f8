#include "worker/negative_sampler.h"

#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "ops/random.h"

namespace attnps::worker {
namespace {

constexpr uint64_t kNegativeStream = 0x4e45474154495645ull;  // "NEGATIVE"

}  // namespace

std::vector<uint64_t> RankByCount(const std::vector<uint64_t>& counts) {
  std::vector<uint64_t> ids(counts.empty() ? 0 : counts.size() - 1);
  std::iota(ids.begin(), ids.end(), uint64_t{1});
  std::stable_sort(ids.begin(), ids.end(),
                   [&](uint64_t a, uint64_t b) { return counts[a] > counts[b]; });
  return ids;
}

NegativeSampler::NegativeSampler(NegativeDistribution distribution,
                                 std::vector<uint64_t> ranked_items)
    : distribution_(distribution), ranked_(std::move(ranked_items)) {
  CHECK(!ranked_.empty()) << "NegativeSampler needs a non-empty corpus";
  rank_of_.reserve(ranked_.size());
  for (size_t r = 0; r < ranked_.size(); ++r) {
    CHECK(rank_of_.emplace(ranked_[r], static_cast<int64_t>(r)).second)
        << "NegativeSampler: item " << ranked_[r] << " is ranked twice";
  }
  log_n1_ = std::log(static_cast<double>(ranked_.size()) + 1.0);
}

double NegativeSampler::Probability(int64_t rank) const {
  if (distribution_ == NegativeDistribution::kUniform) return 1.0 / static_cast<double>(size());
  const double r = static_cast<double>(rank);
  return std::log1p(1.0 / (r + 1.0)) / log_n1_;
}

int64_t NegativeSampler::DrawRank(uint64_t key, uint64_t i) const {
  const double u = StreamUniform53(key, i);
  if (distribution_ == NegativeDistribution::kUniform) {
    return std::min<int64_t>(static_cast<int64_t>(u * static_cast<double>(size())), size() - 1);
  }
  // Inverse CDF: P(rank <= r) = log(r + 2) / log(N + 1).
  const double r = std::floor(std::exp(u * log_n1_)) - 1.0;
  return std::clamp<int64_t>(static_cast<int64_t>(r), 0, size() - 1);
}

void NegativeSampler::Draw(uint64_t seed, uint64_t step, int s, std::vector<uint64_t>* ids,
                           std::vector<float>* log_q) const {
  CHECK_GE(s, 0);
  const uint64_t key = StreamKey(seed, kNegativeStream, step);
  ids->resize(s);
  log_q->resize(s);
  for (int j = 0; j < s; ++j) {
    const int64_t r = DrawRank(key, static_cast<uint64_t>(j));
    (*ids)[j] = ranked_[r];
    (*log_q)[j] = static_cast<float>(std::log(static_cast<double>(s) * Probability(r)));
  }
}

float NegativeSampler::LogExpectedCount(uint64_t item, int s) const {
  const auto it = rank_of_.find(item);
  const int64_t r = it == rank_of_.end() ? size() - 1 : it->second;
  return static_cast<float>(std::log(static_cast<double>(s) * Probability(r)));
}

}  // namespace attnps::worker
