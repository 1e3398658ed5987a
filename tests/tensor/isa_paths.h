// Test helper: run a check on every kernel path (tensor/isa.h). Paths this CPU or build cannot
// run are skipped with GTEST_SKIP naming them, so a run says which it did not cover.
#pragma once
#include <gtest/gtest.h>

#include <string>

#include "tensor/isa.h"

namespace h1bkv::testing {

inline const Isa kAllIsas[] = {Isa::scalar, Isa::avx2, Isa::avx512, Isa::neon};

// Sets path `isa` for the scope, restoring the previous one after.
class IsaScope {
 public:
  explicit IsaScope(Isa isa) : prev_(active_isa()) { set_isa(isa); }
  ~IsaScope() { set_isa(prev_); }
  IsaScope(const IsaScope&) = delete;
  IsaScope& operator=(const IsaScope&) = delete;

 private:
  Isa prev_;
};

inline std::string isa_param_name(Isa isa) { return isa_name(isa); }

}  // namespace h1bkv::testing

// In a test parameterized over Isa: skip when the machine cannot run it.
#define H1BKV_SKIP_UNSUPPORTED_ISA(isa)                                                     \
  do {                                                                                      \
    if (!::h1bkv::isa_supported(isa))                                                       \
      GTEST_SKIP() << "kernel path " << ::h1bkv::isa_name(isa) << " not supported by this CPU or build"; \
  } while (0)
