// TextStream (stop strings, held-back bytes) and the OpenAI request parser.
#include <gtest/gtest.h>

#include "serve/api.h"
#include "serve/text_stream.h"

using namespace h1bkv;

namespace {

TEST(TextStream, StopStringAcrossPiecesCutsBeforeItAndNeverStreamsItsStart) {
  TextStream t({"END"});
  std::string streamed;
  EXPECT_FALSE(t.add("Hello E"));
  streamed += t.take_ready();
  EXPECT_EQ(streamed, "Hello ");  // "E" may start the stop string: held back
  EXPECT_FALSE(t.add("N"));
  streamed += t.take_ready();
  EXPECT_EQ(streamed, "Hello ");
  EXPECT_TRUE(t.add("D and more"));
  t.finish();
  streamed += t.take_ready();
  EXPECT_EQ(streamed, "Hello ");
  EXPECT_EQ(t.text(), "Hello ");
}

TEST(TextStream, HeldBackPrefixIsReleasedWhenItStopsMatching) {
  TextStream t({"END", "xyz"});
  std::string streamed;
  t.add("aE");
  streamed += t.take_ready();
  EXPECT_EQ(streamed, "a");
  t.add("Nx");
  streamed += t.take_ready();
  EXPECT_EQ(streamed, "aEN");  // "EN" + "x" no longer starts "END"; "x" may start "xyz"
  t.finish();
  streamed += t.take_ready();
  EXPECT_EQ(streamed, "aENx");
  EXPECT_EQ(streamed, t.text());
}

TEST(TextStream, UnfinishedUtf8IsHeldUntilComplete) {
  TextStream t({});
  t.add("caf\xC3");
  EXPECT_EQ(t.take_ready(), "caf");
  t.add("\xA9!");
  EXPECT_EQ(t.take_ready(), "\xC3\xA9!");
  t.add("\xE2\x82");
  EXPECT_EQ(t.take_ready(), "");
  t.finish();  // the end releases whatever is left, even half a character
  EXPECT_EQ(t.take_ready(), "\xE2\x82");
}

int status_of(const std::string& body, bool chat) {
  try {
    parse_completion_request(body, chat);
  } catch (const ApiError& e) {
    return e.status();
  }
  return 200;
}

std::string message_of(const std::string& body, bool chat) {
  try {
    parse_completion_request(body, chat);
  } catch (const ApiError& e) {
    return e.what();
  }
  return "";
}

TEST(ApiParse, ChatRequestFields) {
  const CompletionRequest r = parse_completion_request(
      R"({"model":"m","messages":[{"role":"system","content":"Be brief."},
          {"role":"user","content":[{"type":"text","text":"Hi "},{"type":"text","text":"there"}]}],
          "max_tokens":7,"temperature":0,"top_p":0.5,"top_k":3,"seed":9,"stop":["a","b"],
          "stream":true,"stream_options":{"include_usage":true}})",
      true);
  EXPECT_EQ(r.model, "m");
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[1].role, "user");
  EXPECT_EQ(r.messages[1].content, "Hi there");
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_EQ(r.sampling.temp, 0.0f);
  EXPECT_EQ(r.sampling.top_p, 0.5f);
  EXPECT_EQ(r.sampling.top_k, 3);
  EXPECT_EQ(r.sampling.seed, 9u);
  EXPECT_TRUE(r.seeded);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  const CompletionRequest c = parse_completion_request(R"({"prompt":"x","stop":"\n"})", false);
  EXPECT_EQ(c.prompt, "x");
  EXPECT_EQ(c.max_tokens, -1);
  EXPECT_EQ(c.stop, std::vector<std::string>{"\n"});
  EXPECT_EQ(c.sampling.temp, 1.0f);  // OpenAI's default
  EXPECT_TRUE(c.cache_prompt);      // llama-server's default
  EXPECT_FALSE(parse_completion_request(R"({"prompt":"x","cache_prompt":false})", false).cache_prompt);
}

