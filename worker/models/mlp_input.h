// The MLP input of the CTR models and its gradient split. Private to worker/models.
//
// Columns of a row: [user (U) | pooled (D) | q (D) | pooled * q (D) | extra (E)], U = 0 without a
// user feature, E = 0 without an extra block (DIN's multi-head target attention output).
#ifndef ATTNPS_WORKER_MODELS_MLP_INPUT_H_
#define ATTNPS_WORKER_MODELS_MLP_INPUT_H_

#include <cstdint>

#include "ops/tensor.h"

namespace attnps::models {

// B rows of D floats, row r at data + r * stride (a column block of a wider matrix).
struct RowBlock {
  float* data = nullptr;  // null: absent (a gradient that is not wanted)
  int64_t stride = 0;

  static RowBlock Of(const Tensor& t) {  // a contiguous [B, D] tensor, or absent when empty
    return {t.empty() ? nullptr : t.data(), t.empty() ? 0 : t.dim(-1)};
  }
};

class MlpInputLayout {
 public:
  MlpInputLayout(int64_t user_dim, int64_t d, int64_t extra_dim)
      : user_(user_dim), d_(d), extra_(extra_dim) {}

  int64_t width() const { return user_ + 3 * d_ + extra_; }
  int64_t user_dim() const { return user_; }
  int64_t extra_dim() const { return extra_; }

  // x [B, width()] = the concatenation above; user [B, U] and extra [B, E] are read when their
  // widths are > 0.
  void Assemble(const Tensor& user, RowBlock pooled, RowBlock q, const Tensor& extra,
                Tensor* x) const;
  // Given dx [B, width()], accumulates (+=) into each present destination: duser [B, U],
  // dpooled and dq (through the product too, reading pooled and q), dextra [B, E].
  void Split(const Tensor& dx, RowBlock pooled, RowBlock q, Tensor* duser, RowBlock dpooled,
             RowBlock dq, Tensor* dextra) const;

 private:
  int64_t user_, d_, extra_;
};

}  // namespace attnps::models

#endif  // ATTNPS_WORKER_MODELS_MLP_INPUT_H_
