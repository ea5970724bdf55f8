// Random CTR batches for the model tests.
#ifndef ATTNPS_TESTS_WORKER_MODELS_CTR_INPUTS_TESTING_H_
#define ATTNPS_TESTS_WORKER_MODELS_CTR_INPUTS_TESTING_H_

#include <cstdint>
#include <random>

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

}  // namespace attnps::models::testing

#endif  // ATTNPS_TESTS_WORKER_MODELS_CTR_INPUTS_TESTING_H_
