// Parallel loops for the CPU kernels (OpenMP, sharing BLAS's thread pool; see ops/blas.h).
#ifndef ATTNPS_OPS_PARALLEL_H_
#define ATTNPS_OPS_PARALLEL_H_

#include <cstdint>

namespace attnps {

// Calls body(i) for i in [0, n); splits over threads when n * cost_per_item is large enough to
// pay for it. `body` must be safe to run concurrently for distinct i.
template <typename Body>
void ParallelFor(int64_t n, int64_t cost_per_item, const Body& body) {
  constexpr int64_t kMinParallelWork = 1 << 15;
#pragma omp parallel for schedule(static) if (n > 1 && n * cost_per_item >= kMinParallelWork)
  for (int64_t i = 0; i < n; ++i) body(i);
}

}  // namespace attnps

#endif  // ATTNPS_OPS_PARALLEL_H_
