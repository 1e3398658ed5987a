// Which kernel path the dispatched kernels (tensor/dot_*, quantize_act, kv sketch scores) take.
// Chosen once from cpuid (Highway's hwy::SupportedTargets) or forced lower with H1BKV_ISA:
//   scalar  the reference kernels (the tests' truth)
//   avx2    AVX2 + FMA + F16C (Highway target AVX2)
//   avx512  AVX-512 F/BW/VL/DQ + VNNI + BITALG/VPOPCNTDQ (Highway target AVX3_DL, Ice Lake and
//           later; a CPU with AVX-512 but without VNNI gets avx2)
//   neon    64-bit ARM Advanced SIMD (Highway target NEON): the quantized weight types' dots;
//           sdot (vdotq_s32) where the build targets Armv8.2-A with dotprod, else vmull + vpaddl
#pragma once
#include <string>
#include <vector>

namespace h1bkv {

enum class Isa { scalar, avx2, avx512, neon };

const char* isa_name(Isa isa);
// Parses a name; throws Error for an unknown name or one this CPU (or build) cannot run.
Isa isa_from_name(const std::string& name);
// Paths this CPU and build can run, lowest first (scalar always).
std::vector<Isa> supported_isas();
bool isa_supported(Isa isa);
// The active path: on first use H1BKV_ISA if set (an invalid value throws Error, every call),
// else the best supported.
Isa active_isa();
// Forces a supported path (tests, bench); throws Error for an unsupported one.
void set_isa(Isa isa);

}  // namespace h1bkv
