#include "worker/models/retrieval_model.h"

#include <glog/logging.h>

#include "worker/models/retrieval_internal.h"

namespace attnps::models {
namespace {

// The kinds, in the order of the ModelConfig fields.
const std::vector<RetrievalModelKind>& Kinds() {
  static const std::vector<RetrievalModelKind> kinds = {
      MostPopularKind(), YoutubeDnnKind(), ComiRecSaKind(), ComiRecDrKind(), SelfAttentionKind()};
  return kinds;
}

const RetrievalModelKind* KindOf(const config::ModelConfig& config) {
  if (config.kind_case() == config::ModelConfig::KIND_NOT_SET) return nullptr;
  const auto* field = config::ModelConfig::descriptor()->FindFieldByNumber(config.kind_case());
  for (const RetrievalModelKind& k : Kinds()) {
    if (field != nullptr && k.name == field->name()) return &k;
  }
  return nullptr;
}

}  // namespace

bool IsRetrievalModel(const config::ModelConfig& config) { return KindOf(config) != nullptr; }

void CheckRetrievalModelConfig(const config::ModelConfig& config, const RetrievalModelDims& dims,
                               config::Problems* problems) {
  const RetrievalModelKind* kind = KindOf(config);
  CHECK(kind != nullptr) << "CheckRetrievalModelConfig: not a retrieval kind";
  kind->check(config, dims, problems);
}

Status MakeRetrievalModel(const config::ModelConfig& config, const RetrievalModelDims& dims,
                          uint64_t seed, std::unique_ptr<RetrievalModel>* out) {
  const RetrievalModelKind* kind = KindOf(config);
  if (kind == nullptr) return Status::InvalidArgument("model: not a retrieval model kind");
  config::Problems problems;
  kind->check(config, dims, &problems);
  if (dims.item_dim <= 0) problems.Add("tables", "the item dim must be positive");
  if (dims.max_history <= 0) problems.Add("data.max_history", "must be positive");
  ATTNPS_RETURN_IF_ERROR(problems.ToStatus());
  *out = kind->make(config, dims, seed);
  return Status::Ok();
}

// ---- MostPopular: no weights --------------------------------------------------------------------

RetrievalModelKind MostPopularKind() {
  return {"most_popular",
          [](const config::ModelConfig&, const RetrievalModelDims&, config::Problems*) {},
          [](const config::ModelConfig&, const RetrievalModelDims&,
             uint64_t) -> std::unique_ptr<RetrievalModel> { return nullptr; }};
}

}  // namespace attnps::models
