// Retrieval metrics over the full item set (the ComiRec protocol) and over sampled candidates (the
// SASRec protocol), as sums that merge across workers by addition, and the two ways of turning
// per-interest top-N lists into one ranked list.
//
// Per user, with T the distinct target items and R the ranked list cut at N:
//   Recall@N  = |R ∩ T| / |T|
//   NDCG@N    = DCG / IDCG, DCG = sum over ranks k (0-based) of R's hits of 1 / log2(k + 2),
//               IDCG the same for min(|T|, N) hits at the top (the standard definition; ComiRec's
//               code divides by the IDCG of its own hit count instead)
//   HitRate@N = 1 when R ∩ T is not empty
// Sampled candidates (one target): rank = the candidates scored >= the target (ties count against
// it), HR@N = rank < N, NDCG@N = 1 / log2(rank + 2) when rank < N.
// All functions are pure and thread-safe.
#ifndef ATTNPS_WORKER_METRICS_RETRIEVAL_METRICS_H_
#define ATTNPS_WORKER_METRICS_RETRIEVAL_METRICS_H_

#include <cstdint>
#include <vector>

namespace attnps::metrics {

struct ScoredItem {
  uint64_t item = 0;
  float score = 0;
};

// One ranked list of the items of several interests' top lists: each item's best score, by
// descending score (ties: smaller id first), the first n.
std::vector<ScoredItem> MergeByScore(const std::vector<std::vector<ScoredItem>>& per_interest,
                                     int n);

// ComiRec's greedy aggregation: the distinct candidates of every interest's list, then n times
// the candidate maximizing score - lambda * (chosen items of its category so far); ties: the
// higher score, then the smaller id. item_cate[i] is item i's category (items past its end: 0).
std::vector<ScoredItem> GreedyDiverse(const std::vector<std::vector<ScoredItem>>& per_interest,
                                      const std::vector<uint64_t>& item_cate, double lambda, int n);

// Sums over users, merged across workers by Add; the metrics are the sums over `users`.
struct RetrievalSums {
  double users = 0;
  double recall = 0;
  double ndcg = 0;
  double hits = 0;

  void Add(const RetrievalSums& o) {
    users += o.users;
    recall += o.recall;
    ndcg += o.ndcg;
    hits += o.hits;
  }
  double Recall() const;   // NaN without users
  double Ndcg() const;     // NaN without users
  double HitRate() const;  // NaN without users
};

// Adds one user with ranked list `ranked` (cut at n) and targets `targets` (duplicates count
// once). A user without targets is not counted.
void AddRankedUser(const std::vector<uint64_t>& ranked, const std::vector<uint64_t>& targets, int n,
                   RetrievalSums* sums);

// Adds one user of the SASRec protocol: the target's score against its candidates' scores.
void AddSampledUser(float target_score, const std::vector<float>& candidate_scores, int n,
                    RetrievalSums* sums);

}  // namespace attnps::metrics

#endif  // ATTNPS_WORKER_METRICS_RETRIEVAL_METRICS_H_
