// Careless and hostile input, table-driven: each row is a command line, its exit code and a
// fragment of its one-line message. Every row of the README's bad-input table is here. Rows that
// name a victim file also check that the file is byte-identical afterwards, and every row checks
// that no temporary file is left in the work directory and that the run did not die by a signal
// or hang (each runs under `timeout`).
//
// Placeholders in a row's command stand for files made on first use in a per-process directory
// (CTest runs each test in its own process): {M} a copy of stories260K, {LINK} a hard link to it,
// {T} a copy of the TinyStories sample, {D} the directory itself, and the damaged inputs below.
#include <gtest/gtest.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/run_cli.h"
#include "io/gguf_layout.h"
#include "util/paths.h"

namespace {

namespace t = h1bkv::test;

std::string work_dir() {
  static const std::string d = [] {
    std::string p = ::testing::TempDir() + "/h1bkv_bad_inputs_" + std::to_string(getpid());
    mkdir(p.c_str(), 0755);
    return p;
  }();
  return d;
}

// Removes the work directory when the test program ends.
class RemoveWorkDir : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(::testing::TempDir() + "/h1bkv_bad_inputs_" + std::to_string(getpid()), ec);
  }
};
const auto* const kRemoveWorkDir = ::testing::AddGlobalTestEnvironment(new RemoveWorkDir);

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
void spit(const std::string& path, const std::string& s) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << s;
}
t::Bytes stories_bytes() { return t::read_bytes(h1bkv::shared_dir() + "/models/stories260K.gguf"); }
std::string sample_text() { return h1bkv::shared_dir() + "/data/tinystories/sample.txt"; }

t::CliResult h1bkv_run(const std::string& args) { return t::run_cli(args, true, "timeout -k 5 300"); }

// Makes the named input (once per process) and returns its path.
std::string input(const std::string& name) {
  static std::map<std::string, std::string> made;
  if (auto it = made.find(name); it != made.end()) return it->second;
  const std::string d = work_dir();
  std::string path = d + "/" + name;
  static const std::map<std::string, std::function<void(const std::string&)>> makers = {
      {"M", [](const std::string& p) { t::write_file(p, stories_bytes()); }},
      {"LINK", [](const std::string& p) { link(input("M").c_str(), p.c_str()); }},
      {"T", [](const std::string& p) { spit(p, slurp(sample_text())); }},
      {"FIFO", [](const std::string& p) { mkfifo(p.c_str(), 0644); }},
      // a sparse regular file past the 256 MiB text limit (no disk space used)
      {"BIG", [](const std::string& p) { spit(p, ""); truncate(p.c_str(), int64_t{300} << 20); }},
      {"SHORT", [](const std::string& p) { spit(p, "Once upon a time."); }},
      {"NOTGGUF", [](const std::string& p) { spit(p, "hello, this is text and not a model\n"); }},
      {"TRUNC", [](const std::string& p) { spit(p, slurp(h1bkv::shared_dir() + "/models/stories260K.gguf").substr(0, 200000)); }},
      {"V1", [](const std::string& p) {
         t::Bytes b = stories_bytes();
         t::set_at<uint32_t>(b, 4, 1);
         t::write_file(p, b);
       }},
      {"OVERLAP", [](const std::string& p) { t::write_file(p, t::damage_all_offsets_zero(stories_bytes())); }},
      {"BLOCKS", [](const std::string& p) { t::write_file(p, t::damage_block_count(stories_bytes(), 3)); }},
      {"SHORTTOK", [](const std::string& p) { t::write_file(p, t::damage_short_tokenizer(stories_bytes())); }},
      {"NANW", [](const std::string& p) { t::write_file(p, t::damage_nan(stories_bytes(), "blk.1.ffn_up.weight", 5)); }},
      // a valid model whose header differs from {M}'s (so its id differs)
      {"EPS6", [](const std::string& p) {
         t::Bytes b = stories_bytes();
         t::set_at<float>(b, t::gguf_layout(b).key("llama.attention.layer_norm_rms_epsilon").value, 1e-6f);
         t::write_file(p, b);
       }},
      {"NANEPS", [](const std::string& p) {
         t::Bytes b = stories_bytes();
         t::set_at<float>(b, t::gguf_layout(b).key("llama.attention.layer_norm_rms_epsilon").value, NAN);
         t::write_file(p, b);
       }},
      // base log-probabilities of -c 64 --chunks 2 (24-byte header, then {i32 token, fp16[vocab]})
      {"BASE", [](const std::string& p) {
         const auto r = h1bkv_run("ppl -m " + input("M") + " -f " + input("T") + " -c 64 --chunks 2 -t 1 --save-logits " + p);
         if (r.code != 0) ADD_FAILURE() << r.out;
       }},
      {"NANBASE", [](const std::string& p) {
         std::string b = slurp(input("BASE"));
         const uint16_t nan16 = 0x7e00;
         std::memcpy(b.data() + 24 + 4 + 2 * 7, &nan16, 2);  // position 0, token 7
         spit(p, b);
       }},
      // an h1b calibration with one multiplier of 1e38
      {"CALIB", [](const std::string& p) {
         const auto r = h1bkv_run("calibrate -m " + input("M") + " -f " + input("T") +
                                  " -c 64 --chunks 1 -t 1 --cache h1b:bits=64 -o " + p);
         if (r.code != 0) ADD_FAILURE() << r.out;
       }},
      {"CALIB1E38", [](const std::string& p) {
         nlohmann::ordered_json j = nlohmann::ordered_json::parse(slurp(input("CALIB")));
         j["mult"][0][0] = 1e38;
         spit(p, j.dump());
       }},
  };
  auto it = makers.find(name);
  if (it == makers.end()) throw std::runtime_error("no input " + name);
  it->second(path);
  made[name] = path;
  return path;
}

