// Runs the h1bkv binary under test with arguments through the shell; returns its exit code and
// output (stdout, and stderr unless dropped).
#pragma once
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "util/paths.h"

namespace h1bkv::test {

struct CliResult {
  int code = -1;
  std::string out;
};

// prefix goes before the binary: environment settings, or "timeout 60" for a run that could hang.
// stderr is redirected before args, so args may redirect stdout alone (">/dev/full").
inline CliResult run_cli(const std::string& args, bool merge_stderr = true,
                         const std::string& prefix = "") {
  const std::string cmd = "OMP_WAIT_POLICY=passive " + prefix + " " + std::string(H1BKV_BINARY) +
                          (merge_stderr ? " 2>&1 " : " 2>/dev/null ") + args;
  CliResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

// The value after "PPL = " in a `ppl` output; -1 when there is none.
inline double ppl_in_output(const std::string& out) {
  const size_t at = out.find("PPL = ");
  return at == std::string::npos ? -1 : std::atof(out.c_str() + at + 6);
}

inline std::string stories260k() { return shared_dir() + "/models/stories260K.gguf"; }

}  // namespace h1bkv::test