TEST(ApiParse, BadRequestsAre400NamingTheField) {
  EXPECT_NE(message_of("{\"messages\": [", true).find("malformed JSON"), std::string::npos);
  EXPECT_NE(message_of("[1,2]", true).find("JSON object"), std::string::npos);
  EXPECT_NE(message_of("{}", true).find("'messages' is missing"), std::string::npos);
  EXPECT_NE(message_of(R"({"messages":[]})", true).find("'messages' is empty"), std::string::npos);
  EXPECT_NE(message_of(R"({"messages":[{"role":"wizard","content":"x"}]})", true).find("wizard"),
            std::string::npos);
  EXPECT_NE(message_of(R"({"messages":[{"role":"user"}]})", true).find("content' is missing"),
            std::string::npos);
  EXPECT_NE(message_of(R"({"prompt":""})", false).find("'prompt' is empty"), std::string::npos);
  EXPECT_NE(message_of(R"({"prompt":5})", false).find("'prompt' must be"), std::string::npos);
  EXPECT_NE(message_of(R"({"prompt":"x","max_tokens":0})", false).find("'max_tokens' is 0"),
            std::string::npos);
  EXPECT_NE(message_of(R"({"prompt":"x","max_tokens":-3})", false).find("'max_tokens'"), std::string::npos);
  EXPECT_NE(message_of(R"({"prompt":"x","max_tokens":1.5})", false).find("integer"), std::string::npos);
  EXPECT_NE(message_of(R"({"prompt":"x","temperature":3})", false).find("'temperature' is 3"),
            std::string::npos);
  EXPECT_NE(message_of(R"({"prompt":"x","top_p":"high"})", false).find("'top_p' must be a number"),
            std::string::npos);
  EXPECT_NE(message_of(R"({"prompt":"x","stop":["a","b","c","d","e"]})", false).find("up to 4"),
            std::string::npos);
  EXPECT_NE(message_of(R"({"prompt":"x","stop":[""]})", false).find("empty string"), std::string::npos);
  EXPECT_NE(message_of(R"({"prompt":"x","n":2})", false).find("'n' must be 1"), std::string::npos);
  EXPECT_NE(message_of(R"({"prompt":"x","stream":"yes"})", false).find("'stream'"), std::string::npos);
  EXPECT_NE(message_of(R"({"prompt":"x","cache_prompt":1})", false).find("'cache_prompt' must be true or false"),
            std::string::npos);
  EXPECT_NE(message_of(R"({"prompt":"x","model":3})", false).find("'model' must be a string"),
            std::string::npos);
  EXPECT_EQ(status_of(R"({"prompt":"x","max_tokens":99999999999})", false), 400);
  EXPECT_EQ(status_of(R"({"prompt":"x"})", false), 200);
}

TEST(ApiJson, ShapesOfRepliesAndChunks) {
  CompletionRequest chat;
  chat.chat = true;
  const auto full = completion_json(chat, "chatcmpl-1", 5, "m", "hi", "stop", {3, 2, 1});
  EXPECT_EQ(full["object"], "chat.completion");
  EXPECT_EQ(full["choices"][0]["message"]["content"], "hi");
  EXPECT_EQ(full["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(full["usage"]["total_tokens"], 5);
  EXPECT_EQ(full["usage"]["prompt_tokens_details"]["cached_tokens"], 1);  // OpenAI's field
  const auto role = chunk_json(chat, "chatcmpl-1", 5, "m", "", "", true);
  EXPECT_EQ(role["choices"][0]["delta"]["role"], "assistant");
  EXPECT_TRUE(role["choices"][0]["finish_reason"].is_null());
  const auto last = chunk_json(chat, "chatcmpl-1", 5, "m", "", "length");
  EXPECT_TRUE(last["choices"][0]["delta"].empty());
  CompletionRequest text;
  const auto t = chunk_json(text, "cmpl-1", 5, "m", "ab", "");
  EXPECT_EQ(t["object"], "text_completion");
  EXPECT_EQ(t["choices"][0]["text"], "ab");
  EXPECT_EQ(dump_json(nlohmann::json("a\xC3")), "\"a\xEF\xBF\xBD\"");  // U+FFFD for a cut character
}

}  // namespace
