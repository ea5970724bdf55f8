// Retrieval examples cut from the per-user sequences of sequences.tsv (sample.h's retrieval
// line): the user split, the training examples, and the held-out queries of the two evaluation
// protocols (docs/data.md, "Retrieval examples").
//
// All functions are pure: the same sequence and options give the same output on every worker and
// every run, so a resumed job cuts the same examples. Thread-safe.
#ifndef ATTNPS_WORKER_DATA_RETRIEVAL_EXAMPLES_H_
#define ATTNPS_WORKER_DATA_RETRIEVAL_EXAMPLES_H_

#include <cstdint>
#include <vector>

#include "ops/status.h"
#include "worker/data/sample.h"

namespace attnps::data {

enum class UserGroup { kTrain, kValid, kTest };

// Users go to valid with probability valid_fraction, to test with test_fraction, the rest to
// train, by a hash of (seed, user): a user's group depends on nothing else.
struct UserSplitOptions {
  double valid_fraction = 0.1;
  double test_fraction = 0.1;
  uint64_t seed = 0;
};

// InvalidArgument naming the field unless both fractions are in [0, 1) and sum below 1.
Status ValidateUserSplit(const UserSplitOptions& options);
UserGroup GroupOfUser(uint64_t user, const UserSplitOptions& options);

// A history (oldest first, at most the window's length) and the items it is to predict.
struct RetrievalExample {
  uint64_t user = 0;
  std::vector<uint64_t> hist_items, hist_cates;
  std::vector<uint64_t> target_items, target_cates;

  bool operator==(const RetrievalExample& o) const {
    return user == o.user && hist_items == o.hist_items && hist_cates == o.hist_cates &&
           target_items == o.target_items && target_cates == o.target_cates;
  }
};

// Next-item training examples: one per position p with min_history <= p < len, history the last
// `window` items before p, target item p. Appends to *out. Preconditions: window >= 1,
// min_history >= 1.
void CutNextItemExamples(const RetrievalSample& sequence, int window, int min_history,
                         std::vector<RetrievalExample>* out);

// Sequence-encoder training windows, every position predicting its next item: from the end, the
// targets items[len - w, len), items[len - 2w, len - w), ... (w = window), each with the w items
// before each target as its history (hist_items[i] predicts target_items[i]); the oldest window
// may be shorter and starts at target 1. Appends to *out; nothing for len < 2.
void CutSequenceWindows(const RetrievalSample& sequence, int window,
                        std::vector<RetrievalExample>* out);

// The ComiRec protocol: the first k = floor(len * history_fraction) behaviours in (the last
// `window` of them kept), the rest (len - k) to predict. False (nothing written) when k < 1 or
// nothing is left to predict.
bool ComiRecQuery(const RetrievalSample& sequence, double history_fraction, int window,
                  RetrievalExample* query);

// The SASRec protocol: the last behaviour to predict, the `window` before it in. False for
// len < 2.
bool LeaveOneOutQuery(const RetrievalSample& sequence, int window, RetrievalExample* query);

// `count` distinct items of [1, num_items] the user never interacted with, uniform, drawn from a
// stream keyed by (seed, user): the SASRec protocol's candidates. Fewer when fewer unseen items
// exist.
void SampleUnseenItems(const RetrievalSample& sequence, uint64_t num_items, int count,
                       uint64_t seed, std::vector<uint64_t>* out);

}  // namespace attnps::data

#endif  // ATTNPS_WORKER_DATA_RETRIEVAL_EXAMPLES_H_
