// matmul on the real weights of the test model (SmolLM2-135M Q4_1: Q4_1 layers, Q8_0 token
// embedding used as the output head), when the model has been downloaded (scripts/get_model.sh).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <vector>

#include "io/ggml_type.h"
#include "io/gguf.h"
#include "tensor/matmul.h"
#include "tensor/quant.h"
#include "util/paths.h"

using namespace h1bkv;

TEST(ModelWeights, SmolLMTensorsMatchFloatReference) {
  const std::string path = models_dir() + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no " << path;
  auto g = GgufFile::open(path);
  // Up to 512 rows of each; activations ~N(0,1). Gaussian activations quantized to 8 bits in
  // blocks of 32 give a relative rms error of ~0.5% (measured 0.46-0.57%); 1.5% leaves margin.
  for (const char* name : {"blk.0.ffn_down.weight", "blk.5.attn_k.weight", "blk.29.ffn_up.weight",
                           "token_embd.weight"}) {
    const GgufTensor* t = g->find_tensor(name);
    ASSERT_NE(t, nullptr) << name;
    ASSERT_TRUE(weight_type_supported(t->type)) << name << " " << ggml_type_name(t->type);
    const GgmlTypeInfo* ti = ggml_type_info(t->type);
    const int64_t cols = t->ne[0], rows = std::min<int64_t>(t->ne[1], 512), n = 3;
    const WeightView w{t->type, rows, cols, (size_t)(cols / ti->block_elems) * ti->block_bytes, t->data};
    std::vector<float> x(n * cols), y(n * rows), yr(n * rows), deq(cols);
    std::mt19937 rng(3);
    std::normal_distribution<float> nd;
    for (auto& v : x) v = nd(rng);
    matmul(w, x.data(), y.data(), n);
    matmul_ref(w, x.data(), yr.data(), n);
    double err2 = 0, ref2 = 0;
    for (int64_t r = 0; r < rows; ++r) {
      dequantize_row(t->type, t->data + r * w.row_bytes, deq.data(), cols);
      for (int64_t k = 0; k < n; ++k) {
        double exact = 0, sum_abs = 0;
        for (int64_t j = 0; j < cols; ++j) {
          exact += (double)deq[j] * x[k * cols + j];
          sum_abs += std::fabs((double)deq[j] * x[k * cols + j]);
        }
        err2 += std::pow(y[k * rows + r] - exact, 2);
        ref2 += exact * exact;
        ASSERT_LE(std::fabs(y[k * rows + r] - yr[k * rows + r]), 1e-5 * sum_abs) << name << " r " << r;
      }
    }
    EXPECT_LE(std::sqrt(err2 / ref2), 0.015) << name;
  }
}
