#include "worker/metrics/retrieval_metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>

namespace attnps::metrics {
namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

double Discount(size_t rank) { return 1.0 / std::log2(static_cast<double>(rank) + 2.0); }

bool Before(const ScoredItem& a, const ScoredItem& b) {
  return a.score != b.score ? a.score > b.score : a.item < b.item;
}

// Each item once, with its best score, by descending score.
std::vector<ScoredItem> DistinctByScore(const std::vector<std::vector<ScoredItem>>& lists) {
  std::unordered_map<uint64_t, float> best;
  for (const auto& list : lists) {
    for (const ScoredItem& s : list) {
      auto [it, added] = best.emplace(s.item, s.score);
      if (!added) it->second = std::max(it->second, s.score);
    }
  }
  std::vector<ScoredItem> out;
  out.reserve(best.size());
  for (const auto& [item, score] : best) out.push_back({item, score});
  std::sort(out.begin(), out.end(), Before);
  return out;
}

double PerUser(double sum, double users) { return users > 0 ? sum / users : kNan; }

}  // namespace

std::vector<ScoredItem> MergeByScore(const std::vector<std::vector<ScoredItem>>& per_interest,
                                     int n) {
  std::vector<ScoredItem> out = DistinctByScore(per_interest);
  if (out.size() > static_cast<size_t>(std::max(n, 0))) out.resize(std::max(n, 0));
  return out;
}

std::vector<ScoredItem> GreedyDiverse(const std::vector<std::vector<ScoredItem>>& per_interest,
                                      const std::vector<uint64_t>& item_cate, double lambda,
                                      int n) {
  std::vector<ScoredItem> pool = DistinctByScore(per_interest);
  auto cate = [&](uint64_t item) { return item < item_cate.size() ? item_cate[item] : 0; };
  std::unordered_map<uint64_t, int> chosen_per_cate;
  std::vector<ScoredItem> out;
  std::vector<bool> taken(pool.size(), false);
  while (out.size() < static_cast<size_t>(std::max(n, 0)) && out.size() < pool.size()) {
    size_t best = pool.size();
    double best_value = -std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < pool.size(); ++i) {  // pool is by score: the first best wins ties
      if (taken[i]) continue;
      const auto it = chosen_per_cate.find(cate(pool[i].item));
      const double value = pool[i].score - lambda * (it == chosen_per_cate.end() ? 0 : it->second);
      if (value > best_value) {
        best_value = value;
        best = i;
      }
    }
    taken[best] = true;
    ++chosen_per_cate[cate(pool[best].item)];
    out.push_back(pool[best]);
  }
  return out;
}

double RetrievalSums::Recall() const { return PerUser(recall, users); }
double RetrievalSums::Ndcg() const { return PerUser(ndcg, users); }
double RetrievalSums::HitRate() const { return PerUser(hits, users); }

void AddRankedUser(const std::vector<uint64_t>& ranked, const std::vector<uint64_t>& targets, int n,
                   RetrievalSums* sums) {
  std::vector<uint64_t> truth(targets);
  std::sort(truth.begin(), truth.end());
  truth.erase(std::unique(truth.begin(), truth.end()), truth.end());
  if (truth.empty()) return;
  const size_t cut = std::min(ranked.size(), static_cast<size_t>(std::max(n, 0)));
  size_t found = 0;
  double dcg = 0;
  for (size_t k = 0; k < cut; ++k) {
    if (std::binary_search(truth.begin(), truth.end(), ranked[k])) {
      ++found;
      dcg += Discount(k);
    }
  }
  double idcg = 0;
  for (size_t k = 0; k < std::min(truth.size(), static_cast<size_t>(std::max(n, 0))); ++k) {
    idcg += Discount(k);
  }
  sums->users += 1;
  sums->recall += static_cast<double>(found) / static_cast<double>(truth.size());
  sums->ndcg += idcg > 0 ? dcg / idcg : 0;
  sums->hits += found > 0 ? 1 : 0;
}

void AddSampledUser(float target_score, const std::vector<float>& candidate_scores, int n,
                    RetrievalSums* sums) {
  // A NaN target score ranks last.
  size_t rank = std::isnan(target_score) ? candidate_scores.size() : 0;
  if (rank == 0) {
    for (float s : candidate_scores) rank += !(s < target_score);
  }
  sums->users += 1;
  if (rank < static_cast<size_t>(std::max(n, 0))) {
    sums->hits += 1;
    sums->ndcg += Discount(rank);
  }
  sums->recall += rank < static_cast<size_t>(std::max(n, 0)) ? 1 : 0;  // one target: = HR
}

}  // namespace attnps::metrics
