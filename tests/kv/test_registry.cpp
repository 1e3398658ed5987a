// The registry's option checks at parse time: every int and float option has a range, floats
// must be finite, and the message names the valid range (issue: keep=inf overflowed into a
// 1-token budget; loki k=1e30 aborted with "terminate called recursively").
#include <gtest/gtest.h>

#include <string>

#include "kv/registry.h"
#include "util/error.h"

using namespace h1bkv;

namespace {

std::string parse_error(const std::string& spec) {
  try {
    parse_cache_spec(spec);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(CacheOptionRanges, EveryNumericOptionHasAFiniteRange) {
  for (const auto& t : cache_types())
    for (const auto& o : t.options)
      if (o.kind == "int" || o.kind == "float") {
        EXPECT_GT(o.min, -1e300) << t.name << ":" << o.name;
        EXPECT_LT(o.max, 1e300) << t.name << ":" << o.name;
        EXPECT_NO_THROW(parse_cache_spec(t.name + ":" + o.name + "=" + o.dflt)) << t.name << ":" << o.name;
      }
}

TEST(CacheOptionRanges, NonFiniteAndHugeValuesAreOneLineErrors) {
  EXPECT_EQ(parse_error("evict:keep=inf"), "cache 'evict' option 'keep': 'inf' is not a finite number");
  EXPECT_EQ(parse_error("evict:keep=nan"), "cache 'evict' option 'keep': 'nan' is not a finite number");
  EXPECT_EQ(parse_error("evict:keep=1e30"),
            "cache 'evict' option 'keep': 1e30 is out of range (valid: (0, 2147483647])");
  EXPECT_EQ(parse_error("loki:r=4,k=1e30"),
            "cache 'loki' option 'k': 1e30 is out of range (valid: (0, 2147483647])");
  EXPECT_EQ(parse_error("loki:k=9.3e18"), "cache 'loki' option 'k': 9.3e18 is out of range (valid: (0, 2147483647])");
  EXPECT_EQ(parse_error("loki:k=0"), "cache 'loki' option 'k': 0 is out of range (valid: (0, 2147483647])");
  EXPECT_EQ(parse_error("h1b:T=0"), "cache 'h1b' option 'T': 0 is out of range (valid: (0, 1000000])");
  EXPECT_EQ(parse_error("h1b:T=-inf"), "cache 'h1b' option 'T': '-inf' is not a finite number");
  EXPECT_EQ(parse_error("evict:recent=1.5"), "cache 'evict' option 'recent': 1.5 is out of range (valid: [0, 1])");
}

TEST(CacheOptionRanges, IntegersOutsideTheirRangeOrInt64AreErrors) {
  EXPECT_EQ(parse_error("kivi:group=99999999999999999999"),
            "cache 'kivi' option 'group': 99999999999999999999 is out of range (valid: [1, 1048576])");
  EXPECT_EQ(parse_error("kivi:group=0"), "cache 'kivi' option 'group': 0 is out of range (valid: [1, 1048576])");
  EXPECT_EQ(parse_error("h1b:sink=-1"), "cache 'h1b' option 'sink': -1 is out of range (valid: [0, 2147483647])");
  EXPECT_EQ(parse_error("h1b:window=4294967296"),
            "cache 'h1b' option 'window': 4294967296 is out of range (valid: [0, 2147483647])");
  EXPECT_EQ(parse_error("loki:r=0"), "cache 'loki' option 'r': 0 is out of range (valid: [1, 1024])");
  EXPECT_EQ(parse_error("h1b:seed=-1"), "cache 'h1b' option 'seed': -1 is out of range (valid: [0, 4294967295])");
}

TEST(CacheOptionRanges, BoundsThemselvesAreAccepted) {
  EXPECT_NO_THROW(parse_cache_spec("evict:keep=2147483647,recent=0"));
  EXPECT_NO_THROW(parse_cache_spec("evict:keep=1,recent=1"));
  EXPECT_NO_THROW(parse_cache_spec("loki:r=1024,k=2147483647"));
  EXPECT_NO_THROW(parse_cache_spec("h1b:T=1000000,seed=4294967295,window=2147483647"));
}

}  // namespace
