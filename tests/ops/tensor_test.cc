#include "ops/tensor.h"

#include <gtest/gtest.h>

#include "ops/shape_check.h"

namespace attnps {
namespace {

TEST(TensorTest, ZerosOwnsAlignedMemory) {
  Tensor t = Tensor::Zeros({3, 5});
  EXPECT_EQ(t.numel(), 15);
  EXPECT_EQ(t.ndim(), 2);
  EXPECT_TRUE(t.owns_memory());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data()) % 64, 0u);
  for (int64_t i = 0; i < t.numel(); ++i) EXPECT_EQ(t[i], 0.0f);
}

TEST(TensorTest, ViewsShareTheBufferAndKeepItAlive) {
  Tensor rows;
  {
    Tensor t = Tensor::FromVector({3, 2}, {0, 1, 2, 3, 4, 5});
    rows = t.Rows(1, 3);
    Tensor flat = t.Reshaped({6});
    flat[2] = 20.0f;
  }
  ASSERT_EQ(rows.shape(), Shape({2, 2}));
  EXPECT_EQ(rows[0], 20.0f);  // element (1, 0) of the original, written through the flat view
  EXPECT_EQ(rows[3], 5.0f);
}

TEST(TensorTest, CloneIsDeep) {
  Tensor t = Tensor::Filled({4}, 1.0f);
  Tensor c = t.Clone();
  c[0] = 7.0f;
  EXPECT_EQ(t[0], 1.0f);
}

TEST(TensorTest, EnsureCapacityReallocatesOnlyToGrow) {
  Tensor t = Tensor::Empty({10, 4});
  float* const buffer = t.data();
  t.EnsureCapacity({3, 4});
  EXPECT_EQ(t.shape(), (Shape{3, 4}));
  EXPECT_EQ(t.data(), buffer) << "a smaller shape keeps the buffer";
  t.EnsureCapacity({10, 4});
  EXPECT_EQ(t.data(), buffer);
  t.EnsureCapacity({11, 4});
  EXPECT_EQ(t.numel(), 44);
  EXPECT_NE(t.data(), buffer) << "a larger one reallocates";
  float raw[8];
  Tensor view = Tensor::View(raw, {2, 4});
  view.EnsureCapacity({1, 4});
  EXPECT_TRUE(view.owns_memory()) << "a raw view is never resized in place";
}

TEST(TensorTest, RawViewOwnsNothing) {
  float buf[6] = {1, 2, 3, 4, 5, 6};
  Tensor v = Tensor::View(buf, {2, 3});
  EXPECT_FALSE(v.owns_memory());
  EXPECT_EQ(v.dim(-1), 3);
  v[5] = 60.0f;
  EXPECT_EQ(buf[5], 60.0f);
}

TEST(TensorDeathTest, BadReshapeAndDimNameTheShape) {
  Tensor t = Tensor::Zeros({2, 3});
  EXPECT_DEATH(t.Reshaped({4, 2}), "Reshaped: \\[2, 3\\] -> \\[4, 2\\]");
  EXPECT_DEATH(t.dim(2), "dim\\(2\\) of a tensor of shape \\[2, 3\\]");
  EXPECT_DEATH(t.Rows(1, 3), "Rows\\(1, 3\\) of \\[2, 3\\]");
}

TEST(ShapeCheckDeathTest, ReportsFirstProblemAndAllShapes) {
  Tensor a = Tensor::Zeros({2, 3}), b = Tensor::Zeros({4, 5});
  Dim n("N"), k("K");
  EXPECT_DEATH(ShapeCheck("my_op").Arg("a", a, {&n, &k}).Arg("b", b, {&k, &n}).Done(),
               "my_op: b dim 0 is 4, expected K=3 \\(a=\\[2, 3\\] b=\\[4, 5\\]\\)");
}

TEST(TensorCudaTest, RoundTripThroughDeviceMemory) {
  if (!CudaAvailable()) GTEST_SKIP() << "no CUDA device (or built without CUDA)";
  Tensor host = Tensor::FromVector({2, 2}, {1, 2, 3, 4});
  Tensor device = host.Clone(Device::kCUDA);
  EXPECT_EQ(device.device(), Device::kCUDA);
  Tensor filled = Tensor::Empty({2, 2}, Device::kCUDA);
  filled.Fill(2.5f);
  EXPECT_EQ(device.ToVector(), host.ToVector());
  EXPECT_EQ(filled.ToVector(), std::vector<float>(4, 2.5f));
}

TEST(TensorTest, EnsureShapeKeepsTheBufferOfTheSameShapeAndReallocatesOtherwise) {
  Tensor t = Tensor::Filled({2, 3}, 1.5f);
  float* before = t.data();
  t.EnsureShape({2, 3});
  EXPECT_EQ(t.data(), before);
  EXPECT_EQ(t.ToVector(), std::vector<float>(6, 1.5f));
  t.EnsureShape({3, 3});
  EXPECT_EQ(t.shape(), (Shape{3, 3}));
  EXPECT_TRUE(t.owns_memory());
  Tensor empty;
  empty.EnsureShape({4});
  EXPECT_EQ(empty.numel(), 4);
}

}  // namespace
}  // namespace attnps
