#include <gtest/gtest.h>

#include <set>

#include "eval/tasks/gsm8k.h"
#include "util/error.h"
#include "util/paths.h"

using namespace h1bkv;

TEST(Gsm8k, NormalizeNumber) {
  EXPECT_EQ(normalize_number("1,234"), "1234");
  EXPECT_EQ(normalize_number("$1,234.50"), "1234.5");
  EXPECT_EQ(normalize_number("5.0"), "5");
  EXPECT_EQ(normalize_number("5.00."), "5");
  EXPECT_EQ(normalize_number("18."), "18");
  EXPECT_EQ(normalize_number(".5"), "0.5");
  EXPECT_EQ(normalize_number("007"), "7");
  EXPECT_EQ(normalize_number("-12"), "-12");
  EXPECT_EQ(normalize_number("-0"), "0");
  EXPECT_EQ(normalize_number("+3"), "3");
  EXPECT_EQ(normalize_number("-$4"), "-4");
  EXPECT_EQ(normalize_number("$-4"), "-4");
  EXPECT_EQ(normalize_number(" 18 dollars"), "18");
  EXPECT_EQ(normalize_number("abc"), "");
  EXPECT_EQ(normalize_number(""), "");
}

TEST(Gsm8k, ExtractAnswerOnTrickyStrings) {
  // "The answer is" wins over later numbers; commas, $, units, the final period
  EXPECT_EQ(extract_gsm8k_answer(" She has 3 + 4 = 7. The answer is $1,200. Then 5."), "1200");
  EXPECT_EQ(extract_gsm8k_answer(" the ANSWER is 18 dollars."), "18");
  EXPECT_EQ(extract_gsm8k_answer(" 20 - 25 = -5. The answer is -5."), "-5");
  EXPECT_EQ(extract_gsm8k_answer(" The answer is 12.50."), "12.5");
  EXPECT_EQ(extract_gsm8k_answer(" The answer is 5.0"), "5");
  // the first "The answer is" counts when the model repeats itself
  EXPECT_EQ(extract_gsm8k_answer(" The answer is 4. The answer is 9."), "4");
  // absent: the last number; a hyphen between digits is subtraction, not a sign
  EXPECT_EQ(extract_gsm8k_answer(" He sells 16-3-4=9 eggs, 9 * 2 = 18 dollars"), "18");
  EXPECT_EQ(extract_gsm8k_answer(" 16-3"), "3");
  EXPECT_EQ(extract_gsm8k_answer(" It drops to -3 degrees"), "-3");
  EXPECT_EQ(extract_gsm8k_answer(" 3, 4, and 5."), "5");
  // "The answer is" with no number after it falls back to the last number before
  EXPECT_EQ(extract_gsm8k_answer(" 2 + 2 = 4. The answer is four."), "4");
  EXPECT_EQ(extract_gsm8k_answer(" I do not know."), "");
  EXPECT_EQ(extract_gsm8k_answer(""), "");
}

TEST(Gsm8k, TargetAndReasoningOfAnAnswer) {
  const std::string a =
      "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\nShe makes 9 * 2 = $<<9*2=18>>18 "
      "every day.\n#### 1,018";
  EXPECT_EQ(gsm8k_target(a), "1018");
  EXPECT_EQ(gsm8k_reasoning(a), "Janet sells 16 - 3 - 4 = 9 duck eggs a day. She makes 9 * 2 = $18 every day.");
  EXPECT_THROW(gsm8k_target("no marker"), Error);
  EXPECT_THROW(gsm8k_target("#### none"), Error);
  const std::string prefix = gsm8k_fewshot_prefix({{"How many?", "1 + 1 = <<1+1=2>>2\n#### 2"}});
  EXPECT_EQ(prefix, "Question: How many?\nAnswer: 1 + 1 = 2 The answer is 2.\n\n");
  EXPECT_EQ(gsm8k_prompt(prefix, "Why?"), prefix + "Question: Why?\nAnswer:");
}

TEST(Gsm8k, ExemplarsAreSeededAndDistinct) {
  const auto a = choose_exemplars(1319, 8, 1), b = choose_exemplars(1319, 8, 1), c = choose_exemplars(1319, 8, 2);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(std::set<int64_t>(a.begin(), a.end()).size(), 8u);
  for (int64_t i : a) EXPECT_TRUE(i >= 0 && i < 1319);
  EXPECT_TRUE(choose_exemplars(10, 0, 1).empty());
  EXPECT_THROW(choose_exemplars(8, 8, 1), Error);
}

TEST(Gsm8k, LoadsTheTestFile) {
  const auto all = load_gsm8k(shared_dir() + "/data/gsm8k/test.jsonl");
  ASSERT_EQ(all.size(), 1319u);
  EXPECT_EQ(gsm8k_target(all[0].answer), "18");
  for (const auto& p : all) EXPECT_FALSE(gsm8k_target(p.answer).empty());
}
