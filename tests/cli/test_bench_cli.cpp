// bench --parallel: the decode rows of several sequences at once (one cache each, one
// forward_batch per step) beside the one-sequence rows, in the markdown and JSON tables.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/run_cli.h"

namespace t = h1bkv::test;

TEST(BenchCli, ParallelDecodeRows) {
  const t::CliResult r =
      t::run_cli("bench -m " + t::stories260k() + " -t 1 -p 16 -n 8 -d 0,32 -r 2 -np 1,3 --json", false);
  ASSERT_EQ(r.code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["parallel"], nlohmann::json::array({1, 3}));
  std::vector<std::string> names;
  for (const auto& row : j["tests"]) {
    names.push_back(row["test"]);
    EXPECT_GT(row["tok_per_s"].get<double>(), 0) << row["test"];
    EXPECT_EQ(row["samples"].size(), 2u) << row["test"];
  }
  EXPECT_EQ(names, (std::vector<std::string>{"pp16", "tg8", "tg8 x3", "tg8 @ d32", "tg8 @ d32 x3"}));
  // per token made, three sequences share one read of the weights
  const auto& one = j["tests"][1], three = j["tests"][2];
  EXPECT_LT(three["read_bytes_per_token"].get<double>(), 0.5 * one["read_bytes_per_token"].get<double>());
}

TEST(BenchCli, ParallelOutOfRangeIsRefused) {
  const t::CliResult r = t::run_cli("bench -m " + t::stories260k() + " -p 16 -n 4 -r 1 -np 0");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--parallel: 0 is out of range"), std::string::npos) << r.out;
}
