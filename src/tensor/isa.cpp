#include "tensor/isa.h"

#include <hwy/targets.h>

#include <atomic>
#include <cstdlib>
#include <mutex>

#include "util/error.h"

namespace h1bkv {
namespace {

constexpr Isa kAllPaths[] = {Isa::scalar, Isa::neon, Isa::avx2, Isa::avx512};  // lowest first per arch

// Highway target bits of each path (x86: avx2, avx512; 64-bit ARM: neon).
int64_t target_bits(Isa isa) {
#if HWY_ARCH_X86
  switch (isa) {
    case Isa::avx512: return HWY_AVX3_DL;
    case Isa::avx2: return HWY_AVX2;
    default: break;
  }
#elif HWY_ARCH_ARM_A64
  if (isa == Isa::neon) return HWY_NEON;
#endif
  (void)isa;
  return 0;
}

std::atomic<int> g_isa{-1};
std::string g_env_error;  // set once when H1BKV_ISA is invalid
std::atomic<bool> g_env_bad{false};  // g_env_error is set (before g_isa is)
std::once_flag g_init;

void apply(Isa isa) {
  // Highway dispatches to the best target in the mask: drop the targets above the chosen path.
  int64_t mask = hwy::SupportedTargets();
#if HWY_ARCH_X86
  if (isa != Isa::avx512) mask &= ~(int64_t)(HWY_AVX3_DL | HWY_AVX3);
  if (isa == Isa::scalar) mask &= ~(int64_t)HWY_AVX2;  // scalar uses the _ref kernels anyway
#elif HWY_ARCH_ARM_A64
  // NEON is Highway's baseline there (it cannot be masked off; scalar uses the _ref kernels); the
  // SVE targets have no kernels of ours, so they are left out and NEON's are chosen
  mask &= ~(int64_t)(HWY_SVE | HWY_SVE2 | HWY_SVE_256 | HWY_SVE2_128);
#endif
  hwy::GetChosenTarget().Update(mask);
  g_isa.store((int)isa);
}

Isa best() {
  const std::vector<Isa> s = supported_isas();
  return s.back();
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    case Isa::neon: return "neon";
  }
  return "?";
}

bool isa_supported(Isa isa) {
  if (isa == Isa::scalar) return true;
  const int64_t bits = target_bits(isa);
  return bits != 0 && (hwy::SupportedTargets() & bits) != 0 && (HWY_TARGETS & bits) != 0;
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> s;
  for (Isa i : kAllPaths)
    if (isa_supported(i)) s.push_back(i);
  return s;
}

Isa isa_from_name(const std::string& name) {
  for (Isa i : kAllPaths) {
    if (name != isa_name(i)) continue;
    if (!isa_supported(i)) {
      std::string have;
      for (Isa s : supported_isas()) have += std::string(have.empty() ? "" : ", ") + isa_name(s);
      throw Error("H1BKV_ISA=" + name + ": this CPU or build cannot run it (supported: " + have + ")");
    }
    return i;
  }
  throw Error("H1BKV_ISA=" + name + ": unknown kernel path (valid: scalar, avx2, avx512, neon)");
}

Isa active_isa() {
  // fast path (called per kernel call): set, and H1BKV_ISA was valid
  if (const int v = g_isa.load(std::memory_order_acquire); v >= 0 && !g_env_bad.load(std::memory_order_relaxed))
    return static_cast<Isa>(v);
  std::call_once(g_init, [] {
    const char* env = std::getenv("H1BKV_ISA");
    if (env && *env) {
      try {
        apply(isa_from_name(env));
        return;
      } catch (const Error& e) {
        g_env_error = e.what();
        g_env_bad.store(true);
      }
    }
    apply(best());
  });
  if (!g_env_error.empty()) throw Error(g_env_error);
  return static_cast<Isa>(g_isa.load());
}

void set_isa(Isa isa) {
  (void)active_isa();
  check(isa_supported(isa), std::string("kernel path ") + isa_name(isa) + " is not supported on this CPU");
  apply(isa);
}

}  // namespace h1bkv
