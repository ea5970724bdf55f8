#include "worker/data/synthetic.h"

#include <glog/logging.h>

#include <algorithm>
#include <cmath>

#include "worker/data/output.h"

namespace attnps::data {
namespace {

std::vector<double> ZipfCdf(uint64_t n, double s) {
  std::vector<double> cdf(n);
  double sum = 0;
  for (uint64_t r = 0; r < n; ++r) {
    sum += 1.0 / std::pow(static_cast<double>(r + 1), s);
    cdf[r] = sum;
  }
  return cdf;
}

// A rank in [0, n) drawn from the first n entries of a Zipf CDF.
uint64_t DrawRank(const std::vector<double>& cdf, uint64_t n, std::mt19937_64* rng) {
  double u = UniformDouble(rng) * cdf[n - 1];
  auto it = std::upper_bound(cdf.begin(), cdf.begin() + n, u);
  return std::min<uint64_t>(it - cdf.begin(), n - 1);
}

}  // namespace

Status ValidateSyntheticOptions(const SyntheticOptions& o) {
  if (o.users < 1) return Status::InvalidArgument("--users must be >= 1");
  if (o.clusters < 1) return Status::InvalidArgument("--clusters must be >= 1");
  if (o.items < 2 * o.clusters) return Status::InvalidArgument("--items must be >= 2 x --clusters");
  if (o.interests_per_user < 1) return Status::InvalidArgument("--interests_per_user must be >= 1");
  if (!(o.events_per_user >= 3)) return Status::InvalidArgument("--events_per_user must be >= 3");
  if (!(o.zipf >= 0)) return Status::InvalidArgument("--zipf must be >= 0");
  if (!(o.drift >= 0 && o.drift <= 1)) return Status::InvalidArgument("--drift must be in [0, 1]");
  if (!(o.noise >= 0 && o.noise <= 1)) return Status::InvalidArgument("--noise must be in [0, 1]");
  return Status::Ok();
}

SyntheticWorld::SyntheticWorld(const SyntheticOptions& options, uint64_t seed) : options_(options) {
  CHECK(ValidateSyntheticOptions(options).ok());
  const uint64_t n = options.items, c = options.clusters;
  cluster_cdf_ = ZipfCdf(c, options.zipf);
  rank_cdf_ = ZipfCdf((n + c - 1) / c, options.zipf);
  // Items get clusters and in-cluster ranks through a seeded permutation, so ids carry nothing.
  std::mt19937_64 rng(seed ^ 0x574f524c44ull);
  std::vector<uint64_t> perm(n);
  for (uint64_t i = 0; i < n; ++i) perm[i] = i + 1;
  Shuffle(&perm, &rng);
  members_.resize(c);
  item_cate_.assign(n + 1, 0);
  for (uint64_t k = 0; k < n; ++k) {
    uint64_t cluster = k % c;
    members_[cluster].push_back(perm[k]);
    item_cate_[perm[k]] = cluster + 1;
  }
}

uint64_t SyntheticWorld::DrawCluster(std::mt19937_64* rng) const {
  return DrawRank(cluster_cdf_, cluster_cdf_.size(), rng);
}

uint64_t SyntheticWorld::DrawItemInCluster(uint64_t cluster, std::mt19937_64* rng) const {
  const auto& m = members_[cluster];
  return m[DrawRank(rank_cdf_, m.size(), rng)];
}

uint64_t SyntheticWorld::DrawPopularItem(std::mt19937_64* rng) const {
  return DrawItemInCluster(DrawCluster(rng), rng);
}

void SyntheticWorld::DrawUser(std::mt19937_64* rng, std::vector<uint64_t>* items,
                              std::vector<uint64_t>* current) const {
  constexpr int kDistinctTries = 20;
  const double mean = options_.events_per_user;
  size_t len = 0;
  if (options_.geometric_lengths) {  // failures before a success of probability 1 / (mean - 2)
    const double p = 1.0 / (mean - 2.0);
    const double u = UniformDouble(rng);
    len = 3 + (p >= 1 ? 0 : static_cast<size_t>(std::log1p(-u) / std::log1p(-p)));
  } else {
    len = std::max<size_t>(3, static_cast<size_t>(mean * (0.5 + UniformDouble(rng)) + 0.5));
  }
  // A new interest: a popular cluster, preferably not one the user already has.
  std::vector<uint64_t> interests;
  auto new_interest = [&]() {
    uint64_t c = DrawCluster(rng);
    for (int t = 0;
         t < kDistinctTries && std::find(interests.begin(), interests.end(), c) != interests.end();
         ++t) {
      c = DrawCluster(rng);
    }
    return c;
  };
  for (int k = 0; k < options_.interests_per_user; ++k) interests.push_back(new_interest());
  items->clear();
  if (current) current->clear();
  for (size_t t = 0; t < len; ++t) {
    if (UniformDouble(rng) < options_.drift) {
      interests[UniformIndex(rng, interests.size())] = new_interest();
    }
    if (current) current->insert(current->end(), interests.begin(), interests.end());
    if (UniformDouble(rng) < options_.noise) {
      items->push_back(DrawPopularItem(rng));
    } else {
      uint64_t c = interests[UniformIndex(rng, interests.size())];
      items->push_back(DrawItemInCluster(c, rng));
    }
  }
}

uint64_t SyntheticWorld::DrawStaleItem(const std::vector<uint64_t>& items,
                                       const std::vector<uint64_t>& current, size_t position,
                                       std::mt19937_64* rng) const {
  const size_t k = static_cast<size_t>(options_.interests_per_user);
  const auto now = current.begin() + position * k;
  std::vector<uint64_t> stale;  // the clusters of earlier clicks that are not interests now
  for (size_t j = 0; j < position; ++j) {
    const uint64_t c = item_cate_[items[j]] - 1;
    if (std::find(now, now + k, c) == now + k) stale.push_back(c);
  }
  if (stale.empty()) return DrawPopularItem(rng);
  return DrawItemInCluster(stale[UniformIndex(rng, stale.size())], rng);
}

}  // namespace attnps::data
