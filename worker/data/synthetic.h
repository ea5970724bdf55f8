// A synthetic interaction generator whose sequences carry signal for attention models; see
// docs/data.md for the generative process. Users are generated and written one at a time, so
// memory depends on the item count, not on the user count.
#ifndef ATTNPS_WORKER_DATA_SYNTHETIC_H_
#define ATTNPS_WORKER_DATA_SYNTHETIC_H_

#include <cstdint>
#include <random>
#include <vector>

#include "ops/status.h"

namespace attnps::data {

struct SyntheticOptions {
  uint64_t users = 10000;
  uint64_t items = 20000;
  uint64_t clusters = 200;
  int interests_per_user = 4;
  double events_per_user = 40;  // mean; per user uniform in [0.5, 1.5) x mean, at least 3
  // Events per user: false as above; true 3 + a geometric count with mean events_per_user - 3
  // (most users short, a long tail: real logs such as Amazon's and Taobao's).
  bool geometric_lengths = false;
  double zipf = 1.1;    // exponent of cluster popularity and of item popularity in a cluster
  double drift = 0.05;  // per-event probability that one interest is replaced
  double noise = 0.1;   // probability that an event is a globally popular item instead
  bool popularity_negatives = true;  // negatives from global popularity (false: uniform)
  // Negatives from the clusters the user clicked before the sample but has no interest in at
  // its time (dropped interests, noise clicks); from global popularity where there are none.
  bool stale_negatives = false;
};

Status ValidateSyntheticOptions(const SyntheticOptions& options);

// The item universe: items 1..N split into clusters (category = cluster + 1) with Zipf
// popularity, and the user sequence process.
class SyntheticWorld {
 public:
  SyntheticWorld(const SyntheticOptions& options, uint64_t seed);

  // One user's time-ordered dense item ids, drawn from *rng.
  // With `current`, also each event's current interests (clusters, 0-based): event t's are
  // (*current)[t * interests_per_user .. (t + 1) * interests_per_user).
  void DrawUser(std::mt19937_64* rng, std::vector<uint64_t>* items,
                std::vector<uint64_t>* current = nullptr) const;
  // A stale negative for the sample at `position` of `items` (see stale_negatives), given
  // DrawUser's `current`.
  uint64_t DrawStaleItem(const std::vector<uint64_t>& items, const std::vector<uint64_t>& current,
                         size_t position, std::mt19937_64* rng) const;
  // An item from the global popularity (cluster by Zipf, then rank in the cluster by Zipf).
  uint64_t DrawPopularItem(std::mt19937_64* rng) const;
  // item_cate()[i] = category of item i (index 0 unused).
  const std::vector<uint64_t>& item_cate() const { return item_cate_; }

 private:
  uint64_t DrawCluster(std::mt19937_64* rng) const;
  uint64_t DrawItemInCluster(uint64_t cluster, std::mt19937_64* rng) const;

  SyntheticOptions options_;
  std::vector<double> cluster_cdf_;             // Zipf over cluster ranks
  std::vector<double> rank_cdf_;                // Zipf over in-cluster ranks (largest cluster)
  std::vector<std::vector<uint64_t>> members_;  // cluster -> items by popularity rank
  std::vector<uint64_t> item_cate_;
};

}  // namespace attnps::data

#endif  // ATTNPS_WORKER_DATA_SYNTHETIC_H_
