// util/file: inputs are regular files checked before opening, text is bounded, outputs are
// replaced whole (temporary file + rename) and never name an input.
#include <gtest/gtest.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "error_of.h"
#include "util/error.h"
#include "util/file.h"

using namespace h1bkv;

namespace {

std::string dir() {
  static const std::string d = [] {
    std::string p = ::testing::TempDir() + "/h1bkv_test_file_" + std::to_string(getpid());
    mkdir(p.c_str(), 0755);
    return p;
  }();
  return d;
}
class RemoveDir : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir(), ec);
  }
};
const auto* const kRemoveDir = ::testing::AddGlobalTestEnvironment(new RemoveDir);

std::string make(const std::string& name, const std::string& text) {
  const std::string p = dir() + "/" + name;
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
  return p;
}
std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
std::vector<std::string> temp_files() {
  std::vector<std::string> v;
  DIR* d = opendir(dir().c_str());
  while (dirent* e = readdir(d))
    if (std::string(e->d_name).find(".tmp-") != std::string::npos) v.push_back(e->d_name);
  closedir(d);
  return v;
}
using test::error_of;

}  // namespace

TEST(File, ReadsARegularFile) {
  EXPECT_EQ(read_file(make("a.txt", "hello")), "hello");
  EXPECT_EQ(check_regular_file(make("b.txt", "12345")), 5u);
}

TEST(File, RefusesWhatIsNotARegularFileWithoutOpeningIt) {
  const std::string fifo = dir() + "/fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0644), 0);
  // opening a FIFO with no writer would block: read_file must not get that far
  EXPECT_EQ(error_of([&] { read_file(fifo); }), fifo + ": not a regular file (a FIFO)");
  EXPECT_EQ(error_of([&] { read_file("/dev/zero"); }), "/dev/zero: not a regular file (a character device)");
  EXPECT_EQ(error_of([&] { read_file(dir()); }), dir() + ": not a regular file (a directory)");
  EXPECT_EQ(error_of([&] { read_file(dir() + "/missing"); }),
            dir() + "/missing: cannot open: No such file or directory");
}

TEST(File, TextSizeIsBounded) {
  const std::string p = make("ten.txt", "0123456789");
  EXPECT_EQ(error_of([&] { read_file(p, 9); }), p + ": 10 bytes is too large (the limit is 9 bytes)");
  EXPECT_EQ(read_file(p, 10), "0123456789");
}

TEST(File, WriteReplacesWholeAndLeavesNoTemporary) {
  const std::string p = make("out.txt", "old contents, longer than the new");
  write_file(p, "new");
  EXPECT_EQ(slurp(p), "new");
  EXPECT_TRUE(temp_files().empty());
}

TEST(File, UncommittedOutputLeavesThePreviousFile) {
  const std::string p = make("keep.txt", "previous");
  {
    OutputFile f(p);
    f.write("partial", 7);
    EXPECT_NE(f.temp_path(), p);
    EXPECT_EQ(slurp(p), "previous");  // nothing reaches the target before commit()
  }  // destroyed without commit(), as when an error unwinds
  EXPECT_EQ(slurp(p), "previous");
  EXPECT_TRUE(temp_files().empty());
}

TEST(File, FailedWritesAreErrors) {
  EXPECT_NE(error_of([] { write_file("/dev/full", "x"); }).find("/dev/full: write failed: No space left"),
            std::string::npos);
  EXPECT_NE(error_of([] { write_file("/nonexistent/dir/f", "x"); }).find("cannot create a file beside it"),
            std::string::npos);
  write_file("/dev/null", "x");  // a device is written in place, never replaced
  struct stat st {};
  ASSERT_EQ(stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
}

TEST(File, OutputMustNotBeAnInput) {
  const std::string in = make("in.gguf", "model"), other = make("other.txt", "x");
  const std::string link = dir() + "/in-link.gguf";
  ASSERT_EQ(::link(in.c_str(), link.c_str()), 0);
  EXPECT_EQ(error_of([&] { check_outputs_distinct({in}, {link}); }),
            "output " + link + " is the same file as the input " + in + "; refusing to overwrite it");
  EXPECT_EQ(error_of([&] { check_outputs_distinct({in}, {other, other}); }),
            "output " + other + " is the same file as the output " + other + "; refusing to overwrite it");
  EXPECT_EQ(error_of([&] { check_outputs_distinct({in, ""}, {other, dir() + "/new", "/dev/null", "/dev/null"}); }), "");
}
