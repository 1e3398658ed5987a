#include <gtest/gtest.h>

#include "eval/sandbox.h"
#include "eval/tasks/humaneval.h"
#include "util/paths.h"

using namespace h1bkv;

namespace {

const std::vector<HumanEvalProblem>& problems() {
  static const auto p = load_humaneval(shared_dir() + "/data/humaneval/HumanEval.jsonl.gz");
  return p;
}

}  // namespace

TEST(HumanEval, LoadsAllProblems) {
  ASSERT_EQ(problems().size(), 164u);
  EXPECT_EQ(problems()[0].task_id, "HumanEval/0");
  EXPECT_EQ(problems()[0].entry_point, "has_close_elements");
  EXPECT_EQ(problems()[163].task_id, "HumanEval/163");
}

TEST(HumanEval, KnownGoodCompletionPassesWrongOneFails) {
  if (python3_path().empty()) GTEST_SKIP() << "python3 not found under /usr on PATH";
  const HumanEvalProblem& p = problems()[0];
  SandboxResult r = run_python(humaneval_program(p, p.canonical_solution));
  EXPECT_TRUE(r.passed()) << r.output;
  // a hand-written correct completion (not the canonical one)
  r = run_python(humaneval_program(p,
      "    s = sorted(numbers)\n    return any(b - a < threshold for a, b in zip(s, s[1:]))\n"));
  EXPECT_TRUE(r.passed()) << r.output;
  r = run_python(humaneval_program(p, "    return False\n"));
  EXPECT_FALSE(r.passed());
  EXPECT_NE(r.output.find("AssertionError"), std::string::npos);
  r = run_python(humaneval_program(p, "    return (\n"));  // does not parse
  EXPECT_FALSE(r.passed());
  EXPECT_NE(r.output.find("SyntaxError"), std::string::npos);
}

// Nothing the problems need is hidden or forbidden by the sandbox: every canonical solution passes
// in it (~30 s on a loaded 2-core machine, hence Slow).
TEST(HumanEvalSlow, AllCanonicalSolutionsPassInTheSandbox) {
  if (python3_path().empty()) GTEST_SKIP() << "python3 not found under /usr on PATH";
  ASSERT_EQ(problems().size(), 164u);
  int passed = 0;
  for (const HumanEvalProblem& p : problems()) {
    const SandboxResult r = run_python(humaneval_program(p, p.canonical_solution));
    EXPECT_TRUE(r.bubblewrap);
    EXPECT_TRUE(r.passed()) << p.task_id << ": " << r.output;
    passed += r.passed() ? 1 : 0;
  }
  EXPECT_EQ(passed, 164);
}

TEST(HumanEval, ProgramLayout) {
  const HumanEvalProblem p{"t/1", "def f(x):\n", "f", "def check(c):\n    assert c(1) == 2\n", ""};
  EXPECT_EQ(humaneval_program(p, "    return x + 1"),
            "def f(x):\n    return x + 1\ndef check(c):\n    assert c(1) == 2\n\ncheck(f)\n");
  EXPECT_EQ(humaneval_stop().size(), 6u);
}

TEST(HumanEvalChat, ExtractCodeBlock) {
  EXPECT_EQ(extract_code_block("Sure:\n```python\ndef f(x):\n    return x\n```\nIt returns x."),
            "def f(x):\n    return x\n");
  EXPECT_EQ(extract_code_block("```\nprint(1)\n```"), "print(1)\n");
  EXPECT_EQ(extract_code_block("```py\na = 1\n```\n```python\nb = 2\n```"), "a = 1\n");  // the first
  EXPECT_EQ(extract_code_block("```python\ndef f():\n    pass\n"), "def f():\n    pass\n");  // unclosed
  EXPECT_EQ(extract_code_block("    return x + 1\n"), "    return x + 1\n");  // no fence: all of it
  EXPECT_EQ(extract_code_block("text ```"), "");
}

TEST(HumanEvalChat, RequestAndProgramLayout) {
  const HumanEvalProblem p{"t/1", "import math\ndef f(x):\n    \"\"\"x + 1\"\"\"\n", "f",
                           "def check(c):\n    assert c(1) == 2\n", ""};
  EXPECT_EQ(humaneval_chat_request(p),
            "Please provide a self-contained Python script that solves the following problem in a "
            "markdown code block:\n```\nimport math\ndef f(x):\n    \"\"\"x + 1\"\"\"\n```\n");
  // a reply that defines the function redefines it after the prompt (its imports stay)
  EXPECT_EQ(humaneval_chat_program(p, "Here:\n```python\ndef f(x):\n    return x + 1\n```\n"),
            "import math\ndef f(x):\n    \"\"\"x + 1\"\"\"\n\ndef f(x):\n    return x + 1\n\n"
            "def check(c):\n    assert c(1) == 2\n\ncheck(f)\n");
  // a reply with only the body continues the prompt
  EXPECT_EQ(humaneval_chat_program(p, "```python\n    return x + 1\n```"),
            "import math\ndef f(x):\n    \"\"\"x + 1\"\"\"\n    return x + 1\n\n"
            "def check(c):\n    assert c(1) == 2\n\ncheck(f)\n");
}

// A chat-style reply around the canonical solution passes the real tests; a wrong one fails.
TEST(HumanEvalChat, ReplyWithCorrectCodeBlockPasses) {
  if (python3_path().empty()) GTEST_SKIP() << "python3 not found on PATH";
  const HumanEvalProblem& p = problems()[0];
  const std::string good = "Here is the function:\n```python\nfrom typing import List\n\n" + p.prompt.substr(p.prompt.find("def ")) +
                           p.canonical_solution + "```\nIt sorts nothing.";
  SandboxResult r = run_python(humaneval_chat_program(p, good));
  EXPECT_TRUE(r.passed()) << r.output;
  r = run_python(humaneval_chat_program(p, "```python\ndef has_close_elements(numbers, threshold):\n    return False\n```"));
  EXPECT_FALSE(r.passed());
  EXPECT_NE(r.output.find("AssertionError"), std::string::npos);
}
