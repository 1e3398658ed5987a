#include "io/ggml_type.h"

namespace h1bkv {

const GgmlTypeInfo* ggml_type_info(uint32_t type) {
  // Block sizes from ggml-common.h: e.g. block_q4_0 = {f16 d; u8 qs[16]} = 18 bytes for 32 values.
  static const GgmlTypeInfo F32{"F32", 1, 4}, F16{"F16", 1, 2}, BF16{"BF16", 1, 2},
      Q4_0{"Q4_0", 32, 18}, Q4_1{"Q4_1", 32, 20}, Q5_0{"Q5_0", 32, 22}, Q5_1{"Q5_1", 32, 24},
      Q8_0{"Q8_0", 32, 34}, Q8_1{"Q8_1", 32, 36}, Q2_K{"Q2_K", 256, 84}, Q3_K{"Q3_K", 256, 110},
      Q4_K{"Q4_K", 256, 144}, Q5_K{"Q5_K", 256, 176}, Q6_K{"Q6_K", 256, 210},
      Q8_K{"Q8_K", 256, 292}, I8{"I8", 1, 1}, I16{"I16", 1, 2}, I32{"I32", 1, 4},
      I64{"I64", 1, 8}, F64{"F64", 1, 8};
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::F32: return &F32;
    case GgmlType::F16: return &F16;
    case GgmlType::BF16: return &BF16;
    case GgmlType::Q4_0: return &Q4_0;
    case GgmlType::Q4_1: return &Q4_1;
    case GgmlType::Q5_0: return &Q5_0;
    case GgmlType::Q5_1: return &Q5_1;
    case GgmlType::Q8_0: return &Q8_0;
    case GgmlType::Q8_1: return &Q8_1;
    case GgmlType::Q2_K: return &Q2_K;
    case GgmlType::Q3_K: return &Q3_K;
    case GgmlType::Q4_K: return &Q4_K;
    case GgmlType::Q5_K: return &Q5_K;
    case GgmlType::Q6_K: return &Q6_K;
    case GgmlType::Q8_K: return &Q8_K;
    case GgmlType::I8: return &I8;
    case GgmlType::I16: return &I16;
    case GgmlType::I32: return &I32;
    case GgmlType::I64: return &I64;
    case GgmlType::F64: return &F64;
  }
  return nullptr;
}

std::string ggml_type_name(uint32_t type) {
  const GgmlTypeInfo* ti = ggml_type_info(type);
  return ti ? ti->name : "type#" + std::to_string(type);
}

}  // namespace h1bkv
