// The ops library in one include: Tensor, shape checks and every CPU op (forward/backward pairs).
// See docs/ops.md for the conventions (shapes, = vs +=, workspaces, errors).
#ifndef ATTNPS_OPS_OPS_H_
#define ATTNPS_OPS_OPS_H_

#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/blas.h"
#include "ops/din_attention.h"
#include "ops/interaction.h"
#include "ops/linear.h"
#include "ops/loss.h"
#include "ops/multi_interest.h"
#include "ops/norm.h"
#include "ops/optimizer.h"
#include "ops/pooling.h"
#include "ops/rnn.h"
#include "ops/shape_check.h"
#include "ops/status.h"
#include "ops/tensor.h"

#endif  // ATTNPS_OPS_OPS_H_
