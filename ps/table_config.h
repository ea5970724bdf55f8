// Plain configuration structs of an embedding table (the job config's protobuf is translated into
// these at the edge). Defaults are the common choices of CTR models.
#ifndef ATTNPS_PS_TABLE_CONFIG_H_
#define ATTNPS_PS_TABLE_CONFIG_H_

#include <cstdint>
#include <string>

namespace attnps::ps {

enum class InitializerKind { kZeros, kUniform, kTruncatedNormal };

struct InitializerConfig {
  InitializerKind kind = InitializerKind::kTruncatedNormal;
  float low = -0.05f, high = 0.05f;  // kUniform: [low, high)
  float stddev = 0.01f;              // kTruncatedNormal: N(0, stddev) truncated at 2 stddev
};

enum class SparseOptimizerKind { kSgd, kAdagrad, kAdam, kFtrl };

// Which step count Adam's bias correction uses: the global step of the push (as torch's
// SparseAdam and TF's LazyAdam do: a row first touched late moves by about 3 lr), or the row's own
// update count (a row's first update moves it by about lr, whenever it comes).
enum class AdamBiasCorrection { kGlobalStep, kRowStep };

struct SparseOptimizerConfig {
  SparseOptimizerKind kind = SparseOptimizerKind::kAdagrad;
  float learning_rate = 0.01f;
  float initial_accumulator = 0.1f;                                            // Adagrad
  float epsilon = 1e-8f;                                                       // Adagrad, Adam
  float beta1 = 0.9f, beta2 = 0.999f;                                          // Adam
  AdamBiasCorrection adam_bias_correction = AdamBiasCorrection::kGlobalStep;   // Adam
  float ftrl_alpha = 0.05f, ftrl_beta = 1.0f, ftrl_l1 = 0.0f, ftrl_l2 = 0.0f;  // FTRL-Proximal
};

// What a pull returns for a key that has no row yet (not admitted).
enum class UnadmittedValue { kInitializer, kZeros };

struct AdmissionConfig {
  uint32_t min_count = 1;  // a key gets a row at its min_count-th pull; 1 = at the first
  UnadmittedValue unadmitted_value = UnadmittedValue::kInitializer;
};

struct EvictionConfig {
  uint64_t ttl_steps = 0;  // evict rows not updated for this many global steps; 0 = never
  uint64_t max_rows =
      0;  // keep at most this many rows per shard (least recently updated go first); 0 = unbounded
};

struct TableConfig {
  std::string name;
  uint32_t id = 0;  // stable table id (part of the initializer stream and the storage key)
  int dim = 8;
  uint64_t seed = 1;
  InitializerConfig initializer;
  SparseOptimizerConfig optimizer;
  AdmissionConfig admission;
  EvictionConfig eviction;
};

}  // namespace attnps::ps

#endif  // ATTNPS_PS_TABLE_CONFIG_H_
