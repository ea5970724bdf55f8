#include "ops/cpu_kernels.h"

#include <cpuid.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

extern "C" {
char* openblas_get_config(void);
char* openblas_get_corename(void);
}

namespace attnps {
namespace {

constexpr char kReexecMarker[] = "ATTNPS_BLAS_REEXEC";

uint64_t Xcr0() {
  uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

const char* TierName(VectorTier t) {
  switch (t) {
    case VectorTier::kSse:
      return "sse";
    case VectorTier::kAvx:
      return "avx";
    case VectorTier::kAvx2:
      return "avx2";
    case VectorTier::kAvx512:
      return "avx512";
    case VectorTier::kAvx512Bf16:
      return "avx512-bf16";
  }
  return "?";
}

}  // namespace

CpuFeatures DetectCpuFeatures() {
  CpuFeatures f;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  f.fma = ecx & (1u << 12);
  f.avx = ecx & (1u << 28);
  const bool osxsave = ecx & (1u << 27);
  if (osxsave) {
    const uint64_t xcr0 = Xcr0();
    f.os_avx = (xcr0 & 0x6) == 0x6;       // xmm, ymm
    f.os_avx512 = (xcr0 & 0xe6) == 0xe6;  // and opmask, zmm hi256, hi16 zmm
  }
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) {
    f.avx2 = ebx & (1u << 5);
    f.avx512f = ebx & (1u << 16);
    f.avx512dq = ebx & (1u << 17);
    f.avx512bw = ebx & (1u << 30);
    f.avx512vl = ebx & (1u << 31);
    f.amx_tile = edx & (1u << 24);
    const unsigned max_sub = eax;
    if (max_sub >= 1 && __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx)) {
      f.avx512_bf16 = eax & (1u << 5);
    }
  }
  return f;
}

VectorTier BestTier(const CpuFeatures& f) {
  const bool avx512 = f.os_avx512 && f.avx512f && f.avx512dq && f.avx512bw && f.avx512vl;
  if (avx512 && f.avx512_bf16) return VectorTier::kAvx512Bf16;
  if (avx512) return VectorTier::kAvx512;
  if (f.os_avx && f.avx2 && f.fma) return VectorTier::kAvx2;
  if (f.os_avx && f.avx) return VectorTier::kAvx;
  return VectorTier::kSse;
}

std::string DescribeCpu(const CpuFeatures& f) {
  std::string flags;
  for (const auto& [on, name] : {std::pair<bool, const char*>{f.avx512f, "avx512f"},
                                 {f.avx512dq, "avx512dq"},
                                 {f.avx512bw, "avx512bw"},
                                 {f.avx512vl, "avx512vl"},
                                 {f.avx512_bf16, "avx512_bf16"},
                                 {f.amx_tile, "amx_tile"},
                                 {f.avx2, "avx2"},
                                 {f.fma, "fma"},
                                 {f.avx, "avx"}}) {
    if (on) flags += std::string(flags.empty() ? "" : " ") + name;
  }
  return std::string(TierName(BestTier(f))) + " (" + flags + ")";
}

VectorTier OpenBlasCoreTier(const std::string& core) {
  static const std::pair<const char*, VectorTier> kCores[] = {
      {"Sandybridge", VectorTier::kAvx},
      {"Bulldozer", VectorTier::kAvx},
      {"Piledriver", VectorTier::kAvx},
      {"Haswell", VectorTier::kAvx2},
      {"Zen", VectorTier::kAvx2},
      {"Steamroller", VectorTier::kAvx2},
      {"Excavator", VectorTier::kAvx2},
      {"SkylakeX", VectorTier::kAvx512},
      {"Cooperlake", VectorTier::kAvx512Bf16},
      {"SapphireRapids", VectorTier::kAvx512Bf16}};
  for (const auto& [name, tier] : kCores) {
    if (strcasecmp(core.c_str(), name) == 0) return tier;
  }
  return VectorTier::kSse;  // Prescott, Core2, Nehalem, Atom, Opteron, ...
}

std::string OpenBlasCoreFor(VectorTier tier) {
  switch (tier) {
    case VectorTier::kAvx512Bf16:
      return "Cooperlake";
    case VectorTier::kAvx512:
      return "SkylakeX";
    case VectorTier::kAvx2:
      return "Haswell";
    case VectorTier::kAvx:
      return "Sandybridge";
    case VectorTier::kSse:
      return "Prescott";
  }
  return "Prescott";
}

