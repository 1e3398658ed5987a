#include "eval/tasks/passkey.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "eval/generate.h"
#include "eval/session.h"
#include "kv/cache.h"
#include "tokenize/tokenizer.h"
#include "util/error.h"

namespace h1bkv {

namespace {

const char* kHeader =
    "A pass key is hidden somewhere in the long text below. Find it and remember it; you will be "
    "asked for it at the end.\n\n";
const char* kQuestion = "\n\nWhat is the pass key? The pass key is";
const char* kFiller[] = {"The grass is green.", "The sky is blue.", "The sun is yellow.", "Here we go.",
                         "There and back again."};
constexpr int kFillerCycle = 5;

std::string key_sentence(const std::string& key) {
  return "The pass key is " + key + ". Remember it. " + key + " is the pass key.";
}

// Filler sentences [from, to) joined by spaces.
std::string filler(int64_t from, int64_t to) {
  std::string s;
  for (int64_t i = from; i < to; ++i) {
    if (i > from) s += ' ';
    s += kFiller[i % kFillerCycle];
  }
  return s;
}

// The text before the key sentence, and the whole prompt.
std::pair<std::string, std::string> compose(int64_t n, int64_t k, const std::string& key) {
  std::string before = kHeader + filler(0, k) + (k > 0 ? " " : "");
  std::string text = before + key_sentence(key) + (k < n ? " " : "") + filler(k, n) + kQuestion;
  return {before, text};
}

}  // namespace

PasskeyPrompt make_passkey_prompt(const Tokenizer& tok, int64_t n_sentences, double depth, const std::string& key) {
  check(depth >= 0.0 && depth <= 1.0, "passkey depth " + std::to_string(depth) + " outside [0, 1]");
  check(key.size() == 5 && std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; }),
        "passkey key '" + key + "' is not 5 digits");
  check(n_sentences >= 0, "negative filler length");
  const int64_t k = std::llround(depth * (double)n_sentences);
  const auto [before, text] = compose(n_sentences, k, key);
  PasskeyPrompt p;
  p.text = text;
  p.tokens = encode_prompt(tok, text);
  // the tokens of the text before it, its separating space left out (SentencePiece would make it
  // a token of its own; byte-level BPE joins it to "The")
  const std::string lead = (!before.empty() && before.back() == ' ') ? before.substr(0, before.size() - 1) : before;
  p.key_token = (int64_t)encode_prompt(tok, lead).size();
  p.n_sentences = n_sentences;
  return p;
}

int64_t passkey_filler_sentences(const Tokenizer& tok, int64_t target_tokens) {
  auto tokens = [&](int64_t n) { return (int64_t)encode_prompt(tok, compose(n, n / 2, "00000").second).size(); };
  if (tokens(0) > target_tokens) return 0;
  // tokens(n) grows by at least one per sentence: n <= target_tokens
  const int64_t per_cycle = std::max<int64_t>(1, tokens(kFillerCycle) - tokens(0));
  int64_t lo = 0, hi = std::min<int64_t>(target_tokens, (target_tokens * kFillerCycle) / per_cycle * 2 + kFillerCycle);
  while (tokens(hi) <= target_tokens) hi *= 2;  // not expected; keeps the invariant tokens(hi) > target
  while (hi - lo > 1) {  // tokens(lo) <= target < tokens(hi)
    const int64_t mid = lo + (hi - lo) / 2;
    (tokens(mid) <= target_tokens ? lo : hi) = mid;
  }
  return lo;
}

std::string passkey_key(uint64_t seed, int64_t length, int depth_pct, int index) {
  check(index >= 0, "passkey key index " + std::to_string(index) + " is negative");
  // index 0 is the one-key grid's key, unchanged since that grid's first results
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + (uint64_t)length * 1000 + (uint64_t)depth_pct +
                      (uint64_t)index * 0xD1B54A32D192ED03ull);
  return std::to_string(10000 + rng() % 90000);
}

bool passkey_answer_matches(const std::string& completion, const std::string& key) {
  const size_t a = completion.find_first_of("0123456789");
  if (a == std::string::npos) return false;
  const size_t b = completion.find_first_not_of("0123456789", a);
  return completion.substr(a, b == std::string::npos ? std::string::npos : b - a) == key;
}

