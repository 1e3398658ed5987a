// The ChatML prompt that `run --chat` builds, as text and as qwen2 token ids.
#include <gtest/gtest.h>

#include <filesystem>

#include "io/gguf.h"
#include "tokenize/chat.h"
#include "tokenize/tokenizer.h"
#include "util/paths.h"

namespace h1bkv {
namespace {

TEST(ChatML, PromptText) {
  EXPECT_EQ(chatml_prompt("Hello world"),
            "<|im_start|>user\nHello world<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_TRUE(is_chatml_template("{% for message in messages %}<|im_start|>{{ message['role'] }}"));
  EXPECT_FALSE(is_chatml_template("{{ bos_token }}[INST] {{ content }} [/INST]"));
  EXPECT_FALSE(is_chatml_template(""));
}

TEST(ChatML, ConversationText) {
  EXPECT_EQ(chatml_conversation({{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello"},
                                 {"user", "Bye"}}),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(chatml_conversation({{"user", "Hello world"}}), chatml_prompt("Hello world"));
}

// Ids from llama.cpp's llama-tokenize on the same vocab (control tokens parsed, no BOS):
// <|im_start|>=151644 user=872 \n=198 Hello=9707 ' world'=1879 <|im_end|>=151645 assistant=77091.
TEST(ChatML, Qwen2IdsHaveNoBos) {
  const std::string path = shared_dir() + "/data/vocab/ggml-vocab-qwen2.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not found";
  auto g = GgufFile::open(path);
  auto tok = Tokenizer::from_gguf(*g);
  const std::vector<int32_t> want = {151644, 872, 198, 9707, 1879, 151645, 198, 151644, 77091, 198};
  EXPECT_EQ(tok->encode(chatml_prompt("Hello world"), false, true), want);
  // qwen2 vocabs do not ask for a BOS, so add_special changes nothing either
  EXPECT_FALSE(tok->add_bos());
  EXPECT_EQ(tok->encode(chatml_prompt("Hello world"), true, true), want);
  EXPECT_TRUE(tok->is_eog(151645));  // generation stops at <|im_end|>
}

}  // namespace
}  // namespace h1bkv
