// Which vector kernels this CPU can run, and whether the BLAS library runs them.
//
// Debian 12's OpenBLAS 0.3.21 (a DYNAMIC_ARCH build) picks its kernels when it loads, from the CPU
// models it knows: on a CPU newer than it (e.g. a Sapphire Rapids Xeon) it falls back to its
// "Prescott" SSE3 kernels, 3x slower than the AVX-512 ones the CPU runs. The library reads
// OPENBLAS_CORETYPE at load time only, so the fix is to set it and re-execute the program before
// anything else runs: UseBestBlasKernels, called first thing in main.
// Thread-safety: the queries are pure after the first call; UseBestBlasKernels runs before any
// other thread exists.
#ifndef ATTNPS_OPS_CPU_KERNELS_H_
#define ATTNPS_OPS_CPU_KERNELS_H_

#include <string>
#include <vector>

namespace attnps {

// The vector instruction tiers, in order; each includes the ones below it.
enum class VectorTier { kSse = 0, kAvx = 1, kAvx2 = 2, kAvx512 = 3, kAvx512Bf16 = 4 };

struct CpuFeatures {
  bool avx = false, avx2 = false, fma = false;
  bool avx512f = false, avx512dq = false, avx512bw = false, avx512vl = false;
  bool avx512_bf16 = false, amx_tile = false;
  bool os_avx = false, os_avx512 = false;  // the OS saves the ymm / zmm state (XCR0)
};

// cpuid and xgetbv of this CPU.
CpuFeatures DetectCpuFeatures();
// The best tier the CPU and the OS support.
VectorTier BestTier(const CpuFeatures& f);
// "avx512 (avx512f avx512dq avx512bw avx512vl avx2 fma)".
std::string DescribeCpu(const CpuFeatures& f);

// The tier of an OpenBLAS core name ("Prescott" -> kSse, "Haswell"/"Zen" -> kAvx2, "SkylakeX" ->
// kAvx512, "Cooperlake" -> kAvx512Bf16); kSse for names it does not know.
VectorTier OpenBlasCoreTier(const std::string& core);
// The OpenBLAS 0.3.21 core whose kernels use `tier` (the best this library version offers).
std::string OpenBlasCoreFor(VectorTier tier);

// The BLAS library in this process: OpenBLAS's configuration and the core whose kernels it runs.
struct BlasKernels {
  std::string config;  // openblas_get_config(): "OpenBLAS 0.3.21 DYNAMIC_ARCH ... USE_OPENMP ..."
  std::string core;    // openblas_get_corename(): "Haswell"
  bool dynamic_arch = false;  // the core can be chosen at load time (OPENBLAS_CORETYPE)
};
BlasKernels CurrentBlasKernels();

// What UseBestBlasKernels does, as a pure function of the CPU, the library and the environment.
struct KernelChoice {
  bool reexec = false;  // set OPENBLAS_CORETYPE = core and re-execute
  std::string core;     // the core to use when reexec
  std::string summary;  // one line for the log, e.g. "BLAS kernels SkylakeX (OpenBLAS 0.3.21
                        // detected Prescott on this avx512 CPU; OPENBLAS_CORETYPE=SkylakeX set)"
};
// coretype_env: OPENBLAS_CORETYPE or nullptr; reexecuted: this process is already the re-exec.
KernelChoice ChooseBlasKernels(const CpuFeatures& cpu, const BlasKernels& blas,
                               const char* coretype_env, bool reexecuted);

// An environment variable a library reads when it loads, and attnps's default for it; the default
// is not applied when the user set `name`, or `unless` (another variable that decides the same).
struct EnvDefault {
  std::string name, value;
  std::string unless;  // may be empty
};

// Called first in main (before threads, MPI or any BLAS call): when the BLAS library runs
// kernels below the CPU's tier and the user has not chosen a core (OPENBLAS_CORETYPE), sets it to
// the right core; sets each unset variable of `load_time_env` to its default (a user's value
// wins); and when it set anything, re-executes /proc/self/exe with the same arguments (once; a
// failed exec continues as loaded). Returns the summary line for the log, naming what it set.
std::string UseBestBlasKernels(char** argv, const std::vector<EnvDefault>& load_time_env = {});

}  // namespace attnps

#endif  // ATTNPS_OPS_CPU_KERNELS_H_
