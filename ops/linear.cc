#include "ops/linear.h"

#include "ops/blas.h"
#include "ops/device_dispatch.h"
#include "ops/shape_check.h"

namespace attnps {

void LinearForward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor* y) {
  Dim n("N"), i("I"), o("O");
  ShapeCheck("linear_forward", x.device())
      .Arg("x", x, {&n, &i})
      .Arg("w", w, {&i, &o})
      .Optional("b", b, {&o})
      .Arg("y", *y, {&n, &o})
      .Done();
  ATTNPS_RUN_ON_CUDA(x, LinearForward(x, w, b, y));
  const int64_t rows = n.value(), out = o.value();
  float* yd = y->data();
  if (!b.empty()) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < out; ++c) yd[r * out + c] = b[c];
  }
  Gemm(false, false, rows, out, i.value(), 1.0f, x.data(), i.value(), w.data(), out,
       b.empty() ? 0.0f : 1.0f, yd, out);
}

void LinearBackward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor* dw,
                    Tensor* db) {
  Dim n("N"), i("I"), o("O");
  ShapeCheck check("linear_backward", x.device());
  check.Arg("x", x, {&n, &i}).Arg("w", w, {&i, &o}).Arg("dy", dy, {&n, &o});
  if (dx) check.Arg("dx", *dx, {&n, &i});
  if (dw) check.Arg("dw", *dw, {&i, &o});
  if (db) check.Arg("db", *db, {&o});
  check.Done();
  ATTNPS_RUN_ON_CUDA(x, LinearBackward(x, w, dy, dx, dw, db));
  const int64_t rows = n.value(), in = i.value(), out = o.value();
  if (dx)
    Gemm(false, true, rows, in, out, 1.0f, dy.data(), out, w.data(), out, 1.0f, dx->data(), in);
  if (dw)
    Gemm(true, false, in, out, rows, 1.0f, x.data(), in, dy.data(), out, 1.0f, dw->data(), out);
  if (db) {
    float* g = db->data();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < out; ++c) g[c] += dy[r * out + c];
  }
}

namespace {

#ifdef ATTNPS_WITH_CUDA
constexpr auto DeviceGemmStridedBatched = cuda::GemmStridedBatched;
#else
constexpr auto DeviceGemmStridedBatched = GemmStridedBatched;  // no tensor is on a device
#endif

struct MatmulDims {
  int64_t g, m, k, p;
};

MatmulDims CheckMatmul(const char* op, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,
                       const Tensor& c) {
  Dim g("G"), m("M"), k("K"), p("P");
  ShapeCheck check(op, a.device());
  if (trans_a)
    check.Arg("a", a, {&g, &k, &m});
  else
    check.Arg("a", a, {&g, &m, &k});
  if (trans_b)
    check.Arg("b", b, {&g, &p, &k});
  else
    check.Arg("b", b, {&g, &k, &p});
  check.Arg("c", c, {&g, &m, &p}).Done();
  return {g.value(), m.value(), k.value(), p.value()};
}

}  // namespace

void BatchedMatmulForward(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor* c) {
  const MatmulDims d = CheckMatmul("batched_matmul_forward", a, trans_a, b, trans_b, *c);
  const auto gemm = a.device() == Device::kCUDA ? DeviceGemmStridedBatched : GemmStridedBatched;
  gemm(trans_a, trans_b, d.m, d.p, d.k, 1.0f, a.data(), d.m * d.k, b.data(), d.k * d.p, 0.0f,
       c->data(), d.m * d.p, d.g);
}

void BatchedMatmulBackward(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,
                           const Tensor& dc, Tensor* da, Tensor* db) {
  const MatmulDims d = CheckMatmul("batched_matmul_backward", a, trans_a, b, trans_b, dc);
  {
    ShapeCheck check("batched_matmul_backward", a.device());
    if (da) check.Like("da", *da, a);
    if (db) check.Like("db", *db, b);
  }
  const int64_t sa = d.m * d.k, sb = d.k * d.p, sc = d.m * d.p;
  const auto gemm = a.device() == Device::kCUDA ? DeviceGemmStridedBatched : GemmStridedBatched;
  if (da) {
    if (!trans_a) {
      gemm(false, !trans_b, d.m, d.k, d.p, 1.0f, dc.data(), sc, b.data(), sb, 1.0f, da->data(), sa,
           d.g);
    } else {
      gemm(trans_b, true, d.k, d.m, d.p, 1.0f, b.data(), sb, dc.data(), sc, 1.0f, da->data(), sa,
           d.g);
    }
  }
  if (db) {
    if (!trans_b) {
      gemm(!trans_a, false, d.k, d.p, d.m, 1.0f, a.data(), sa, dc.data(), sc, 1.0f, db->data(), sb,
           d.g);
    } else {
      gemm(true, trans_a, d.p, d.k, d.m, 1.0f, dc.data(), sc, a.data(), sa, 1.0f, db->data(), sb,
           d.g);
    }
  }
}

void CopyColumns(const Tensor& src, int64_t src_col0, Tensor* dst, int64_t dst_col0, int64_t width,
                 bool accumulate) {
  Dim r("R"), cs("Cs"), cd("Cd");
  ShapeCheck("copy_columns", src.device())
      .Arg("src", src, {&r, &cs})
      .Arg("dst", *dst, {&r, &cd})
      .Require(width >= 0 && src_col0 >= 0 && src_col0 + width <= cs.value(),
               "src columns in range")
      .Require(dst_col0 >= 0 && dst_col0 + width <= cd.value(), "dst columns in range")
      .Done();
  const int64_t rows = r.value(), sc = cs.value(), dc = cd.value();
  ATTNPS_RUN_ON_CUDA(src, CopyColumns(src.data(), rows, sc, src_col0, dst->data(), dc, dst_col0,
                                      width, accumulate));
  for (int64_t i = 0; i < rows; ++i) {
    const float* in = src.data() + i * sc + src_col0;
    float* out = dst->data() + i * dc + dst_col0;
    for (int64_t c = 0; c < width; ++c) out[c] = accumulate ? out[c] + in[c] : in[c];
  }
}

}  // namespace attnps
