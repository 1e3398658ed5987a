// Runs an untrusted Python program (a HumanEval completion and its tests) as
// `python3 -I -S -B program.py` in a child process: stdin /dev/null, stdout+stderr captured up to a
// bound (killed once it has written far more), rlimits on CPU time, address space, file size and
// processes, its own session (no controlling terminal) and process group, killed at a wall-clock
// deadline.
//
// By default inside bubblewrap (`bwrap`, Debian package bubblewrap): the program sees a read-only
// /usr (with the host's /bin, /lib* links or read-only binds), a fresh /proc, a minimal /dev and a
// private size-capped tmpfs at /tmp holding program.py, its only writable place; nothing else of
// the host (no /etc, /home, /root, repository or models). New user, PID, network, IPC, UTS and
// cgroup namespaces, uid 65534 with no capabilities inside, no further user namespaces, killed
// with bwrap. A root harness starts bwrap as a uid of its own (kSandboxUidBase + the child's pid,
// an account that owns no file on the host), so RLIMIT_NPROC counts the sandbox's processes only.
//
// With SandboxLimits::unsafe_no_bubblewrap (`h1bkv eval --unsafe-exec`): a plain child as the
// harness's user in a fresh host temp directory, its own network namespace when the kernel allows:
// the limits only, the whole filesystem visible.
#pragma once
#include <cstdint>
#include <string>

namespace h1bkv {

constexpr uint32_t kSandboxUidBase = 2000000000;  // + a pid (< 2^22): no host account has it

struct SandboxLimits {
  double wall_seconds = 10.0;               // the parent kills the process group after this
  int cpu_seconds = 10;                     // RLIMIT_CPU (SIGXCPU, then SIGKILL one second later)
  int64_t memory_bytes = int64_t(1) << 30;  // RLIMIT_AS
  int64_t file_bytes = int64_t(16) << 20;   // RLIMIT_FSIZE
  int64_t tmpfs_bytes = int64_t(64) << 20;  // size of the sandbox's /tmp (bubblewrap only)
  // RLIMIT_NPROC: counts the processes of the uid bwrap runs as (its own when the harness is root;
  // the user's when not); not enforced for root (unsafe mode as root)
  int64_t processes = 64;
  size_t max_output = 64 * 1024;  // captured bytes of stdout+stderr; the rest is read and dropped
  int64_t output_kill_bytes = int64_t(16) << 20;  // killed after writing this much in all
  bool unsafe_no_bubblewrap = false;  // a plain child with the limits only (see above)
};

struct SandboxResult {
  int exit_code = -1;  // the status passed to exit(), or -1 when killed by a signal
  // the signal that ended it (SIGKILL at the deadline, SIGXCPU, ...), or 0; under bubblewrap read
  // from bwrap's exit status 128 + signal, so a program calling exit(129..192) reads as signalled
  int signal = 0;
  bool timed_out = false;        // killed at the wall-clock deadline
  bool output_killed = false;    // killed for writing more than output_kill_bytes
  bool bubblewrap = false;       // ran inside bubblewrap (filesystem, PID, network isolation)
  bool network_isolated = false; // ran in its own network namespace
  std::string output;            // stdout and stderr interleaved, at most max_output bytes
  bool output_truncated = false;
  double seconds = 0;            // wall time
  int64_t max_rss_kb = 0;        // peak resident memory of the program
  bool passed() const { return exit_code == 0 && signal == 0 && !timed_out && !output_killed; }
};

// The real Python 3 interpreter the sandbox runs: the first `python3` on PATH whose sys.executable
// (a wrapper such as a pyenv shim resolved) lies under /usr, the only system directory the sandbox
// shows; "" when there is none. Cached after the first call.
const std::string& python3_path();

// "" when bubblewrap can start a sandbox here (checked once by running a trivial program in it),
// else a one-line reason: bwrap or python3 missing, user namespaces refused, ... Cached.
const std::string& bubblewrap_problem();

// Runs `program` (Python source) as described above. Throws Error when python3 is missing, when
// bubblewrap is asked for and cannot start, or when pipes, memfd or fork fail; a failing (or
// hostile) program is a result, not an error.
SandboxResult run_python(const std::string& program, const SandboxLimits& limits = {});

}  // namespace h1bkv
