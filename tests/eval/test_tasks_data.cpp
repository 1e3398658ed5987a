// Task loaders parse the shared data files (item counts as ../shared/PROVENANCE.md states them) and
// build exactly the prompts lm-eval / the original MMLU code would for known items.
#include <gtest/gtest.h>

#include "eval/tasks/arc_piqa.h"
#include "eval/tasks/hellaswag.h"
#include "eval/tasks/lambada.h"
#include "eval/tasks/mmlu.h"
#include "model/model.h"
#include "tokenize/tokenizer.h"
#include "util/error.h"
#include "util/paths.h"

using namespace h1bkv;

namespace {

struct Env {
  std::unique_ptr<Model> model = Model::load(shared_dir() + "/models/stories260K.gguf");
  std::unique_ptr<Tokenizer> tok = Tokenizer::from_gguf(model->gguf());
  TaskOptions opts() const {
    TaskOptions o;
    o.tok = tok.get();
    o.data_dir = shared_dir() + "/data";
    return o;
  }
};

const McQuestion& item(const Task& t, int64_t i) { return dynamic_cast<const McTask&>(t).items().at((size_t)i); }

}  // namespace

TEST(TaskData, ArcAndPiqaCountsAndPrompts) {
  Env e;
  auto easy = make_arc_easy_task(e.opts());
  auto challenge = make_arc_challenge_task(e.opts());
  auto piqa = make_piqa_task(e.opts());
  EXPECT_EQ(easy->size(), 2376);
  EXPECT_EQ(challenge->size(), 1172);
  EXPECT_EQ(piqa->size(), 1838);
  EXPECT_EQ(easy->standard_size(), 500);
  const McQuestion& a = item(*challenge, 0);
  EXPECT_EQ(a.context,
            "Question: An astronomer observes that a planet rotates faster after a meteorite impact. Which is "
            "the most likely effect of this increase in rotation?\nAnswer:");
  ASSERT_EQ(a.choices.size(), 4u);
  EXPECT_EQ(a.choices[2], "Planetary days will become shorter.");
  EXPECT_EQ(a.gold, 2);
  // the file's PIQA queries end in "\n": it is not doubled
  const McQuestion& p = item(*piqa, 0);
  EXPECT_EQ(p.context, "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:");
  EXPECT_EQ(p.gold, 0);
  EXPECT_EQ(question_answer_prompt("Why?"), "Question: Why?\nAnswer:");
}

TEST(TaskData, HellaswagCountAndItem) {
  Env e;
  auto h = make_hellaswag_task(e.opts());
  EXPECT_EQ(h->size(), 10042);
  EXPECT_TRUE(h->has_norm());
  const McQuestion& q = item(*h, 0);
  EXPECT_EQ(q.context, "Roof shingle removal: A man is sitting on a roof. he");
  EXPECT_EQ(q.gold, 3);
  EXPECT_EQ(q.choices[3], "starts pulling up roofing on a roof.");
  EXPECT_THROW(parse_hellaswag({"ctx", "4", "a", "b", "c", "d"}), Error);
  EXPECT_THROW(parse_hellaswag({"ctx", "1", "a"}), Error);
}

TEST(TaskData, MmluCountsPromptAndPerSubjectSubset) {
  Env e;
  auto m = make_mmlu_task(e.opts());
  EXPECT_EQ(m->size(), 14042);
  EXPECT_FALSE(m->has_norm());
  EXPECT_EQ(m->select(0, false).size(), 570u);  // 10 per subject, 57 subjects
  EXPECT_EQ(m->select(2, false).size(), 114u);
  EXPECT_EQ(m->select(0, true).size(), 14042u);
  const McQuestion& q = item(*m, 0);
  EXPECT_EQ(q.group, "abstract_algebra");
  const std::string head =
      "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
      "Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.\nA. 0\nB. 1\nC. 2\nD. 3\nAnswer: B\n\n"
      "Statement 1 | If aH is an element of a factor group, then |aH| divides |a|. Statement 2 | If H and K "
      "are subgroups of G then HK is a subgroup of G.\nA. True, True\nB. False, False\nC. True, False\n"
      "D. False, True\nAnswer: B\n\n";
  EXPECT_EQ(q.context.substr(0, head.size()), head);
  const std::string tail_q =
      "Answer: A\n\nFind the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\n"
      "A. 0\nB. 4\nC. 2\nD. 6\nAnswer:";
  EXPECT_EQ(q.context.substr(q.context.size() - tail_q.size()), tail_q);
  EXPECT_EQ(q.choices, (std::vector<std::string>{"A", "B", "C", "D"}));
  EXPECT_EQ(q.gold, 1);
  // 5 exemplars, each ending in "Answer: X\n\n"
  size_t n_answers = 0;
  for (size_t at = q.context.find("\nAnswer: "); at != std::string::npos; at = q.context.find("\nAnswer: ", at + 1))
    ++n_answers;
  EXPECT_EQ(n_answers, 5u);
  TaskOptions o = e.opts();
  o.shots = 0;
  auto zero = make_mmlu_task(o);
  EXPECT_EQ(item(*zero, 0).context,
            "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
            "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\n"
            "A. 0\nB. 4\nC. 2\nD. 6\nAnswer:");
  o.shots = 6;
  EXPECT_THROW(make_mmlu_task(o), Error);
}

TEST(TaskData, CsvQuotingRules) {
  const auto rows = parse_csv("a,\"b,c\",\"say \"\"hi\"\"\"\r\n\"two\nlines\",,x\n", "t");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"a", "b,c", "say \"hi\""}));
  EXPECT_EQ(rows[1], (std::vector<std::string>{"two\nlines", "", "x"}));
  EXPECT_THROW(parse_csv("a,\"open\n", "t"), Error);
}

TEST(TaskData, LambadaCountAndSplit) {
  Env e;
  auto l = make_lambada_task(e.opts());
  EXPECT_EQ(l->size(), 5153);
  const LambadaItem& it = dynamic_cast<const LambadaTask&>(*l).items()[0];
  EXPECT_EQ(it.target, " signs");
  const std::string end = "his mouth curved in a confident grin, I don't care about";
  EXPECT_EQ(it.context.substr(it.context.size() - end.size()), end);
  const LambadaItem s = split_lambada("the cat sat on the mat");
  EXPECT_EQ(s.context, "the cat sat on the");
  EXPECT_EQ(s.target, " mat");
  EXPECT_THROW(split_lambada("nospace"), Error);
  EXPECT_THROW(split_lambada("ends in space "), Error);
}
