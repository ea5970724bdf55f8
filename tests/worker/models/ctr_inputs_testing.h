// Random CTR batches for the model tests.
#ifndef ATTNPS_TESTS_WORKER_MODELS_CTR_INPUTS_TESTING_H_
#define ATTNPS_TESTS_WORKER_MODELS_CTR_INPUTS_TESTING_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "tests/ops/gradcheck.h"
#include "worker/models/ctr_model.h"

namespace attnps::models::testing {

// B samples with D = 4: history lengths 0 (row 0), 1 (row 1) and random in [2, 5] after; the
// negatives [N, D] when `negatives`, the user [B, user_dim] when user_dim > 0. Draw order: target,
// lengths, history, negatives, user.
inline CtrInputs RandomCtrInputs(int64_t b, int user_dim, bool negatives, std::mt19937* rng) {
  const int64_t d = 4;
  CtrInputs in;
  in.target = attnps::testing::RandomTensor({b, d}, rng);
  in.history_offsets.assign(1, 0);
  std::uniform_int_distribution<int> len(2, 5);
  for (int64_t r = 0; r < b; ++r) {
    const int l = r == 0 ? 0 : r == 1 ? 1 : len(*rng);
    in.history_offsets.push_back(in.history_offsets.back() + l);
  }
  const int64_t n = in.history_offsets.back();
  in.history = attnps::testing::RandomTensor({n, d}, rng);
  if (negatives) in.negatives = attnps::testing::RandomTensor({n, d}, rng);
  if (user_dim > 0) in.user = attnps::testing::RandomTensor({b, user_dim}, rng);
  return in;
}

// Labels [B]: 1 at even rows, 0 at odd ones.
inline Tensor AlternatingLabels(int64_t b) {
  Tensor y = Tensor::Zeros({b});
  for (int64_t r = 0; r < b; r += 2) y[r] = 1.0f;
  return y;
}

// The whole-model gradient check: L = model->TrainStep(in, labels) (its loss, BCE plus the
// model's own terms) against finite differences of the weights (doubled first, so that every
// path carries a visible gradient) and of the inputs named in `checked`, in that order ("target",
// "history", "user", "negatives"). Unchecked non-empty inputs get their gradients in scratch.
inline ::testing::AssertionResult TrainStepGradientsMatch(
    CtrModel* model, CtrInputs* in, const Tensor& labels, const std::vector<std::string>& checked,
    const attnps::testing::GradCheckOptions& options) {
  Tensor& params = model->params();
  for (int64_t i = 0; i < params.numel(); ++i) params[i] *= 2.0f;
  auto zeros_like = [](const Tensor& t) { return t.empty() ? Tensor() : Tensor::Zeros(t.shape()); };
  auto scratch = [&] {
    return CtrInputGrads{zeros_like(in->target), zeros_like(in->history), zeros_like(in->user),
                         zeros_like(in->negatives)};
  };
  auto input = [](CtrInputs* x, const std::string& name) {
    return name == "target"    ? &x->target
           : name == "history" ? &x->history
           : name == "user"    ? &x->user
                               : &x->negatives;
  };
  auto grad = [](CtrInputGrads* g, const std::string& name) {
    return name == "target"    ? &g->target
           : name == "history" ? &g->history
           : name == "user"    ? &g->user
                               : &g->negatives;
  };
  std::vector<attnps::testing::NamedInput> inputs = {{"params", &params}};
  for (const std::string& name : checked) inputs.push_back({name, input(in, name)});
  Tensor logits;
  auto forward = [&] {
    CtrInputGrads g = scratch();
    Tensor loss = Tensor::Zeros({1});
    loss[0] = static_cast<float>(model->TrainStep(*in, labels, 0.0f, &logits, &g));
    return std::vector<Tensor>{loss};
  };
  auto backward = [&](const std::vector<Tensor>& dys, std::vector<Tensor>* dxs) {
    model->grads().SetZero();
    CtrInputGrads g = scratch();
    for (size_t k = 0; k < checked.size(); ++k) *grad(&g, checked[k]) = (*dxs)[k + 1];
    model->TrainStep(*in, labels, dys[0][0], &logits, &g);
    (*dxs)[0].CopyFrom(model->grads());
  };
  return attnps::testing::GradientsMatch(inputs, forward, backward, options);
}

}  // namespace attnps::models::testing

#endif  // ATTNPS_TESTS_WORKER_MODELS_CTR_INPUTS_TESTING_H_
