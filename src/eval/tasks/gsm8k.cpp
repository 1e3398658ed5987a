#include "eval/tasks/gsm8k.h"

#include <algorithm>
#include <cctype>
#include <random>

#include "eval/data_file.h"
#include "eval/generate.h"
#include "eval/session.h"
#include "tokenize/tokenizer.h"
#include "util/error.h"

namespace h1bkv {

namespace {

bool digit(char c) { return c >= '0' && c <= '9'; }
bool alnum(char c) { return std::isalnum((unsigned char)c) != 0; }

// Canonical form of a digit run such as "1,234.50" (commas allowed), with its sign.
std::string canonical(const std::string& run, bool negative) {
  std::string int_part, frac;
  bool in_frac = false;
  for (char c : run) {
    if (c == ',') continue;
    if (c == '.') { in_frac = true; continue; }
    (in_frac ? frac : int_part) += c;
  }
  const size_t nz = int_part.find_first_not_of('0');
  int_part = nz == std::string::npos ? "0" : int_part.substr(nz);
  while (!frac.empty() && frac.back() == '0') frac.pop_back();
  std::string out = frac.empty() ? int_part : int_part + "." + frac;
  return (negative && out != "0") ? "-" + out : out;
}

// Every number in text, in order, canonical.
std::vector<std::string> numbers_in(const std::string& t) {
  std::vector<std::string> out;
  const size_t n = t.size();
  size_t i = 0;
  while (i < n) {
    const bool starts = digit(t[i]) || (t[i] == '.' && i + 1 < n && digit(t[i + 1]));
    if (!starts) { ++i; continue; }
    size_t j = i;
    while (j < n && (digit(t[j]) || (t[j] == ',' && j > i && digit(t[j - 1]) && j + 1 < n && digit(t[j + 1])))) ++j;
    if (j < n && t[j] == '.' && j + 1 < n && digit(t[j + 1])) {
      ++j;
      while (j < n && digit(t[j])) ++j;
    }
    // sign: "-5", "-$5", "$-5"; not "16-3" (a '-' after a letter or digit is an operator/hyphen)
    ptrdiff_t k = (ptrdiff_t)i - 1;
    if (k >= 0 && t[(size_t)k] == '$') --k;
    const bool negative = k >= 0 && t[(size_t)k] == '-' && (k == 0 || !alnum(t[(size_t)k - 1]));
    out.push_back(canonical(t.substr(i, j - i), negative));
    i = j;
  }
  return out;
}

std::string lower(std::string s) {
  for (char& c : s) c = (char)std::tolower((unsigned char)c);
  return s;
}

}  // namespace

std::vector<Gsm8kProblem> load_gsm8k(const std::string& path) {
  std::vector<Gsm8kProblem> out;
  for (const JsonLine& l : read_jsonl(path)) {
    out.push_back({l.str("question"), l.str("answer")});
    gsm8k_target(out.back().answer);  // validates "#### N"
  }
  return out;
}

std::string gsm8k_target(const std::string& answer) {
  const size_t at = answer.rfind("####");
  check(at != std::string::npos, "GSM8K answer without \"#### N\": " + answer.substr(0, 60));
  const std::string n = normalize_number(answer.substr(at + 4));
  check(!n.empty(), "GSM8K answer without a number after ####: " + answer.substr(at));
  return n;
}

std::string gsm8k_reasoning(const std::string& answer) {
  const size_t at = answer.rfind("####");
  const std::string body = answer.substr(0, at);
  std::string out;
  bool space = false;
  for (size_t i = 0; i < body.size(); ++i) {
    if (body.compare(i, 2, "<<") == 0) {  // calculator annotation "<<16-3-4=9>>"
      const size_t end = body.find(">>", i + 2);
      if (end != std::string::npos) { i = end + 1; continue; }
    }
    const char c = body[i];
    if (c == '\n' || c == ' ' || c == '\t' || c == '\r') { space = !out.empty(); continue; }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

std::string normalize_number(const std::string& s) {
  const std::vector<std::string> nums = numbers_in(s);
  return nums.empty() ? "" : nums.front();
}

std::string extract_gsm8k_answer(const std::string& completion) {
  static const std::string kPhrase = "the answer is";
  const size_t at = lower(completion).find(kPhrase);
  if (at != std::string::npos) {
    const std::vector<std::string> after = numbers_in(completion.substr(at + kPhrase.size()));
    if (!after.empty()) return after.front();
  }
  const std::vector<std::string> all = numbers_in(completion);
  return all.empty() ? "" : all.back();
}

std::vector<int64_t> choose_exemplars(int64_t n, int k, uint64_t seed) {
  check(k >= 0 && k < n, std::to_string(k) + " exemplars asked of " + std::to_string(n) + " problems");
  std::vector<int64_t> idx((size_t)n);
  for (int64_t i = 0; i < n; ++i) idx[(size_t)i] = i;
  std::mt19937_64 rng(seed);
  for (int i = 0; i < k; ++i) {
    const int64_t j = i + (int64_t)(rng() % (uint64_t)(n - i));
    std::swap(idx[(size_t)i], idx[(size_t)j]);
  }
  idx.resize((size_t)k);
  return idx;
}

std::string gsm8k_fewshot_prefix(const std::vector<Gsm8kProblem>& exemplars) {
  std::string p;
  for (const Gsm8kProblem& e : exemplars)
    p += "Question: " + e.question + "\nAnswer: " + gsm8k_reasoning(e.answer) + " The answer is " +
         gsm8k_target(e.answer) + ".\n\n";
  return p;
}

std::string gsm8k_prompt(const std::string& prefix, const std::string& question) {
  return prefix + "Question: " + question + "\nAnswer:";
}

namespace {

constexpr int64_t kMaxNewTokens = 256;  // lm-eval's default max_gen_toks

const Tokenizer& need_tokenizer(const Tokenizer* t) {
  check(t != nullptr, "gsm8k: no tokenizer");
  return *t;
}

class Gsm8kTask : public GenerativeTask {
 public:
  explicit Gsm8kTask(const TaskOptions& o) : tok_(need_tokenizer(o.tok)), seed_(o.seed) {
    all_ = load_gsm8k(o.data_dir + "/gsm8k/test.jsonl");
    shots_ = o.shots < 0 ? 8 : o.shots;
    exemplars_ = choose_exemplars((int64_t)all_.size(), shots_, seed_);
    std::vector<Gsm8kProblem> ex;
    for (int64_t i : exemplars_) ex.push_back(all_[(size_t)i]);
    prefix_ = gsm8k_fewshot_prefix(ex);
    std::vector<bool> is_ex(all_.size(), false);
    for (int64_t i : exemplars_) is_ex[(size_t)i] = true;
    for (size_t i = 0; i < all_.size(); ++i)
      if (!is_ex[i]) items_.push_back((int64_t)i);
  }

  std::string name() const override { return "gsm8k"; }
  int64_t size() const override { return (int64_t)items_.size(); }
  int64_t standard_size() const override { return 100; }

  // Upper bound: the prefix's tokens + the longest question block + a few tokens where the two
  // meet + the generation budget.
  int64_t ctx_needed() const override {
    int64_t longest = 0;
    for (int64_t i : items_)
      longest = std::max<int64_t>(longest, (int64_t)tok_.encode(gsm8k_prompt("", all_[(size_t)i].question), false, false).size());
    return (int64_t)encode_prompt(tok_, prefix_).size() + longest + 8 + kMaxNewTokens;
  }

  const Tokenizer& tokenizer() const override { return tok_; }

  GenRequest request(int64_t item, int64_t) override {
    GenRequest r;
    r.prompt = encode_prompt(tok_, gsm8k_prompt(prefix_, all_[(size_t)items_[(size_t)item]].question));
    r.opt.max_new_tokens = kMaxNewTokens;
    r.opt.stop = {"Question:", "\n\n"};
    return r;
  }

  ItemResult judge(int64_t item, const Generation& g) override {
    const Gsm8kProblem& p = all_[(size_t)items_[(size_t)item]];
    const std::string got = extract_gsm8k_answer(g.text);
    ItemResult r;
    r.correct = !got.empty() && got == gsm8k_target(p.answer);
    r.sums["generated_tokens"] = (double)g.tokens.size();
    r.sums["no_number"] = got.empty() ? 1 : 0;
    r.sums["hit_length_limit"] = g.reason == StopReason::kMaxTokens || g.reason == StopReason::kContextFull ? 1 : 0;
    r.sample = {{"line", items_[(size_t)item]}, {"completion", g.text}, {"answer", got}, {"target", gsm8k_target(p.answer)}};
    return r;
  }

  std::vector<std::pair<std::string, double>> summarize(const std::map<std::string, double>& sums,
                                                        int64_t n) const override {
    if (n <= 0) return {};
    auto get = [&](const char* k) { auto it = sums.find(k); return it == sums.end() ? 0.0 : it->second; };
    return {{"generated_tokens_per_item", get("generated_tokens") / (double)n},
            {"no_number_frac", get("no_number") / (double)n},
            {"length_limit_frac", get("hit_length_limit") / (double)n}};
  }

  nlohmann::json settings() const override {
    return {{"shots", shots_},
            {"seed", seed_},
            {"exemplar_lines", exemplars_},  // 0-based lines of gsm8k/test.jsonl, in prompt order
            {"template", "Question: {question}\\nAnswer: {reasoning} The answer is {N}.\\n\\n (x shots), "
                         "then Question: {question}\\nAnswer:"},
            {"stop", {"Question:", "\n\n"}},
            {"max_new_tokens", kMaxNewTokens},
            {"extraction", "number after the first 'The answer is', else the last number"},
            {"subset", "standard: the first 100 non-exemplar problems in file order"}};
  }

 private:
  const Tokenizer& tok_;
  uint64_t seed_;
  int shots_ = 8;
  std::vector<Gsm8kProblem> all_;
  std::vector<int64_t> exemplars_, items_;  // line indices into all_
  std::string prefix_;
};

}  // namespace

std::unique_ptr<Task> make_gsm8k_task(const TaskOptions& o) { return std::make_unique<Gsm8kTask>(o); }

}  // namespace h1bkv