std::string expand(std::string s) {
  for (size_t a; (a = s.find('{')) != std::string::npos;) {
    const size_t b = s.find('}', a);
    const std::string name = s.substr(a + 1, b - a - 1);
    s.replace(a, b - a + 1, name == "D" ? work_dir() : input(name));
  }
  return s;
}

std::vector<std::string> temp_files_left() {
  std::vector<std::string> v;
  if (DIR* d = opendir(work_dir().c_str())) {
    while (dirent* e = readdir(d))
      if (std::string(e->d_name).find(".tmp-") != std::string::npos) v.push_back(e->d_name);
    closedir(d);
  }
  return v;
}

struct Row {
  std::string name;
  std::string cmd;
  int code;              // 1: bad input found while running, 2: bad command line
  std::string fragment;  // expected in the output
  std::string victim;    // a placeholder whose file must be unchanged ("" = none)
};

const std::string S = "ppl -m {M} -f {T} -c 64 --chunks 2 -t 1";  // a quick valid ppl run

const std::vector<Row> kRows = {
    // --- the README's table ---
    {"MissingModel", "run -m /nonexistent/model.gguf -p hi", 1, "error: /nonexistent/model.gguf: cannot open: No such file"},
    {"NotGguf", "run -m {NOTGGUF} -p hi", 1, "not a GGUF file (bad magic)"},
    {"TruncatedModel", "run -m {TRUNC} -p hi", 1, "lies past the end of the file"},
    {"GgufVersion1", "run -m {V1} -p hi", 1, "unsupported GGUF version 1 (need 2 or 3)"},
    {"UnknownCache", "run -m {M} -p hi --cache f8", 1, "unknown cache type 'f8' (valid: "},
    {"BadCacheOption", "run -m {M} -p hi --cache plain:k=q2", 1, "'q2' is not one of"},
    {"CacheBitsNotAllowed", "run -m {M} -p hi --cache h1b:bits=100", 1, "cache 'h1b' option 'bits': '100' is not one of 64, 128, 192, 256, 320, 384, 448, 512"},
    {"CalibForAnotherModel", "ppl -m {EPS6} -f {T} -c 64 --chunks 2 -t 1 --cache h1b:bits=64 --calib {CALIB}", 1, "made for another model"},
    {"CalibForOtherBits", S + " --cache h1b:bits=128 --calib {CALIB}", 1, "made for cache option bits=64, the cache has bits=128"},
    {"UnknownCacheOption", "run -m {M} -p hi --cache h1b:foo=1", 1, "has no option 'foo'"},
    {"BadCtk", "run -m {M} -p hi -ctk q3", 1, "'q3' is not one of"},
    {"ContextOverflow", "run -m {M} -p 'Once upon a time' -n 64 -c 16", 1, "context overflow"},
    {"UnknownFlag", "run -m {M} --bogus", 2, "error: The following argument was not expected: --bogus"},
    {"MissingText", "ppl -m {M} -f /nonexistent/text.txt", 1, "/nonexistent/text.txt: cannot open"},
    {"TextShorterThanAChunk", "ppl -m {M} -f {SHORT} -c 128", 1, "the text has 6 tokens, fewer than one chunk of 128"},
    {"InvalidUtf8", "run -m {M} -p \"$(printf 'abc\\377\\376')\"", 1, "invalid UTF-8"},
    {"KlBaseOtherCtx", "ppl -m {M} -f {T} -c 32 --chunks 2 -t 1 --kl-base {BASE}", 1, "base logits were computed with -c 64"},
    {"KlBaseNotLogits", S + " --kl-base {NOTGGUF}", 1, "bad magic"},
    {"GeometryTwoNumbers", "info --geometry 32,32", 1, "--geometry needs LAYERS,KV_HEADS,HEAD_DIM, got '32,32'"},
    // --- numbers: range-checked at parse time, the range in the message ---
    {"ThreadsNegative", "run -m {M} -p hi -t -1", 2, "--threads: -1 is out of range (valid range [0, "},
    {"ThreadsHuge", "run -m {M} -p hi -t 100000", 2, "100000 is out of range (valid range [0, "},
    {"PplChunksZero", S + " --chunks 0", 2, "--chunks: 0 is out of range (-1 for all, or [1, "},
    {"PplChunksMinus5", S + " --chunks -5", 2, "-5 is out of range (-1 for all"},
    {"CompareChunksZero", "compare -m {M} -f {T} -c 64 --chunks 0", 2, "--chunks: 0 is out of range"},
    {"CalibrateChunksZero", "calibrate -m {M} -f {T} -c 64 --cache h1b -o {D}/c.json --chunks 0", 2, "--chunks: 0 is out of range"},
    {"CalibrateHugeStride", "calibrate -m {M} -f {T} -c 64 --chunks 1 --cache h1b -o {D}/c.json --stride 100000", 1, "--stride must be in [1, -c] = [1, 64]"},
    {"CalibrateKlNoQuery", "calibrate -m {M} -f {T} -c 64 --chunks 2 --cache h1b:bits=64,est=qjl,sink=2,window=64,kl=5 -o {D}/c.safetensors", 1,
     "kl=5 has no query to train on: no captured query sees a compressed token (the context -c must exceed sink + window)"},
    {"CalibrateStrideOverflow", "calibrate -m {M} -f {T} -c 64 --cache h1b -o {D}/c.json --stride 99999999999", 2, "--stride: 99999999999 is out of range"},
    {"BenchNegativeDepth", "bench -m {M} -p 16 -n 4 -d -2 -r 1", 2, "--n-depth: -2 is out of range (valid range [0, 16777216])"},
    {"BenchDepth1e9", "bench -m {M} -p 16 -n 4 -d 1000000000 -r 1", 2, "1000000000 is out of range"},
    {"BenchDepthFloat", "bench -m {M} -p 16 -n 4 -d 1e9 -r 1", 2, "'1e9' is not an integer"},
    {"BenchPrompt1e8", "bench -m {M} -p 100000000 -n 4 -r 1", 2, "100000000 is out of range"},
    {"BenchPastTrainingCtx", "bench -m {M} -p 16 -n 4 -d 100000 -r 1", 1, "more than the model's training context"},
    {"BenchZeroReps", "bench -m {M} -p 16 -n 4 -r 0", 2, "--repetitions: 0 is out of range"},
    {"KernelPathUnknown", "bench -m {M} -p 16 -n 4 -r 1", 1, "H1BKV_ISA=avx9: unknown kernel path (valid: scalar, avx2, avx512, neon)"},
    {"CtxZero", S + " -c 0", 2, "--ctx-size: 0 is out of range"},
    {"CtxFloat", S + " -c 1e9", 2, "'1e9' is not an integer"},
    {"BatchZero", S + " -b 0", 2, "--batch-size: 0 is out of range"},
    {"PredictNegative", "run -m {M} -p hi -n -1", 2, "--n-predict: -1 is out of range"},
    {"TempNan", "run -m {M} -p hi --temp nan", 2, "--temp: nan is not finite"},
    {"TempInf", "run -m {M} -p hi --temp inf", 2, "--temp: inf is not finite"},
    {"TopPTwo", "run -m {M} -p hi --top-p 2", 2, "--top-p: 2 is out of range (valid range [0, 1])"},
    {"InfoContextsZero", "info --geometry 2,2,8 --contexts 0", 2, "--contexts: 0 is out of range"},
    // --- input files: regular files only, bounded text ---
    {"FifoModel", "run -m {FIFO} -p hi", 1, "not a regular file (a FIFO)"},
    {"FifoText", "ppl -m {M} -f {FIFO}", 1, "not a regular file (a FIFO)"},
    {"FifoKlBase", S + " --kl-base {FIFO}", 1, "not a regular file (a FIFO)"},
    {"FifoCalib", S + " --cache h1b --calib {FIFO}", 1, "not a regular file (a FIFO)"},
    {"DevZeroText", "ppl -m {M} -f /dev/zero", 1, "/dev/zero: not a regular file (a character device)"},
    {"DirectoryAsModel", "info -m {D}", 1, "not a regular file (a directory)"},
    {"TextPastLimit", "ppl -m {M} -f {BIG}", 1, "is too large (the limit is 268435456 bytes)"},
    // --- outputs never overwrite an input of the run (device + inode) ---
    {"SaveLogitsOntoModel", S + " --save-logits {M}", 1, "output {M} is the same file as the input {M}", "M"},
    {"SaveLogitsOntoLinkedModel", S + " --save-logits {LINK}", 1, "is the same file as the input {M}", "M"},
    {"SaveLogitsOntoText", S + " --save-logits {T}", 1, "is the same file as the input {T}", "T"},
    {"CalibrateOntoModel", "calibrate -m {M} -f {T} -c 64 --cache h1b -o {M}", 1, "is the same file as the input", "M"},
    {"CompareJsonOntoModel", "compare -m {M} -f {T} -c 64 --chunks 1 --json-out {M}", 1, "is the same file as the input", "M"},
    {"ComparePlotOntoText", "compare -m {M} -f {T} -c 64 --chunks 1 --plot {T}", 1, "is the same file as the input", "T"},
    {"EvalJsonOntoModel", "eval -m {M} --tasks arc_easy --limit 1 --json-out {M}", 1, "is the same file as the input", "M"},
    {"EvalPlotOntoJson", "eval -m {M} --tasks arc_easy --limit 1 --json-out {T} --plot {T}", 1, "is the same file as the output", "T"},
    {"OutputInMissingDir", S + " --save-logits /nonexistent/dir/x.lp", 1, "/nonexistent/dir/x.lp: cannot create a file beside it"},
    // --- damaged models: cross-checks beyond each field ---
    {"OverlappingTensors", "run -m {OVERLAP} -p hi", 1, "overlap in the file; it is corrupt"},
    {"BlockCountMismatch", "run -m {BLOCKS} -p hi", 1, "belongs to block 3 but llama.block_count is 3"},
    {"TokenizerSmallerThanEmbedding", "run -m {SHORTTOK} -p hi", 1, "the tokenizer has 511 tokens but token_embd.weight has 512 rows"},
    {"NanHyperparameter", "run -m {NANEPS} -p hi", 1, "rms epsilon = nan is out of range (0, 1)"},
    // --- non-finite results are errors naming where they appeared ---
    {"NanWeights", "ppl -m {NANW} -f {T} -c 64 --chunks 2 -t 1", 1, "non-finite value (nan) in layer 1's feed-forward at position"},
    {"NanKlBase", S + " --kl-base {NANBASE}", 1, "position 0, token 7: log-probability nan is not a finite value"},
    {"CalibrationMultiplier1e38", S + " --cache h1b:bits=64 --calib {CALIB1E38}", 1, "non-finite value"},
    // --- every write is checked, stdout included ---
    {"JsonToDevFull", S + " --json >/dev/full", 1, "error: writing to standard output failed: No space left on device"},
    {"StdoutClosed", S + " >&-", 1, "error: standard output is closed"},
    {"JsonOutToDevFull", "compare -m {M} -f {T} -c 64 --chunks 1 -t 1 --caches f16 --json-out /dev/full", 1, "/dev/full: write failed"},
    // --- memory: estimated and checked before allocating ---
    {"MemoryEstimate", "ppl -m {M} -f {T} -c 16000000", 1, "ppl needs 43.01 GB (cache 10.24 GB + workspace 1.36 MB + logits 32.77 GB), more than the 16.00 GB of memory available"},
};

