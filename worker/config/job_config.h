// Loading, validating and overriding the job configuration (proto/job_config.proto, text format).
//
// Flow of the CLI: LoadJobConfig(path, overrides, &config) = parse the file, apply the
// `--set=path=value` overrides, validate. Every function here is a pure function of its inputs and
// thread-compatible (no shared state).
//
// Error contract: malformed text fails with InvalidArgument whose message starts with
// `<name>:<line>:<column>: ` (1-based; a tab advances the column to the next multiple of 8, as
// protobuf counts); a semantically invalid config fails with InvalidArgument naming every offending
// field path, e.g. `tables[1].dim: must be > 0, got 0`; a missing file is NotFound naming the path,
// a path that is not a regular file (a directory) InvalidArgument naming it, an unreadable file
// IoError naming it with the system's reason (strerror).
#ifndef ATTNPS_WORKER_CONFIG_JOB_CONFIG_H_
#define ATTNPS_WORKER_CONFIG_JOB_CONFIG_H_

#include <iterator>
#include <string>
#include <vector>

#include "ops/optimizer.h"
#include "ops/status.h"
#include "proto/job_config.pb.h"
#include "ps/table_config.h"

namespace attnps::config {

// Default layer sizes used when the repeated field is left empty.
inline constexpr int kDefaultMlpHidden[] = {200, 80};
inline constexpr int kDefaultAttentionHidden[] = {80, 40};

// Reads `path`, parses it and validates the result. `*out` is overwritten (also on error).
Status LoadJobConfig(const std::string& path, JobConfig* out);
// As above, with `overrides` (see ApplyOverrides) applied between parsing and validation.
Status LoadJobConfig(const std::string& path, const std::vector<std::string>& overrides,
                     JobConfig* out);

// Parses `text` (errors name `name_for_errors`, e.g. the file or "manifest") and validates it.
Status ParseJobConfig(const std::string& text, const std::string& name_for_errors, JobConfig* out);
// Parses only, without validation (for callers that apply overrides first).
Status ParseJobConfigText(const std::string& text, const std::string& name_for_errors,
                          JobConfig* out);

// Semantic checks (ranges, references between tables and features, model shapes). Reports every
// problem found, separated by "; ", each naming its field path. Sizes, counts and rates have upper
// bounds, every float must be finite, and products that size one allocation (batch x history x
// width, a weight matrix, all dense parameters) must stay within 2^31 floats (docs/config.md).
Status ValidateJobConfig(const JobConfig& config);

// Whether a checkpoint written by a job with config `saved` may be loaded (eval, predict, resume)
// by a job with config `now`. The settings that define the saved state must be equal: `tables`
// (count, order and every field except optimizer.learning_rate and optimizer.ftrl_alpha),
// `features`, `model` and `dense_optimizer.kind`. Everything else may change (data, train, ps,
// checkpoint, metrics, the learning rates, the rest of dense_optimizer); each such difference is
// appended to `*changed_settings` (when not null, whatever the result) as
// `train.epochs: 1 -> 2`. Fields compare with their defaults applied: unset equals set to the
// default, an empty mlp.hidden or attention_hidden equals the default layer list.
// Errors: InvalidArgument listing every differing state field, "; "-separated, as
// `tables[0].dim: 8 in the checkpoint, 16 now` (the model kind as `model.kind: din in the
// checkpoint, base now`).
Status CompareStateConfig(const JobConfig& saved, const JobConfig& now,
                          std::vector<std::string>* changed_settings);

// Applies overrides of the form `field.path=value`, in order. Paths follow the message structure:
// `train.batch_size=256`, `data.train_path=/x`, `tables[1].dim=32` or `tables[item].dim=32` (by
// name), `model.din.attention_normalization=SOFTMAX` (enums by name). A repeated scalar takes a
// comma-separated list (`model.mlp.hidden=256,128`; empty clears it); a message field takes a
// text-format body that replaces it (`model.base=` selects the base model). Does not validate.
// Errors: InvalidArgument naming the override and the unknown field or bad value; on error
// `*config` may hold the overrides before the failing one.
Status ApplyOverrides(const std::vector<std::string>& overrides, JobConfig* config);

// Table structs for the parameter server, ids 1..n in order of appearance.
// Precondition: ValidateJobConfig(config) is OK.
std::vector<ps::TableConfig> ToPsTables(const JobConfig& config);

// The CTR sample fields (1-based) that feature slots may read.
inline constexpr int kUserColumn = 2, kTargetItemColumn = 3, kTargetCateColumn = 4,
                     kHistItemsColumn = 5, kHistCatesColumn = 6, kFirstExtraColumn = 7;
inline constexpr int kMaxExtraColumns = 64;

// features.slots, or the slots that the three legacy fields stand for, in this order:
// target_item (column 3), target_cate (4), hist_items (5), hist_cates (6), then user (2) when
// features.user_table is set. No validation needed.
std::vector<FeatureSlot> CtrSlots(const JobConfig& config);

// A feature slot resolved against the tables. Precondition for the functions below:
// ValidateJobConfig(config) is OK.
struct SlotOptions {
  std::string name;
  int table = 0;  // index into config.tables (and ToPsTables)
  int dim = 0;    // the table's dim
  bool sequence = false;
  int column = 0;  // the CTR field, 1-based
};
std::vector<SlotOptions> ToSlotOptions(const JobConfig& config);
// data.extra_columns with -1 resolved: the extra fields every CTR line of the job's files has.
int ExtraColumns(const JobConfig& config);

// The training loop's plain options (worker/trainer.h). Precondition: valid.
struct TrainLoopOptions {
  std::string train_path, test_path, item_cates_path;  // data.*
  int prefetch_batches = 4;
  int batch_size = 128;  // train.*
  int epochs = 1;
  int64_t max_steps = 0;
  int staleness = 0;
  double progress_seconds = 5;
  int64_t eval_every_steps = 0;
  TrainConfig::Device device = TrainConfig::CPU;
  float clip_global_norm = 0;  // dense_optimizer.clip_global_norm
  std::string checkpoint_dir;  // checkpoint.*
  int64_t checkpoint_every_steps = 0;
  double checkpoint_every_minutes = 0;
  int keep_last = 3;
  bool save_at_end = true;
  std::string metrics_out;  // metrics.out_path
};
TrainLoopOptions ToTrainLoopOptions(const JobConfig& config);

// The dense optimizer's plain options. Precondition: ValidateJobConfig(config) is OK.
DenseOptimizerOptions ToDenseOptimizerOptions(const DenseOptimizerConfig& config);

// The config in text format; ParseJobConfig(ToText(c)) == c.
std::string ToText(const JobConfig& config);

// ---- Accessors with defaults applied --------------------------------------------------------

// The table named `name`, or nullptr.
const TableConfig* FindTable(const JobConfig& config, const std::string& name);
// mlp.hidden, or kDefaultMlpHidden when empty. (Inline: the models use it without linking this.)
inline std::vector<int> MlpHidden(const MlpConfig& mlp) {
  if (mlp.hidden_size() == 0) return {std::begin(kDefaultMlpHidden), std::end(kDefaultMlpHidden)};
  return {mlp.hidden().begin(), mlp.hidden().end()};
}
// <kind>.attention_hidden (DinModel, DienModel, BstModel), or kDefaultAttentionHidden when empty.
template <typename KindConfig>
std::vector<int> AttentionHidden(const KindConfig& kind) {
  if (kind.attention_hidden_size() == 0) {
    return {std::begin(kDefaultAttentionHidden), std::end(kDefaultAttentionHidden)};
  }
  return {kind.attention_hidden().begin(), kind.attention_hidden().end()};
}
// D: the dim of an item's embedding (the target item slot's table dim + the target category
// slot's). Precondition: valid.
int ItemDim(const JobConfig& config);

}  // namespace attnps::config

#endif  // ATTNPS_WORKER_CONFIG_JOB_CONFIG_H_