namespace {

constexpr int64_t kGenTokens = 12;  // room for " NNNNN." with one token per digit
constexpr int64_t kSlack = 4;       // the key's depth moves token boundaries by a token or two
constexpr int64_t kLengths[] = {1024, 2048, 4096, 8192};
constexpr int kMaxKeysPerCell = 16;
constexpr int kDepths[] = {100, 75, 50, 25, 0};

const Tokenizer& need_tokenizer(const Tokenizer* t) {
  check(t != nullptr, "passkey: no tokenizer");
  return *t;
}

class PasskeyTask : public GenerativeTask {
 public:
  explicit PasskeyTask(const TaskOptions& o)
      : tok_(need_tokenizer(o.tok)), seed_(o.seed), keys_(o.passkey_keys) {
    check(keys_ >= 1 && keys_ <= kMaxKeysPerCell, "passkey: keys per cell must be 1.." + std::to_string(kMaxKeysPerCell) +
                                                      ", got " + std::to_string(keys_));
    if (!o.passkey_lengths.empty()) {
      lengths_ = o.passkey_lengths;
      std::sort(lengths_.begin(), lengths_.end());
      lengths_.erase(std::unique(lengths_.begin(), lengths_.end()), lengths_.end());
      for (int64_t L : lengths_) {
        check(L > kGenTokens + 64, "passkey: length " + std::to_string(L) + " is too short (at least " +
                                       std::to_string(kGenTokens + 65) + " tokens)");
        check(o.n_ctx <= 0 || L <= o.n_ctx, "passkey: length " + std::to_string(L) + " is past the context of " +
                                                std::to_string(o.n_ctx) + " tokens");
      }
    } else {
      for (int64_t L : kLengths)
        if (o.n_ctx <= 0 || L <= o.n_ctx) lengths_.push_back(L);
      if (lengths_.empty()) lengths_.push_back(o.n_ctx);
    }
    check(lengths_.back() > kGenTokens + 64, "passkey: context of " + std::to_string(o.n_ctx) + " tokens is too short");
  }

  std::string name() const override { return "passkey"; }
  int64_t size() const override { return (int64_t)(lengths_.size() * std::size(kDepths)) * keys_; }
  int64_t standard_size() const override { return size(); }
  int64_t ctx_needed() const override { return lengths_.back(); }

  const Tokenizer& tokenizer() const override { return tok_; }

  GenRequest request(int64_t item, int64_t n_ctx) override {
    const int64_t L = length(item);
    check(L <= n_ctx, "passkey: context length " + std::to_string(L) + " needs a cache of that many tokens (-c " +
                          std::to_string(n_ctx) + " given)");
    GenRequest r;
    r.prompt = make_passkey_prompt(tok_, sentences(L), depth(item) / 100.0, key(item)).tokens;
    r.opt.max_new_tokens = kGenTokens;
    r.opt.stop = {"\n"};
    prompt_tokens_[item] = (int64_t)r.prompt.size();
    return r;
  }

  ItemResult judge(int64_t item, const Generation& g) override {
    ItemResult r;
    r.correct = passkey_answer_matches(g.text, key(item));
    r.sample = {{"key", key(item)}, {"completion", g.text}};
    r.group = "ctx " + std::to_string(length(item)) + " depth " + std::to_string(depth(item)) + "%";
    r.sums["prompt_tokens"] = (double)prompt_tokens_.at(item);
    return r;
  }

  nlohmann::json settings() const override {
    nlohmann::json keys = nlohmann::json::object();
    for (int64_t L : lengths_)
      for (int d : kDepths) {
        const std::string cell = "ctx " + std::to_string(L) + " depth " + std::to_string(d) + "%";
        if (keys_ == 1) {
          keys[cell] = passkey_key(seed_, L, d);
        } else {
          for (int k = 0; k < keys_; ++k) keys[cell].push_back(passkey_key(seed_, L, d, k));
        }
      }
    nlohmann::json j = {{"seed", seed_},
                        {"lengths", lengths_},
                        {"depths_pct", kDepths},
                        {"length_rule", "prompt tokens <= length - " + std::to_string(kGenTokens + kSlack) +
                                            " (at depth 50%), within one filler sentence"},
                        {"header", kHeader},
                        {"filler", kFiller},
                        {"key_sentence", key_sentence("NNNNN")},
                        {"question", kQuestion},
                        {"keys", keys},
                        {"max_new_tokens", kGenTokens},
                        {"scoring", "first run of digits in the greedy completion == key"},
                        {"subset", keys_ == 1 ? std::string("standard: the whole grid, one item per cell")
                                              : "standard: the whole grid, " + std::to_string(keys_) +
                                                    " items (keys) per cell"}};
    if (keys_ > 1) j["keys_per_cell"] = keys_;
    return j;
  }

 private:
  // item = (length, depth, key index), the key index innermost: the keys of one cell share the
  // filler before the key sentence
  int64_t cell(int64_t item) const { return item / keys_; }
  int64_t length(int64_t item) const { return lengths_[(size_t)cell(item) / std::size(kDepths)]; }
  int depth(int64_t item) const { return kDepths[(size_t)cell(item) % std::size(kDepths)]; }
  std::string key(int64_t item) const { return passkey_key(seed_, length(item), depth(item), (int)(item % keys_)); }

  int64_t sentences(int64_t L) {
    auto it = sentences_.find(L);
    if (it == sentences_.end()) it = sentences_.emplace(L, passkey_filler_sentences(tok_, L - kGenTokens - kSlack)).first;
    return it->second;
  }

  const Tokenizer& tok_;
  uint64_t seed_;
  int keys_;  // items per grid cell, each with its own key
  std::vector<int64_t> lengths_;
  std::map<int64_t, int64_t> sentences_;  // length -> filler sentences
  std::map<int64_t, int64_t> prompt_tokens_;  // item -> its prompt's tokens (request() sets it)
};

}  // namespace

std::unique_ptr<Task> make_passkey_task(const TaskOptions& o) { return std::make_unique<PasskeyTask>(o); }

}  // namespace h1bkv
