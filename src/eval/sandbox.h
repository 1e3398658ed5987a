// Runs an untrusted Python program (a HumanEval completion and its tests) in a child process:
// fork + exec of the interpreter (no shell) as `python3 -I -S -B program.py` in a fresh temporary
// directory, stdin from /dev/null, stdout+stderr captured up to a bound, rlimits on CPU time,
// address space, file size and processes, its own process group killed at a wall-clock deadline,
// and a new network namespace (no interfaces up) when the kernel allows it (root, or user
// namespaces), else it runs with the host network and says so.
#pragma once
#include <cstdint>
#include <string>

namespace h1bkv {

struct SandboxLimits {
  double wall_seconds = 10.0;             // the parent kills the process group after this
  int cpu_seconds = 10;                   // RLIMIT_CPU (SIGXCPU, then SIGKILL one second later)
  int64_t memory_bytes = int64_t(1) << 30;  // RLIMIT_AS
  int64_t file_bytes = int64_t(16) << 20;   // RLIMIT_FSIZE
  int64_t processes = 64;                 // RLIMIT_NPROC (per user; not enforced for root)
  size_t max_output = 64 * 1024;          // captured bytes of stdout+stderr; the rest is read and dropped
  bool isolate_network = true;
};

struct SandboxResult {
  int exit_code = -1;  // the status passed to exit(), or -1 when killed by a signal
  int signal = 0;      // the signal that ended it (SIGKILL at the deadline, SIGXCPU, ...), or 0
  bool timed_out = false;           // killed at the wall-clock deadline
  bool network_isolated = false;    // ran in its own network namespace
  std::string output;               // stdout and stderr interleaved, at most max_output bytes
  bool output_truncated = false;
  double seconds = 0;               // wall time
  int64_t max_rss_kb = 0;           // peak resident memory of the program
  bool passed() const { return exit_code == 0 && signal == 0 && !timed_out; }
};

// The real Python 3 interpreter (sys.executable of `python3` found on PATH, so a wrapper script
// such as a pyenv shim is resolved once); "" when there is none. Cached after the first call.
const std::string& python3_path();

// Runs `program` (Python source) as described above. Throws Error when python3 is missing or the
// temporary directory, pipes or fork fail; a failing program is a result, not an error.
SandboxResult run_python(const std::string& program, const SandboxLimits& limits = {});

}  // namespace h1bkv
