#include "worker/data/recipe.h"

#include <glog/logging.h>

#include <algorithm>

#include "ops/random.h"
#include "worker/data/text.h"

namespace attnps::data {

uint64_t ActivityBucket(uint64_t n, int buckets) {
  CHECK_GE(n, 1u);
  uint64_t b = 1;
  while (n >>= 1) ++b;
  return std::min<uint64_t>(b, static_cast<uint64_t>(buckets));
}

std::string ActivityBucketRange(int bucket, int buckets) {
  const uint64_t lo = uint64_t{1} << (bucket - 1), hi = (uint64_t{1} << bucket) - 1;
  if (bucket == buckets) return std::to_string(lo) + "+";
  return lo == hi ? std::to_string(lo) : std::to_string(lo) + "-" + std::to_string(hi);
}

SampleWriter::SampleWriter(const RecipeOptions& options, std::vector<uint64_t> item_cate)
    : options_(options),
      item_cate_(std::move(item_cate)),
      num_items_(item_cate_.empty() ? 0 : item_cate_.size() - 1),
      rng_(options.seed),
      train_(StreamKey(options.seed, 0x5348554646ull), options.shuffle_memory_bytes) {
  CHECK_GE(options_.max_history, 1);
  sampler_ = [n = num_items_](std::mt19937_64* rng, size_t) { return 1 + UniformIndex(rng, n); };
}

Status SampleWriter::Open(const std::string& dir) {
  ATTNPS_RETURN_IF_ERROR(train_.Open(dir + "/train.tsv"));
  ATTNPS_RETURN_IF_ERROR(test_.Open(dir + "/test.tsv"));
  return sequences_.Open(dir + "/sequences.tsv");
}

uint64_t SampleWriter::DrawNegative(const std::vector<uint64_t>& sorted_set, size_t position) {
  for (int tries = 0;; ++tries) {
    uint64_t j = tries < kMaxNegativeTries ? sampler_(&rng_, position)
                                           : 1 + UniformIndex(&rng_, num_items_);
    if (!std::binary_search(sorted_set.begin(), sorted_set.end(), j)) return j;
  }
}

Status SampleWriter::AddUser(uint64_t user, const std::vector<uint64_t>& items) {
  sample_.extra.clear();
  return AddUserWithExtra(user, items);
}

Status SampleWriter::AddUser(uint64_t user, const std::vector<uint64_t>& items,
                             const std::vector<std::vector<uint64_t>>& extra) {
  sample_.extra = extra;
  return AddUserWithExtra(user, items);
}

Status SampleWriter::AddUserWithExtra(uint64_t user, const std::vector<uint64_t>& items) {
  if (items.size() < static_cast<size_t>(std::max(options_.min_user_events, 2))) {
    ++skipped_users_;
    return Status::Ok();
  }
  set_.assign(items.begin(), items.end());
  std::sort(set_.begin(), set_.end());
  set_.erase(std::unique(set_.begin(), set_.end()), set_.end());
  if (set_.size() >= num_items_) {
    LOG(WARNING) << "user " << user << " interacted with every item; no negative exists, skipped";
    ++skipped_users_;
    return Status::Ok();
  }
  ++users_with_samples_;
  RetrievalSample seq;
  seq.user = user;
  seq.items = items;
  for (uint64_t it : items) seq.cates.push_back(item_cate_[it]);
  line_.clear();
  AppendRetrievalLine(seq, &line_);
  ATTNPS_RETURN_IF_ERROR(sequences_.Append(line_));

  const size_t len = items.size();
  const size_t max_history = static_cast<size_t>(options_.max_history);
  sample_.user = user;
  if (options_.activity_buckets > 0) sample_.extra.emplace_back();
  for (size_t i = 1; i < len; ++i) {
    if (options_.activity_buckets > 0) {
      sample_.extra.back().assign(1, ActivityBucket(i, options_.activity_buckets));
    }
    size_t begin = i > max_history ? i - max_history : 0;
    sample_.hist_items.assign(items.begin() + begin, items.begin() + i);
    sample_.hist_cates.assign(seq.cates.begin() + begin, seq.cates.begin() + i);
    const bool is_test = i == len - 1;
    for (int label = 1; label >= 0; --label) {
      sample_.label = static_cast<float>(label);
      sample_.item = label == 1 ? items[i] : DrawNegative(set_, i);
      sample_.cate = item_cate_[sample_.item];
      line_.clear();
      AppendCtrLine(sample_, &line_);
      if (is_test) {
        ATTNPS_RETURN_IF_ERROR(test_.Append(line_));
        ++test_rows_;
      } else {
        ATTNPS_RETURN_IF_ERROR(train_.Add(line_));
      }
    }
  }
  return Status::Ok();
}

Status SampleWriter::Commit() {
  ATTNPS_RETURN_IF_ERROR(train_.Commit());
  ATTNPS_RETURN_IF_ERROR(test_.Commit());
  return sequences_.Commit();
}

Status WriteItemCates(const std::string& dir, const std::vector<uint64_t>& item_cate) {
  AtomicFile out;
  ATTNPS_RETURN_IF_ERROR(out.Open(dir + "/item_cates.tsv"));
  std::string line;
  for (size_t i = 1; i < item_cate.size(); ++i) {
    line.clear();
    AppendUint(i, &line);
    line.push_back('\t');
    AppendUint(item_cate[i], &line);
    line.push_back('\n');
    ATTNPS_RETURN_IF_ERROR(out.Append(line));
  }
  return out.Commit();
}

}  // namespace attnps::data
