#include "worker/data/retrieval_examples.h"

#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "ops/random.h"

namespace attnps::data {
namespace {

constexpr uint64_t kSplitStream = 0x5553455253ull;     // "USERS"
constexpr uint64_t kUnseenStream = 0x554e5345454eull;  // "UNSEEN"

bool InUnitInterval(double x) { return x >= 0 && x < 1; }

// example->hist_* = sequence [begin, end), example->target_* = sequence [t0, t1).
void Fill(const RetrievalSample& s, size_t begin, size_t end, size_t t0, size_t t1,
          RetrievalExample* example) {
  example->user = s.user;
  example->hist_items.assign(s.items.begin() + begin, s.items.begin() + end);
  example->hist_cates.assign(s.cates.begin() + begin, s.cates.begin() + end);
  example->target_items.assign(s.items.begin() + t0, s.items.begin() + t1);
  example->target_cates.assign(s.cates.begin() + t0, s.cates.begin() + t1);
}

// The first index of the last `window` items before `end`.
size_t WindowStart(size_t end, int window) {
  const size_t w = static_cast<size_t>(window);
  return end > w ? end - w : 0;
}

}  // namespace

Status ValidateUserSplit(const UserSplitOptions& o) {
  if (!InUnitInterval(o.valid_fraction)) {
    return Status::InvalidArgument("valid_fraction must be in [0, 1), got " +
                                   std::to_string(o.valid_fraction));
  }
  if (!InUnitInterval(o.test_fraction)) {
    return Status::InvalidArgument("test_fraction must be in [0, 1), got " +
                                   std::to_string(o.test_fraction));
  }
  if (!(o.valid_fraction + o.test_fraction < 1)) {
    return Status::InvalidArgument(
        "valid_fraction + test_fraction must be < 1 (no user is left "
        "to train on), got " +
        std::to_string(o.valid_fraction + o.test_fraction));
  }
  return Status::Ok();
}

UserGroup GroupOfUser(uint64_t user, const UserSplitOptions& o) {
  const double u = StreamUniform53(StreamKey(o.seed, kSplitStream), user);
  if (u < o.test_fraction) return UserGroup::kTest;
  if (u < o.test_fraction + o.valid_fraction) return UserGroup::kValid;
  return UserGroup::kTrain;
}

void CutNextItemExamples(const RetrievalSample& s, int window, int min_history,
                         std::vector<RetrievalExample>* out) {
  CHECK(window >= 1 && min_history >= 1) << "window " << window << ", min_history " << min_history;
  for (size_t p = static_cast<size_t>(min_history); p < s.items.size(); ++p) {
    out->emplace_back();
    Fill(s, WindowStart(p, window), p, p, p + 1, &out->back());
  }
}

void CutSequenceWindows(const RetrievalSample& s, int window, std::vector<RetrievalExample>* out) {
  CHECK(window >= 1) << "window " << window;
  const size_t w = static_cast<size_t>(window);
  for (size_t end = s.items.size(); end >= 2;) {
    const size_t begin = end > w + 1 ? end - w : 1;  // targets [begin, end), never item 0
    out->emplace_back();
    RetrievalExample& e = out->back();
    Fill(s, begin - 1, end - 1, begin, end, &e);
    end = begin;
  }
}

bool ComiRecQuery(const RetrievalSample& s, double history_fraction, int window,
                  RetrievalExample* query) {
  const size_t len = s.items.size();
  const size_t k = static_cast<size_t>(std::floor(static_cast<double>(len) * history_fraction));
  if (k < 1 || k >= len) return false;
  Fill(s, WindowStart(k, window), k, k, len, query);
  return true;
}

bool LeaveOneOutQuery(const RetrievalSample& s, int window, RetrievalExample* query) {
  const size_t len = s.items.size();
  if (len < 2) return false;
  Fill(s, WindowStart(len - 1, window), len - 1, len - 1, len, query);
  return true;
}

void SampleUnseenItems(const RetrievalSample& s, uint64_t num_items, int count, uint64_t seed,
                       std::vector<uint64_t>* out) {
  out->clear();
  std::vector<uint64_t> seen(s.items);
  std::sort(seen.begin(), seen.end());
  seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
  const auto in_range =
      std::count_if(seen.begin(), seen.end(), [&](uint64_t i) { return i >= 1 && i <= num_items; });
  const uint64_t unseen = num_items - static_cast<uint64_t>(in_range);
  const uint64_t want = std::min<uint64_t>(static_cast<uint64_t>(std::max(count, 0)), unseen);
  const uint64_t key = StreamKey(seed, kUnseenStream, s.user);
  auto is_seen = [&](uint64_t i) { return std::binary_search(seen.begin(), seen.end(), i); };
  if (unseen <= 4 * want) {  // few left: a partial shuffle of the unseen ids
    for (uint64_t i = 1; i <= num_items; ++i) {
      if (!is_seen(i)) out->push_back(i);
    }
    for (uint64_t i = 0; i < want; ++i) {
      const uint64_t j = i + StreamBits(key, i) % (out->size() - i);
      std::swap((*out)[i], (*out)[j]);
    }
    out->resize(want);
    return;
  }
  std::vector<uint64_t> chosen;  // sorted, for the distinctness check
  // More than 3/4 of the unseen items stay unchosen: a draw that hits an unseen one is new.
  for (uint64_t draw = 0; out->size() < want; ++draw) {
    const uint64_t item = 1 + StreamBits(key, draw) % num_items;
    if (is_seen(item)) continue;
    auto at = std::lower_bound(chosen.begin(), chosen.end(), item);
    if (at != chosen.end() && *at == item) continue;
    chosen.insert(at, item);
    out->push_back(item);
  }
}

}  // namespace attnps::data
