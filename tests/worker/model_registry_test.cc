// A model kind is one file and one registration line: a toy model that attnps does not ship is
// registered here, validated through the job config, and trained and evaluated by the one loop.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <string>

#include "tests/worker/local_job.h"
#include "worker/models/ctr_model.h"

namespace attnps::worker {
namespace {

namespace fs = std::filesystem;

// logit = a * <q, mean of the valid history rows> + b: two dense weights.
class ToyModel final : public models::CtrModel {
 public:
  explicit ToyModel(float a) : params_(Tensor::Zeros({2})), grads_(Tensor::Zeros({2})) {
    params_.data()[0] = a;
    params_.data()[1] = 0;
  }
  Tensor& params() override { return params_; }
  Tensor& grads() override { return grads_; }
  Tensor& buffers() override { return buffers_; }

  void Forward(const models::CtrInputs& in, bool, Tensor* logits) override {
    const int64_t B = in.target.dim(0), D = in.target.dim(1);
    logits->EnsureShape({B});
    dot_.assign(B, 0.0f);
    count_.assign(B, 0.0f);
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t t = in.history_offsets[b]; t < in.history_offsets[b + 1]; ++t) {
        count_[b] += 1;
        for (int64_t d = 0; d < D; ++d) {
          dot_[b] += in.target.data()[b * D + d] * in.history.data()[t * D + d];
        }
      }
      if (count_[b] > 0) dot_[b] /= count_[b];
      logits->data()[b] = params_.data()[0] * dot_[b] + params_.data()[1];
    }
  }
  void Backward(const models::CtrInputs& in, const Tensor& dlogits,
                models::CtrInputGrads* g) override {
    const int64_t B = in.target.dim(0), D = in.target.dim(1);
    const float a = params_.data()[0];
    for (int64_t b = 0; b < B; ++b) {
      const float dl = dlogits.data()[b];
      grads_.data()[0] += dl * dot_[b];
      grads_.data()[1] += dl;
      if (count_[b] == 0) continue;
      const float s = dl * a / count_[b];
      for (int64_t t = in.history_offsets[b]; t < in.history_offsets[b + 1]; ++t) {
        for (int64_t d = 0; d < D; ++d) {
          g->target.data()[b * D + d] += s * in.history.data()[t * D + d];
          g->history.data()[t * D + d] += s * in.target.data()[b * D + d];
        }
      }
    }
  }

 private:
  Tensor params_, grads_, buffers_;
  std::vector<float> dot_, count_;
};

// The toy's one setting, model.custom.settings: "a=<initial scale>" (default 1).
float ToyScale(const config::ModelConfig& m) {
  const std::string& s = m.custom().settings();
  return s.empty() ? 1.0f : std::stof(s.substr(2));
}

void CheckToy(const config::ModelConfig& m, const models::CtrModelDims&, config::Problems* p,
              models::CtrModelSizes* sizes) {
  const std::string& s = m.custom().settings();
  if (!s.empty() && (s.rfind("a=", 0) != 0 || s.size() < 3 || !std::isdigit(s[2]))) {
    p->Add("model.custom.settings", "the toy model takes \"a=<number>\", got " + config::Quote(s));
  }
  sizes->mlp_input = 0;  // no MLP
}

std::unique_ptr<models::CtrModel> MakeToy(const config::ModelConfig& m, const models::CtrModelDims&,
                                          uint64_t) {
  return std::make_unique<ToyModel>(ToyScale(m));
}

const bool kRegistered = models::RegisterCtrModel({"toy", CheckToy, MakeToy});  // the one line

config::JobConfig ToyConfig(const std::string& dir, const std::string& settings) {
  config::JobConfig c = testing_local::Config(dir, "base {}");
  c.mutable_model()->mutable_custom()->set_name("toy");
  c.mutable_model()->mutable_custom()->set_settings(settings);
  c.mutable_tables(0)->mutable_optimizer()->set_learning_rate(0.2f);
  c.mutable_dense_optimizer()->set_learning_rate(0.05f);
  c.mutable_train()->set_epochs(3);
  return c;
}

TEST(ModelRegistryTest, ARegisteredKindIsValidatedByTheJobConfigInItsOnePlace) {
  ASSERT_TRUE(kRegistered);
  EXPECT_FALSE(models::RegisterCtrModel({"toy", CheckToy, MakeToy})) << "a name is taken once";
  EXPECT_NE(models::CtrModelNames().find("base, din"), std::string::npos);
  EXPECT_NE(models::CtrModelNames().find("toy"), std::string::npos);
  const std::string dir = testing::TempDir() + "/registry_validate";
  EXPECT_TRUE(config::ValidateJobConfig(ToyConfig(dir, "a=2")).ok());
  const Status bad = config::ValidateJobConfig(ToyConfig(dir, "scale"));
  EXPECT_NE(bad.message().find("model.custom.settings: the toy model takes"), std::string::npos)
      << bad.ToString();
  config::JobConfig unknown = ToyConfig(dir, "");
  unknown.mutable_model()->mutable_custom()->set_name("nope");
  const Status st = config::ValidateJobConfig(unknown);
  EXPECT_NE(st.message().find("model.custom.name: \"nope\" is not a registered model kind"),
            std::string::npos)
      << st.ToString();
}

TEST(ModelRegistryTest, ARegisteredToyModelTrainsAndEvaluatesThroughTheLoop) {
  const std::string dir = testing::TempDir() + "/registry_train";
  fs::remove_all(dir);
  testing_local::WriteData(dir, 3000, 3);
  const config::JobConfig c = ToyConfig(dir, "a=1");
  std::unique_ptr<ps::JobRuntime> job = testing_local::LocalRuntime(c, 1);
  Trainer trainer(job.get(), c, TrainerOptions());
  bool stopped = false;
  ASSERT_TRUE(trainer.AgreeToStart(trainer.Init(), &stopped).ok());
  ASSERT_TRUE(trainer.Train().ok());
  metrics::Record r;
  ASSERT_TRUE(trainer.Evaluate(&r).ok());
  EXPECT_EQ(trainer.model()->params().numel(), 2);
  EXPECT_NE(trainer.model()->params().data()[0], 1.0f) << "the dense weights never moved";
  EXPECT_GT(r.auc, 0.7) << "the toy model did not learn the cluster signal";
  EXPECT_TRUE(job->Finish().ok());
  // The checkpoint it wrote loads for evaluation with the same kind.
  TrainerOptions eval;
  eval.kind = JobKind::kEval;
  EXPECT_TRUE(testing_local::RunLocally(c, eval).ok());
}

}  // namespace
}  // namespace attnps::worker
