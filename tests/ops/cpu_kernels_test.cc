// The BLAS kernel choice: a library that detected a core below the CPU's tier is re-executed with
// the right OPENBLAS_CORETYPE (once), a user's choice is kept, and a library that cannot switch
// is reported.
#include "ops/cpu_kernels.h"

#include <gtest/gtest.h>

namespace attnps {
namespace {

CpuFeatures Avx512Cpu() {
  CpuFeatures f;
  f.avx = f.avx2 = f.fma = f.os_avx = f.os_avx512 = true;
  f.avx512f = f.avx512dq = f.avx512bw = f.avx512vl = true;
  return f;
}

BlasKernels OpenBlas(const std::string& core, bool dynamic = true) {
  return {std::string("OpenBLAS 0.3.21 ") + (dynamic ? "DYNAMIC_ARCH " : "") + "USE_OPENMP", core,
          dynamic};
}

TEST(CpuKernelsTest, TiersOfCpusAndOpenBlasCores) {
  EXPECT_EQ(BestTier(Avx512Cpu()), VectorTier::kAvx512);
  CpuFeatures bf16 = Avx512Cpu();
  bf16.avx512_bf16 = true;
  EXPECT_EQ(BestTier(bf16), VectorTier::kAvx512Bf16);
  CpuFeatures no_os = Avx512Cpu();
  no_os.os_avx512 = false;  // the OS does not save zmm state: AVX-512 is unusable
  EXPECT_EQ(BestTier(no_os), VectorTier::kAvx2);
  EXPECT_EQ(BestTier(CpuFeatures()), VectorTier::kSse);
  EXPECT_EQ(OpenBlasCoreTier("Prescott"), VectorTier::kSse);
  EXPECT_EQ(OpenBlasCoreTier("Zen"), VectorTier::kAvx2);
  EXPECT_EQ(OpenBlasCoreTier("SkylakeX"), VectorTier::kAvx512);
  EXPECT_EQ(OpenBlasCoreFor(VectorTier::kAvx512), "SkylakeX");
  EXPECT_EQ(OpenBlasCoreFor(VectorTier::kAvx2), "Haswell");
}

TEST(CpuKernelsTest, APrescottFallbackOnAnAvx512CpuIsReexecutedWithSkylakeX) {
  const KernelChoice c = ChooseBlasKernels(Avx512Cpu(), OpenBlas("Prescott"), nullptr, false);
  EXPECT_TRUE(c.reexec);
  EXPECT_EQ(c.core, "SkylakeX");
  // The re-executed process runs SkylakeX and says who set it.
  const KernelChoice after = ChooseBlasKernels(Avx512Cpu(), OpenBlas("SkylakeX"), "SkylakeX", true);
  EXPECT_FALSE(after.reexec);
  EXPECT_NE(after.summary.find("BLAS kernels SkylakeX (OpenBLAS 0.3.21) on a avx512"),
            std::string::npos)
      << after.summary;
  EXPECT_NE(after.summary.find("set by attnps"), std::string::npos) << after.summary;
  // Never twice: a re-executed process that still sees a low core goes on.
  EXPECT_FALSE(ChooseBlasKernels(Avx512Cpu(), OpenBlas("Prescott"), nullptr, true).reexec);
}

TEST(CpuKernelsTest, MatchingKernelsAUsersCoreTypeAndAStaticLibraryAreLeftAlone) {
  EXPECT_FALSE(ChooseBlasKernels(Avx512Cpu(), OpenBlas("SkylakeX"), nullptr, false).reexec);
  const KernelChoice mine = ChooseBlasKernels(Avx512Cpu(), OpenBlas("Haswell"), "Haswell", false);
  EXPECT_FALSE(mine.reexec);
  EXPECT_NE(mine.summary.find("OPENBLAS_CORETYPE=Haswell (yours)"), std::string::npos);
  const KernelChoice fixed =
      ChooseBlasKernels(Avx512Cpu(), OpenBlas("Prescott", /*dynamic=*/false), nullptr, false);
  EXPECT_FALSE(fixed.reexec);
  EXPECT_NE(fixed.summary.find("WARNING"), std::string::npos) << fixed.summary;
}

TEST(CpuKernelsTest, ThisMachinesLibraryRunsKernelsOfItsCpusTier) {
  // attnps's main and ops_bench re-execute otherwise; the test binary does not, so this checks the
  // detection as the library does it here (the summary names both).
  const CpuFeatures cpu = DetectCpuFeatures();
  const BlasKernels blas = CurrentBlasKernels();
  EXPECT_FALSE(blas.core.empty());
  EXPECT_NE(blas.config.find("OpenBLAS"), std::string::npos) << blas.config;
  std::printf("cpu %s, %s\n", DescribeCpu(cpu).c_str(),
              ChooseBlasKernels(cpu, blas, nullptr, false).summary.c_str());
}

}  // namespace
}  // namespace attnps
