// Model::forward_batch: every row's logits equal forward() of that token alone on its own cache
// (bit for bit), whatever else is in the batch, for several cache types on stories260K; a prompt
// run in chunks equals the whole prompt.
#include <gtest/gtest.h>
#include <omp.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "io/gguf_builder.h"
#include "io/gguf_layout.h"
#include "kv/registry.h"
#include "model/model.h"
#include "model/sampler.h"
#include "tokenize/tokenizer.h"
#include "util/error.h"
#include "util/paths.h"

using namespace h1bkv;

namespace {

TEST(ForwardBatch, RowsEqualSingleSequenceDecoding) {
  const std::string path = shared_dir() + "/models/stories260K.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not found";
  auto model = Model::load(path);
  auto tok = Tokenizer::from_gguf(model->gguf());
  const int32_t nv = model->config().n_vocab;
  const std::vector<std::string> specs = {"f16", "q8_0", "h1b:bits=64,sink=2,window=4", "kivi:bits=2,residual=8"};
  const std::vector<std::string> prompts = {"Once upon a time", "The cat", "Lily and Tom went to the park",
                                            "A"};
  const int steps = 12;
  for (const std::string& spec_text : specs) {
    const CacheSpec spec = parse_cache_spec(spec_text);
    const int64_t n = (int64_t)prompts.size();
    std::vector<std::unique_ptr<KvCache>> alone, batched;
    std::vector<std::vector<int32_t>> toks;
    std::vector<int32_t> next(n), pos(n);
    std::vector<float> logits(nv), batch_logits(n * nv);
    std::vector<std::vector<float>> alone_logits(n, std::vector<float>(nv));
    for (int64_t i = 0; i < n; ++i) {
      toks.push_back(tok->encode(prompts[i], true, false));
      alone.push_back(make_cache(spec, model->cache_geometry(64)));
      batched.push_back(make_cache(spec, model->cache_geometry(64)));
      model->forward(toks[i].data(), (int64_t)toks[i].size(), 0, *alone[i], alone_logits[i].data(), false);
      model->forward(toks[i].data(), (int64_t)toks[i].size(), 0, *batched[i], logits.data(), false);
      next[i] = argmax(alone_logits[i].data(), nv);
      pos[i] = (int32_t)toks[i].size();
    }
    std::vector<KvCache*> caches;
    for (auto& c : batched) caches.push_back(c.get());
    for (int s = 0; s < steps; ++s) {
      // rows join one per step: the batch grows from 1 to n rows
      const int64_t rows = std::min<int64_t>(n, s + 1);
      model->forward_batch(next.data(), pos.data(), caches.data(), rows, batch_logits.data());
      for (int64_t i = 0; i < rows; ++i) {
        model->forward(&next[i], 1, pos[i], *alone[i], alone_logits[i].data(), false);
        for (int32_t t = 0; t < nv; ++t)
          ASSERT_EQ(batch_logits[i * nv + t], alone_logits[i][t])
              << spec_text << " step " << s << " row " << i << " logit " << t;
        next[i] = argmax(alone_logits[i].data(), nv);
        ++pos[i];
      }
    }
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(batched[i]->bytes(), alone[i]->bytes()) << spec_text;
  }
}

// Chunked prefill: a prompt run in chunks through forward_batch, beside another sequence's decode
// rows, gives the logits of forward() of the whole prompt, bit for bit, and so do the decode steps
// after it.
TEST(ForwardBatch, PromptInChunksEqualsWholePrompt) {
  const std::string path = shared_dir() + "/models/stories260K.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not found";
  auto model = Model::load(path);
  auto tok = Tokenizer::from_gguf(model->gguf());
  const int32_t nv = model->config().n_vocab;
  // One thread: ~100 steps of stories260K, whose barriers cost more than its work on a loaded machine.
  struct Restore {
    int n = omp_get_max_threads();
    ~Restore() { omp_set_num_threads(n); }
  } restore;
  omp_set_num_threads(1);
  std::string text;
  for (int i = 0; i < 12; ++i) text += "Lily and Tom went to the park. They saw a big red ball. ";
  const std::vector<int32_t> prompt = tok->encode(text, true, false);
  const std::vector<int32_t> other = tok->encode("Once upon a time", true, false);
  const int64_t n = (int64_t)prompt.size();
  ASSERT_GT(n, 150);  // spans the h1b window, kivi's residual groups and several chunks
  for (const std::string spec_text : {"f16", "h1b:bits=64,sink=2,window=4", "kivi:bits=2,residual=8"}) {
    const CacheSpec spec = parse_cache_spec(spec_text);
    auto whole = make_cache(spec, model->cache_geometry(n + 8));
    std::vector<float> want(nv), got(2 * nv);
    model->forward(prompt.data(), n, 0, *whole, want.data(), false);

    // The chunked prompt shares every step with `other`, which decodes one token per step.
    auto chunked = make_cache(spec, model->cache_geometry(n + 8));
    auto side = make_cache(spec, model->cache_geometry(n + 64));
    std::vector<float> side_logits(nv);
    model->forward(other.data(), (int64_t)other.size(), 0, *side, side_logits.data(), false);
    int32_t side_tok = argmax(side_logits.data(), nv), side_pos = (int32_t)other.size();
    for (int64_t done = 0, chunk = 1; done < n; done += chunk, chunk = chunk * 2 + 1) {
      chunk = std::min(chunk, n - done);  // 1, 3, 7, 15, ...: sizes that straddle every boundary
      const BatchSpan spans[2] = {{&side_tok, 1, side_pos, side.get()},
                                  {prompt.data() + done, chunk, (int32_t)done, chunked.get()}};
      model->forward_batch(spans, 2, got.data());
      side_tok = argmax(got.data(), nv);
      ++side_pos;
    }
    for (int32_t t = 0; t < nv; ++t) ASSERT_EQ(got[nv + t], want[t]) << spec_text << " logit " << t;
    int32_t next = argmax(want.data(), nv);
    for (int32_t p = (int32_t)n; p < n + 8; ++p) {  // greedy decoding after it
      const BatchSpan span{&next, 1, p, chunked.get()};
      model->forward_batch(&span, 1, got.data());
      model->forward(&next, 1, p, *whole, want.data(), false);
      for (int32_t t = 0; t < nv; ++t) ASSERT_EQ(got[t], want[t]) << spec_text << " pos " << p;
      next = argmax(want.data(), nv);
    }
    // h1b's exact window ring keeps window - 1 + the largest span appended: fewer when chunked
    if (spec.type == "h1b") EXPECT_LT(chunked->bytes(), whole->bytes()) << spec_text;
    else EXPECT_EQ(chunked->bytes(), whole->bytes()) << spec_text;
  }
}

// A NaN weight in a layer's feed-forward: forward_batch's check names the layer, the stage and
// the batch row, as forward()'s does.
TEST(ForwardBatch, NonFiniteValuesAreErrorsNamingTheRow) {
  const std::string path = shared_dir() + "/models/stories260K.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not found";
  const std::string damaged = ::testing::TempDir() + "/nan-ffn-" + std::to_string(getpid()) + ".gguf";
  h1bkv::test::write_file(damaged, h1bkv::test::damage_nan(h1bkv::test::read_bytes(path), "blk.2.ffn_norm.weight", 3));
  auto model = Model::load(damaged);
  std::remove(damaged.c_str());
  auto a = make_cache(parse_cache_spec("f16"), model->cache_geometry(8));
  auto b = make_cache(parse_cache_spec("f16"), model->cache_geometry(8));
  std::vector<float> logits(2 * model->config().n_vocab);
  const int32_t prompt[3] = {1, 5, 9}, one = 7;
  const BatchSpan spans[2] = {{&one, 1, 0, a.get()}, {prompt, 3, 0, b.get()}};
  try {
    model->forward_batch(spans, 2, logits.data());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("non-finite value in layer 2's feed-forward norm of batch row 0"),
              std::string::npos) << e.what();
  }
}

TEST(ForwardBatch, BadRowsAreErrorsAndAppendNothing) {
  const std::string path = shared_dir() + "/models/stories260K.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not found";
  auto model = Model::load(path);
  auto a = make_cache(parse_cache_spec("f16"), model->cache_geometry(2));
  auto b = make_cache(parse_cache_spec("f16"), model->cache_geometry(2));
  std::vector<float> logits(2 * model->config().n_vocab);
  KvCache* same[2] = {a.get(), a.get()};
  int32_t tokens[2] = {1, 2}, pos[2] = {0, 0};
  EXPECT_THROW(model->forward_batch(tokens, pos, same, 2, logits.data()), Error);
  KvCache* two[2] = {a.get(), b.get()};
  int32_t far[2] = {0, 2};  // b holds 2 tokens at most
  EXPECT_THROW(model->forward_batch(tokens, far, two, 2, logits.data()), Error);
  int32_t bad_tok[2] = {1, -1};
  EXPECT_THROW(model->forward_batch(bad_tok, pos, two, 2, logits.data()), Error);
  EXPECT_EQ(a->n_tokens(), 0);
  EXPECT_EQ(b->n_tokens(), 0);
}

}  // namespace
