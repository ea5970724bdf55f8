#include "worker/models/mlp_input.h"

#include <glog/logging.h>

#include <algorithm>

namespace attnps::models {

void MlpInputLayout::Assemble(const Tensor& user, RowBlock pooled, RowBlock q, const Tensor& extra,
                              Tensor* x) const {
  const int64_t batch = x->dim(0), w = width(), d = d_;
  CHECK_EQ(x->dim(1), w);
  if (user_ > 0) CHECK_EQ(user.numel(), batch * user_) << "user feature [B, U]";
  if (extra_ > 0) CHECK_EQ(extra.numel(), batch * extra_) << "extra block [B, E]";
  for (int64_t r = 0; r < batch; ++r) {
    float* row = x->data() + r * w;
    if (user_ > 0) std::copy_n(user.data() + r * user_, user_, row);
    const float* p = pooled.data + r * pooled.stride;
    const float* t = q.data + r * q.stride;
    float* xp = row + user_;
    for (int64_t j = 0; j < d; ++j) {
      xp[j] = p[j];
      xp[d + j] = t[j];
      xp[2 * d + j] = p[j] * t[j];
    }
    if (extra_ > 0) std::copy_n(extra.data() + r * extra_, extra_, row + user_ + 3 * d);
  }
}

void MlpInputLayout::Split(const Tensor& dx, RowBlock pooled, RowBlock q, Tensor* duser,
                           RowBlock dpooled, RowBlock dq, Tensor* dextra) const {
  const int64_t batch = dx.dim(0), w = width(), d = d_;
  CHECK_EQ(dx.dim(1), w);
  const bool want_user = user_ > 0 && duser != nullptr && !duser->empty();
  const bool want_extra = extra_ > 0 && dextra != nullptr && !dextra->empty();
  for (int64_t r = 0; r < batch; ++r) {
    const float* row = dx.data() + r * w;
    if (want_user) {
      float* du = duser->data() + r * user_;
      for (int64_t j = 0; j < user_; ++j) du[j] += row[j];
    }
    const float* g = row + user_;
    const float* p = pooled.data + r * pooled.stride;
    const float* t = q.data + r * q.stride;
    if (dpooled.data != nullptr) {
      float* dp = dpooled.data + r * dpooled.stride;
      for (int64_t j = 0; j < d; ++j) dp[j] += g[j] + g[2 * d + j] * t[j];
    }
    if (dq.data != nullptr) {
      float* dt = dq.data + r * dq.stride;
      for (int64_t j = 0; j < d; ++j) dt[j] += g[d + j] + g[2 * d + j] * p[j];
    }
    if (want_extra) {
      float* de = dextra->data() + r * extra_;
      const float* ge = row + user_ + 3 * d;
      for (int64_t j = 0; j < extra_; ++j) de[j] += ge[j];
    }
  }
}

}  // namespace attnps::models
