#include <gtest/gtest.h>

#include "io/gguf.h"
#include "util/paths.h"

using namespace h1bkv;

TEST(Gguf, OpensStories260K) {
  auto g = GgufFile::open(shared_dir() + "/models/stories260K.gguf");
  EXPECT_EQ(g->get_string("general.architecture"), "llama");
  EXPECT_EQ(g->get_int("llama.embedding_length"), 64);
  EXPECT_EQ(g->get_int("llama.block_count"), 5);
  const GgufTensor* t = g->find_tensor("token_embd.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->ne[0], 64);
  EXPECT_EQ(t->ne[1], 512);
}
