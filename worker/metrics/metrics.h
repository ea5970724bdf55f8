// Evaluation metrics of CTR models (AUC, GAUC, logloss), an evaluator that accumulates batches and
// merges across workers, and the JSON-lines record a run appends per evaluation.
//
// Labels are 0/1 floats (a label >= 0.5 counts as positive). Mismatched lengths are a programming
// error and CHECK-fail. A metric that is undefined for its input (one class only, empty input, a
// NaN score) is NaN, never an error. All functions are pure; CtrEvaluator is thread-compatible
// (one writer; const methods may run concurrently).
#ifndef ATTNPS_WORKER_METRICS_METRICS_H_
#define ATTNPS_WORKER_METRICS_METRICS_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "ops/status.h"

namespace attnps::metrics {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// Probabilities are clipped to [kLogLossEps, 1 - kLogLossEps] by LogLoss.
inline constexpr double kLogLossEps = 1e-7;

// Area under the ROC curve; tied scores get their average rank (equal to sklearn's
// roc_auc_score). O(n log n). NaN when only one class is present or a score is NaN.
double Auc(const std::vector<float>& labels, const std::vector<float>& scores);

// User-weighted mean AUC over the users that have both labels, weighted by the user's number of
// samples (as din_torch.py's gauc). NaN when no user has both labels.
double Gauc(const std::vector<uint64_t>& users, const std::vector<float>& labels,
            const std::vector<float>& scores);

// Mean binary cross-entropy of probabilities, clipped to [kLogLossEps, 1 - kLogLossEps].
// NaN when empty.
double LogLoss(const std::vector<float>& labels, const std::vector<float>& probabilities);
// Mean binary cross-entropy of logits, computed stably (max(x, 0) - x y + log1p(exp(-|x|)), as
// BCEWithLogitsLoss; no clipping). NaN when empty.
double LogLossFromLogits(const std::vector<float>& labels, const std::vector<float>& logits);

struct CtrResult {
  double auc = kNaN;
  double gauc = kNaN;     // NaN when no users were given
  double logloss = kNaN;  // from the logits
  int64_t samples = 0;
  double positive_rate = kNaN;    // mean label
  double mean_prediction = kNaN;  // mean sigmoid(logit)
};

// Accumulates (label, logit, user) triples of an evaluation pass. Workers can combine their parts
// with Merge (in-process) or by exchanging labels()/logits()/users() and calling Add.
class CtrEvaluator {
 public:
  // Appends n samples. `users` may be nullptr when no user ids are known; then GAUC is NaN for the
  // whole evaluator (mixing calls with and without users CHECK-fails).
  void Add(const float* labels, const float* logits, const uint64_t* users, size_t n);
  void Merge(const CtrEvaluator& other);
  // The samples as bytes (count, labels, logits, users; host byte order), to move an evaluator
  // between the workers of one job.
  std::string Serialize() const;
  // Appends the samples of Serialize()'s bytes; false (nothing appended) when they do not parse.
  bool AppendSerialized(const std::string& bytes);
  void Clear();

  CtrResult Compute() const;

  size_t size() const { return labels_.size(); }
  const std::vector<float>& labels() const { return labels_; }
  const std::vector<float>& logits() const { return logits_; }
  const std::vector<uint64_t>& users() const { return users_; }

 private:
  std::vector<float> labels_;
  std::vector<float> logits_;
  std::vector<uint64_t> users_;  // empty, or one per sample
};

// One line of the metrics file. NaN or infinite values are written as null.
struct Record {
  int64_t step = 0;
  int epoch = 0;
  std::string split;  // "train", "test"
  int64_t samples = 0;
  double auc = kNaN;
  double gauc = kNaN;
  double logloss = kNaN;
  double time_s = 0;
  // Further numeric fields written after the standard ones, in order (e.g. {"loss", 0.51}).
  std::vector<std::pair<std::string, double>> extra;
};

// A Record with the metrics of `result`.
Record MakeRecord(int64_t step, int epoch, const std::string& split, const CtrResult& result,
                  double time_s);

// One compact JSON object, without a trailing newline, e.g.
// {"step":120,"epoch":1,"split":"test","samples":1886,"auc":0.8031,"gauc":0.7712,
//  "logloss":0.5123,"time_s":12.5}. Doubles are written with 6 significant digits.
std::string MetricsJsonLine(const Record& record);

// Appends `line` and a newline to the file at `path` (created when absent) and flushes.
// Errors: IoError naming the path.
Status AppendJsonLine(const std::string& path, const std::string& line);

}  // namespace attnps::metrics

#endif  // ATTNPS_WORKER_METRICS_METRICS_H_