// gtest_discover_tests names each case by its row's name alone
void PrintTo(const Row& r, std::ostream* os) { *os << r.name; }

class BadInput : public ::testing::TestWithParam<Row> {};

TEST_P(BadInput, OneLineErrorNoCrashNoLostFile) {
  const Row& row = GetParam();
  const std::string cmd = expand(row.cmd);
  const std::string victim = row.victim.empty() ? "" : input(row.victim);
  const std::string before = victim.empty() ? "" : slurp(victim);
  // the memory row compares against a fixed 16 GB so the numbers do not depend on the machine
  // KernelPathUnknown sets H1BKV_ISA (tensor/isa.h) to a name that does not exist
  const std::string prefix = std::string(row.name == "MemoryEstimate" ? "H1BKV_MEM_LIMIT=16e9 " : "") +
                             (row.name == "KernelPathUnknown" ? "H1BKV_ISA=avx9 " : "") + "timeout -k 5 300";
  const t::CliResult r = t::run_cli(cmd, true, prefix);
  const std::string expected = expand(row.fragment);
  EXPECT_EQ(r.code, row.code) << cmd << "\n" << r.out;
  EXPECT_NE(r.out.find(expected), std::string::npos) << cmd << "\nexpected: " << expected << "\n" << r.out;
  // one line: the message is the last line of the output and the only one starting "error:"
  const size_t at = r.out.find("error:");
  EXPECT_NE(at, std::string::npos) << r.out;
  if (at != std::string::npos) {
    EXPECT_EQ(r.out.find('\n', at) + 1, r.out.size()) << r.out;
  }
  if (!victim.empty()) {
    EXPECT_TRUE(slurp(victim) == before) << victim << " changed by " << cmd;
  }
  EXPECT_EQ(temp_files_left(), std::vector<std::string>{}) << cmd;
}