BlasKernels CurrentBlasKernels() {
  BlasKernels b;
  b.config = openblas_get_config();
  b.core = openblas_get_corename();
  b.dynamic_arch = b.config.find("DYNAMIC_ARCH") != std::string::npos;
  return b;
}

KernelChoice ChooseBlasKernels(const CpuFeatures& cpu, const BlasKernels& blas,
                               const char* coretype_env, bool reexecuted) {
  KernelChoice c;
  const VectorTier want = BestTier(cpu), have = OpenBlasCoreTier(blas.core);
  const std::string library = blas.config.substr(0, blas.config.find(' ', 9));  // "OpenBLAS x.y"
  c.summary = "BLAS kernels " + blas.core + " (" + library + ") on a " + DescribeCpu(cpu) + " CPU";
  if (coretype_env != nullptr && *coretype_env != '\0') {
    c.summary +=
        reexecuted
            ? std::string("; OPENBLAS_CORETYPE=") + coretype_env +
                  " set by attnps: the library had detected a core below the CPU's"
            : std::string("; OPENBLAS_CORETYPE=") + coretype_env + " (yours)" +
                  (have < want ? std::string("; this CPU runs ") + TierName(want) + " kernels"
                               : "");
    return c;
  }
  if (have >= want) return c;
  if (!blas.dynamic_arch) {
    c.summary += "; WARNING: this OpenBLAS is not a DYNAMIC_ARCH build and runs " +
                 std::string(TierName(have)) + " kernels on a " + TierName(want) +
                 " CPU: install Debian's libopenblas0-openmp";
    return c;
  }
  c.reexec = !reexecuted;
  c.core = OpenBlasCoreFor(want);
  return c;
}

std::string UseBestBlasKernels(char** argv, const std::vector<EnvDefault>& load_time_env) {
  // The marker lists the variables the re-exec set: "OPENBLAS_CORETYPE OMP_WAIT_POLICY".
  const char* marker = std::getenv(kReexecMarker);
  const std::string set_by_us = marker ? std::string(" ") + marker + " " : "";
  const bool reexecuted = marker != nullptr;
  BlasKernels blas = CurrentBlasKernels();
  // Fault injection for tests/integration/blas_kernels.sh: the core the library "detected".
  const char* fake = std::getenv("ATTNPS_TEST_BLAS_CORE");
  if (fake != nullptr && !reexecuted) blas.core = fake;
  const KernelChoice c =
      ChooseBlasKernels(DetectCpuFeatures(), blas, std::getenv("OPENBLAS_CORETYPE"),
                        set_by_us.find(" OPENBLAS_CORETYPE ") != std::string::npos);
  std::string summary = c.summary;
  for (const EnvDefault& e : load_time_env) {
    if (set_by_us.find(" " + e.name + " ") != std::string::npos)
      summary += "; " + e.name + "=" + e.value + " set by attnps";
  }
  if (reexecuted) return summary;
  std::string setting = c.reexec ? "OPENBLAS_CORETYPE" : "";
  std::vector<const EnvDefault*> defaults;  // the ones this call sets
  for (const EnvDefault& e : load_time_env) {
    const bool user_chose = std::getenv(e.name.c_str()) != nullptr ||
                            (!e.unless.empty() && std::getenv(e.unless.c_str()) != nullptr);
    if (user_chose) continue;
    defaults.push_back(&e);
    setting += (setting.empty() ? "" : " ") + e.name;
  }
  if (setting.empty()) return summary;
  if (c.reexec) setenv("OPENBLAS_CORETYPE", c.core.c_str(), 1);
  for (const EnvDefault* e : defaults) setenv(e->name.c_str(), e->value.c_str(), 1);
  setenv(kReexecMarker, setting.c_str(), 1);
  execv("/proc/self/exe", argv);
  // exec failed: go on as loaded (the libraries read the variables at load time only).
  const std::string why = std::strerror(errno);
  if (c.reexec) unsetenv("OPENBLAS_CORETYPE");
  for (const EnvDefault* e : defaults) unsetenv(e->name.c_str());
  unsetenv(kReexecMarker);
  return summary + "; re-executing with " + setting + " set failed: " + why;
}

}  // namespace attnps
