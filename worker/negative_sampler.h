// NegativeSampler: the negatives of a sampled softmax, S ids shared by a whole batch, drawn with
// replacement from a fixed distribution over the item corpus, with the log-Q correction
// log(S * Q(i)) (the expected count of item i among the S draws) that the sampled softmax
// subtracts from each logit (ops/loss.h, SampledSoftmaxForward).
//
//   uniform:      Q(i) = 1 / N
//   log-uniform:  Q(rank r) = log((r + 2) / (r + 1)) / log(N + 1), r = 0 the most popular item
//                 (Zipf-like; TensorFlow's log_uniform_candidate_sampler over popularity ranks)
//
// Draws are a pure function of (seed, step, draw index): every worker and every resumed run
// draws the same negatives for a step. Thread-safety: const methods may run concurrently.
#ifndef ATTNPS_WORKER_NEGATIVE_SAMPLER_H_
#define ATTNPS_WORKER_NEGATIVE_SAMPLER_H_

#include <cstdint>
#include <unordered_map>
#include <vector>

namespace attnps::worker {

enum class NegativeDistribution { kUniform, kLogUniform };

// Item ids ordered by count, most frequent first, ties by smaller id; ids with count 0 (counts
// is indexed by id, counts[0] unused) come last, so every id 1..counts.size()-1 has a rank.
std::vector<uint64_t> RankByCount(const std::vector<uint64_t>& counts);

class NegativeSampler {
 public:
  // ranked_items: the corpus, distinct ids, most popular first (its order matters for
  // kLogUniform only). Precondition: not empty.
  NegativeSampler(NegativeDistribution distribution, std::vector<uint64_t> ranked_items);

  // ids = s draws for `step` (with replacement), log_q[j] = LogExpectedCount(ids[j], s).
  void Draw(uint64_t seed, uint64_t step, int s, std::vector<uint64_t>* ids,
            std::vector<float>* log_q) const;
  // log(s * Q(item)); an item outside the corpus gets the least probable rank's Q.
  float LogExpectedCount(uint64_t item, int s) const;
  // Q of rank r, for r in [0, size()).
  double Probability(int64_t rank) const;
  int64_t size() const { return static_cast<int64_t>(ranked_.size()); }

 private:
  int64_t DrawRank(uint64_t key, uint64_t i) const;

  NegativeDistribution distribution_;
  std::vector<uint64_t> ranked_;
  std::unordered_map<uint64_t, int64_t> rank_of_;
  double log_n1_ = 0;  // log(N + 1)
};

}  // namespace attnps::worker

#endif  // ATTNPS_WORKER_NEGATIVE_SAMPLER_H_