INSTANTIATE_TEST_SUITE_P(Table, BadInput, ::testing::ValuesIn(kRows),
                         [](const ::testing::TestParamInfo<Row>& i) { return i.param.name; });

// An output is written whole or not at all: a run that fails midway (here: the base file is
// replaced only when the run completes) leaves the previous file in place.
TEST(BadInputOutputs, FailedRunKeepsThePreviousOutput) {
  const std::string out = work_dir() + "/keep.lp";
  spit(out, "previous contents");
  const t::CliResult r = t::run_cli(expand("ppl -m {NANW} -f {T} -c 64 --chunks 2 -t 1 --save-logits " + out), true,
                                    "timeout -k 5 300");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_EQ(slurp(out), "previous contents");
  EXPECT_EQ(temp_files_left(), std::vector<std::string>{});
}

TEST(BadInputOutputs, SuccessfulRunReplacesTheOutputWithItsMode) {
  const std::string out = work_dir() + "/plot.svg";
  spit(out, "old");
  const t::CliResult r = t::run_cli(expand("compare -m {M} -f {T} -c 64 --chunks 1 -t 1 --caches f16 --plot " + out),
                                    true, "timeout -k 5 300");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(slurp(out).rfind("<svg", 0), 0u) << slurp(out).substr(0, 100);
  struct stat st {};
  ASSERT_EQ(stat(out.c_str(), &st), 0);
  const mode_t mask = umask(0);
  umask(mask);
  EXPECT_EQ(st.st_mode & 0777, 0666 & ~mask);
}

// The same run with itself as base: KL 0 and full top-1 agreement.
TEST(PplSlow, KlAgainstItselfIsZero) {
  const std::string base = work_dir() + "/self.lp";
  const std::string text = sample_text();
  const std::string model = h1bkv::shared_dir() + "/models/stories260K.gguf";
  ASSERT_EQ(h1bkv_run("ppl -m " + model + " -f " + text + " -c 64 --save-logits " + base).code, 0);
  const t::CliResult r = h1bkv_run("ppl -m " + model + " -f " + text + " -c 64 --kl-base " + base + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\"top1_agree\": 1.0"), std::string::npos) << r.out;
}

}  // namespace
