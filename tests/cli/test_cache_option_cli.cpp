// Cache options out of range are one-line errors naming the range, before anything runs
// (they used to overflow: evict:keep=inf ran with a 1-token budget and exit 0; loki k >= ~9.3e18
// aborted with "terminate called recursively").
#include <gtest/gtest.h>

#include <string>

#include "cli/run_cli.h"

namespace {

using h1bkv::test::run_cli;
using h1bkv::test::stories260k;

void expect_one_line_error(const std::string& args, const std::string& message) {
  const auto r = run_cli(args);
  EXPECT_EQ(r.code, 1) << args << "\n" << r.out;
  EXPECT_EQ(r.out, "error: " + message + "\n") << args;
}

TEST(CacheOptionCli, EvictKeepNotFinite) {
  expect_one_line_error("run -m " + stories260k() + " -p hi --cache evict:keep=inf",
                        "cache 'evict' option 'keep': 'inf' is not a finite number");
  expect_one_line_error("run -m " + stories260k() + " -p hi --cache evict:keep=1e30",
                        "cache 'evict' option 'keep': 1e30 is out of range (valid: (0, 2147483647])");
}

TEST(CacheOptionCli, LokiKHuge) {
  expect_one_line_error("run -m " + stories260k() + " -p hi --cache loki:r=4,k=1e30 --calib loki.json",
                        "cache 'loki' option 'k': 1e30 is out of range (valid: (0, 2147483647])");
}

TEST(CacheOptionCli, H1bTemperatureNotPositive) {
  expect_one_line_error("run -m " + stories260k() + " -p hi --cache h1b:T=-1",
                        "cache 'h1b' option 'T': -1 is out of range (valid: (0, 1000000])");
}

}  // namespace
