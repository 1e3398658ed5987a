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
