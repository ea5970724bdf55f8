// The DIN sample recipe, shared by the raw-format preparers and the synthetic generator: for a
// user's time-ordered item sequence s (len >= min_user_events), every position i in 1..len-1
// yields hist = s[max(0, i - max_history) : i] with a positive (label 1, target s[i]) and a
// negative (label 0, an item not in the user's set); i < len-1 goes to train.tsv (written in a
// seeded shuffled order), i == len-1 to test.tsv. sequences.tsv gets the whole sequence.
#ifndef ATTNPS_WORKER_DATA_RECIPE_H_
#define ATTNPS_WORKER_DATA_RECIPE_H_

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "ops/status.h"
#include "worker/data/output.h"
#include "worker/data/sample.h"

namespace attnps::data {

struct RecipeOptions {
  int max_history = 50;
  int min_user_events = 3;
  uint64_t seed = 1;
  uint64_t shuffle_memory_bytes = 64ull << 20;
  int activity_buckets = 0;  // > 0: a last extra field, ActivityBucket of the events before
};

// The user-activity bucket of a sample preceded by n >= 1 of the user's events:
// min(buckets, 1 + floor(log2 n)), i.e. 1: 1 event, 2: 2-3, 3: 4-7, ...
uint64_t ActivityBucket(uint64_t n, int buckets);
// Its events range as text: "1", "2-3", ..., "128+" for the last bucket.
std::string ActivityBucketRange(int bucket, int buckets);

// Draws a negative candidate in 1..num_items for the sample at `position` of the user's sequence
// (its target's index); rejected candidates in the user's set are redrawn.
using CandidateSampler = std::function<uint64_t(std::mt19937_64*, size_t position)>;

class SampleWriter {
 public:
  static constexpr int kMaxNegativeTries = 1000;

  // item_cate[i] is the category of dense item i (index 0 unused); num_items = size - 1.
  SampleWriter(const RecipeOptions& options, std::vector<uint64_t> item_cate);
  // Creates train.tsv/test.tsv/sequences.tsv in `dir` (as temp files until Commit).
  Status Open(const std::string& dir);
  // Uniform negatives by default.
  void set_candidate_sampler(CandidateSampler sampler) { sampler_ = std::move(sampler); }
  // Adds one user's time-ordered dense item ids; users below min_user_events are counted and
  // skipped, as are users whose set covers every item (no negative exists).
  Status AddUser(uint64_t user, const std::vector<uint64_t>& items);
  // The same, with `extra` written as fields 7.. of each of the user's CTR lines (train and test;
  // not in sequences.tsv), then the activity field when activity_buckets > 0. The caller keeps
  // the number of extra fields the same for every user.
  Status AddUser(uint64_t user, const std::vector<uint64_t>& items,
                 const std::vector<std::vector<uint64_t>>& extra);
  Status Commit();

  uint64_t train_rows() const { return train_.lines(); }
  uint64_t test_rows() const { return test_rows_; }
  uint64_t users_with_samples() const { return users_with_samples_; }
  uint64_t skipped_users() const { return skipped_users_; }
  const std::vector<uint64_t>& item_cate() const { return item_cate_; }

 private:
  uint64_t DrawNegative(const std::vector<uint64_t>& sorted_set, size_t position);
  // AddUser with sample_.extra already set.
  Status AddUserWithExtra(uint64_t user, const std::vector<uint64_t>& items);

  RecipeOptions options_;
  std::vector<uint64_t> item_cate_;
  uint64_t num_items_;
  std::mt19937_64 rng_;
  CandidateSampler sampler_;
  ShuffledWriter train_;
  AtomicFile test_;
  AtomicFile sequences_;
  uint64_t test_rows_ = 0;
  uint64_t users_with_samples_ = 0;
  uint64_t skipped_users_ = 0;
  std::string line_;
  CtrSample sample_;
  std::vector<uint64_t> set_;
};

// Writes `dir`/item_cates.tsv: "item \t cate" for items 1..N.
Status WriteItemCates(const std::string& dir, const std::vector<uint64_t>& item_cate);

}  // namespace attnps::data

#endif  // ATTNPS_WORKER_DATA_RECIPE_H_
